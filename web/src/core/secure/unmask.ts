/**
 * Phase 4 of a secure round for whoever aggregates (docs/secure_aggregation.md §10): the masks
 * taken off the sum of the survivors' masked inputs, as `SecureSum.result()` does it in Python.
 *
 * From the shares of at least t survivors it rebuilds each survivor's self-mask seed — checked
 * against the survivor's commitment — and each dropped member's `s` scalar — checked against its
 * public key — then subtracts the self-masks and the dropped members' pairwise masks with the
 * survivors. Any secret that does not rebuild, or does not match, throws `RoundAborted`: some
 * shares are wrong, and nothing is unmasked.
 */

import { sameBytes } from "./bytes";
import { RoundAborted, SecureAggregationError } from "./errors";
import { publicKeyOf } from "./keys";
import { pairwiseMaskOfDropped, selfMask, subtractWords } from "./masking";
import type { ShareKind } from "./participant";
import { type RoundSetup, commitment, memberOf, positions } from "./roster";
import { decodeShare, reconstruct } from "./shamir";

/** What the survivors revealed: who answered, each one's share of a secret, the commitments. */
export interface Revealed {
  /** The survivors whose shares arrived (at least the threshold of them). */
  readonly revealers: readonly string[];
  /** `revealer`'s share of `of`'s self-mask seed ("self") or `s` scalar ("key"). */
  shareOf(revealer: string, of: string, kind: ShareKind): Uint8Array;
  /** Each survivor's commitment to its self-mask seed. */
  readonly commitments: ReadonlyMap<string, Uint8Array>;
}

/** Σ y_u over `split.survivors` (modulo 2^32) from `sum`, the masked inputs' sum of the round `setup` with `salt`. */
export async function unmask(
  setup: RoundSetup,
  sum: Uint32Array,
  salt: Uint8Array,
  split: { readonly survivors: readonly string[]; readonly dropped: readonly string[] },
  revealed: Revealed,
): Promise<Uint32Array<ArrayBuffer>> {
  const revealers = [...revealed.revealers].sort((a, b) => memberOf(setup, a).position - memberOf(setup, b).position);
  const total = new Uint32Array(sum);
  for (const v of split.survivors) {
    const seed = rebuild(setup, revealers, revealed, v, "self");
    const committed = revealed.commitments.get(v);
    if (committed === undefined || !sameBytes(await commitment(seed, salt), committed)) {
      throw new RoundAborted(
        `the self-mask seed of ${JSON.stringify(v)} rebuilt from the shares does not match its commitment: ` +
          "some shares are wrong, nothing is unmasked",
      );
    }
    subtractWords(total, await selfMask(seed, setup.length, salt));
  }
  for (const d of split.dropped) {
    const scalar = rebuild(setup, revealers, revealed, d, "key");
    const member = memberOf(setup, d);
    let rebuilt: Uint8Array;
    try {
      rebuilt = publicKeyOf(scalar);
    } catch (error) {
      if (error instanceof SecureAggregationError) {
        throw new RoundAborted(`the key of ${JSON.stringify(d)} rebuilt from the shares is not valid`);
      }
      throw error;
    }
    if (!sameBytes(rebuilt, member.sPublic)) {
      throw new RoundAborted(
        `the key of ${JSON.stringify(d)} rebuilt from the shares does not match its public key: some shares ` +
          "are wrong, nothing is unmasked",
      );
    }
    const mask = await pairwiseMaskOfDropped(member.position, scalar, positions(setup, split.survivors), setup.length, salt);
    subtractWords(total, mask);
  }
  return total;
}

/** `of`'s secret of `kind`, rebuilt from the revealers' shares (in order of position). */
function rebuild(
  setup: RoundSetup,
  revealers: readonly string[],
  revealed: Revealed,
  of: string,
  kind: ShareKind,
): Uint8Array<ArrayBuffer> {
  const shares = revealers.map((r) => ({
    x: memberOf(setup, r).position,
    y: decodeShare(revealed.shareOf(r, of, kind)),
  }));
  try {
    return reconstruct(shares, setup.threshold);
  } catch (error) {
    if (error instanceof SecureAggregationError && !(error instanceof RoundAborted)) {
      throw new RoundAborted(
        `the shares of ${JSON.stringify(of)} do not rebuild a secret (${error.message}): some shares are wrong, nothing is unmasked`,
      );
    }
    throw error;
  }
}
