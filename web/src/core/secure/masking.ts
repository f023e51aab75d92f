/**
 * Double masking (docs/secure_aggregation.md §1, §8): what a participant sends, and what the
 * aggregator removes from the sum.
 *
 *     m_u = y_u + stream(HKDF(b_u, "self mask"), L)
 *               + Σ_{v > u} stream(s_uv, L) − Σ_{v < u} stream(s_uv, L)      (mod 2^32)
 *
 * with s_uv = HKDF(ECDH(s_u, s_v^pub), "pairwise mask") and "v > u" comparing roster positions.
 * Summed over every participant the pairwise streams cancel. Over the survivors U only (those
 * whose m_u arrived), the aggregator removes each survivor's self-mask (from its rebuilt b_u),
 * and for each dropped d the streams d shared with the survivors (from its rebuilt s scalar):
 * Σ_{u ∈ U, u < d} stream(s_ud) − Σ_{u ∈ U, u > d} stream(s_ud) is left in the sum by d's absence.
 */

import { SecureAggregationError } from "./errors";
import { INFO, hkdf } from "./kdf";
import { ecdh, importPrivateKey } from "./keys";
import { applyStream } from "./stream";

/** One participant of the round's roster, as the others see it. */
export interface RosterEntry {
  /** Its 1-based position in the roster (participants in order of id, §6). */
  readonly position: number;
  /** Its `s` public key, 65 bytes uncompressed SEC1. */
  readonly publicKey: Uint8Array;
}

/** What the aggregator has rebuilt from the survivors' shares (§1): never both for one position. */
export interface Unmasking {
  /** Σ m_u over the survivors, mod 2^32. */
  readonly sum: Uint32Array;
  /** The round salt. */
  readonly salt: Uint8Array;
  /** Every participant of the round. */
  readonly roster: readonly RosterEntry[];
  /** For each survivor (its m_u is in `sum`), position → its self-mask seed b_u (32 bytes). */
  readonly selfSeeds: ReadonlyMap<number, Uint8Array>;
  /** For each dropped participant, position → its `s` private scalar (32 bytes). */
  readonly droppedKeys: ReadonlyMap<number, Uint8Array>;
}

/** `target += other`, word-wise mod 2^32, in place; returns `target`. */
export function addWords(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLength(target, other.length);
  for (let i = 0; i < target.length; i++) target[i] = ((target[i] as number) + (other[i] as number)) >>> 0;
  return target;
}

/** `target −= other`, word-wise mod 2^32, in place; returns `target`. */
export function subtractWords(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLength(target, other.length);
  for (let i = 0; i < target.length; i++) target[i] = ((target[i] as number) - (other[i] as number)) >>> 0;
  return target;
}

function checkLength(words: Uint32Array, length: number): void {
  if (words.length !== length) {
    throw new SecureAggregationError("value", `word vectors of ${words.length} and ${length} words`);
  }
}

function checkPosition(position: number): void {
  if (!Number.isSafeInteger(position) || position < 1 || position > 0xffffffff) {
    throw new SecureAggregationError("roster", `a position is an integer in [1, 2^32), got ${position}`);
  }
}

function checkRoster(roster: readonly RosterEntry[]): void {
  const seen = new Set<number>();
  for (const { position } of roster) {
    checkPosition(position);
    if (seen.has(position)) throw new SecureAggregationError("roster", `two participants at position ${position}`);
    seen.add(position);
  }
}

/** The self-mask key of a 32-byte seed b_u. */
async function selfMaskKey(seed: Uint8Array, salt: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  if (seed.length !== 32) {
    throw new SecureAggregationError("value", `a self-mask seed is 32 bytes, got ${seed.length}`);
  }
  return hkdf(seed, salt, INFO.self);
}

/** s_uv: the key of the pairwise mask of the holder of `sPrivate` and the owner of `peerPublic`. */
export async function pairwiseKey(
  sPrivate: CryptoKey,
  peerPublic: Uint8Array,
  salt: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  return hkdf(await ecdh(sPrivate, peerPublic), salt, INFO.pairwise);
}

/**
 * Adds to `target`, in place, `sign` × the pairwise masks of the participant at `position`
 * (holding `sPrivate`) with each of `others` (its own entry, if there, is skipped):
 * + stream(s_uv) for v > u, − stream(s_uv) for v < u.
 */
async function applyPairwise(
  target: Uint32Array,
  position: number,
  sPrivate: CryptoKey,
  others: readonly RosterEntry[],
  salt: Uint8Array,
  sign: 1 | -1,
): Promise<void> {
  const peers = others.filter((v) => v.position !== position);
  const keys = await Promise.all(peers.map((v) => pairwiseKey(sPrivate, v.publicKey, salt)));
  for (let i = 0; i < peers.length; i++) {
    const above = (peers[i] as RosterEntry).position > position;
    await applyStream(target, keys[i] as Uint8Array, above ? sign : (-sign as 1 | -1));
  }
}

/** The self-mask of the seed b_u: stream(HKDF(b_u, "self mask"), `words`). */
export async function selfMask(seed: Uint8Array, words: number, salt: Uint8Array): Promise<Uint32Array<ArrayBuffer>> {
  if (!Number.isSafeInteger(words) || words < 0) {
    throw new SecureAggregationError("value", `a mask has a whole number of words ≥ 0, got ${words}`);
  }
  const out = new Uint32Array(words);
  await applyStream(out, await selfMaskKey(seed, salt), 1);
  return out;
}

/**
 * m_u: the participant at `position`, with `s` private key `sPrivate` and self-mask seed
 * `selfSeed`, masks its quantised `input` against the `roster` (every participant of the round;
 * its own entry may be there and is skipped). A new vector; `input` is left as it was.
 */
export async function maskedInput(
  input: Uint32Array,
  position: number,
  sPrivate: CryptoKey,
  roster: readonly RosterEntry[],
  selfSeed: Uint8Array,
  salt: Uint8Array,
): Promise<Uint32Array<ArrayBuffer>> {
  checkPosition(position);
  checkRoster(roster);
  const out = new Uint32Array(input);
  await applyStream(out, await selfMaskKey(selfSeed, salt), 1);
  await applyPairwise(out, position, sPrivate, roster, salt, 1);
  return out;
}

/**
 * What the aggregator subtracts from the survivors' sum to cancel the pairwise masks the
 * participant at `droppedPosition` left behind, from its rebuilt `s` scalar (32 bytes) and the
 * `survivors`' public keys: Σ_{u < d} stream(s_ud) − Σ_{u > d} stream(s_ud), `words` long.
 */
export async function pairwiseMaskOfDropped(
  droppedPosition: number,
  droppedScalar: Uint8Array,
  survivors: readonly RosterEntry[],
  words: number,
  salt: Uint8Array,
): Promise<Uint32Array<ArrayBuffer>> {
  checkPosition(droppedPosition);
  checkRoster(survivors);
  if (survivors.some((u) => u.position === droppedPosition)) {
    throw new SecureAggregationError("roster", `position ${droppedPosition} is both dropped and a survivor`);
  }
  if (!Number.isSafeInteger(words) || words < 0) {
    throw new SecureAggregationError("value", `a mask has a whole number of words ≥ 0, got ${words}`);
  }
  const { privateKey } = await importPrivateKey(droppedScalar);
  const out = new Uint32Array(words);
  // d's own mask would add stream(s_dv) for v > d and subtract it for v < d; its survivors hold
  // the opposite signs, which is what is left in the sum.
  await applyPairwise(out, droppedPosition, privateKey, survivors, salt, -1);
  return out;
}

/**
 * Σ y_u over the survivors, from the sum of their masked inputs: every survivor's self-mask and
 * every dropped participant's leftover pairwise masks subtracted. Every roster position must be
 * in exactly one of `selfSeeds` (survivors) and `droppedKeys` (dropped). A new vector.
 */
export async function unmaskSum(unmasking: Unmasking): Promise<Uint32Array<ArrayBuffer>> {
  const { sum, salt, roster, selfSeeds, droppedKeys } = unmasking;
  checkRoster(roster);
  const positions = new Set(roster.map((entry) => entry.position));
  for (const position of [...selfSeeds.keys(), ...droppedKeys.keys()]) {
    if (!positions.has(position)) throw new SecureAggregationError("roster", `position ${position} is not in the roster`);
  }
  for (const { position } of roster) {
    const survived = selfSeeds.has(position);
    if (survived === droppedKeys.has(position)) {
      throw new SecureAggregationError(
        "roster",
        `position ${position} must be either a survivor (its self-mask seed) or dropped (its s key), ` +
          (survived ? "not both" : "got neither"),
      );
    }
  }
  const survivors = roster.filter((entry) => selfSeeds.has(entry.position));
  const out = new Uint32Array(sum);
  for (const [, seed] of selfSeeds) await applyStream(out, await selfMaskKey(seed, salt), -1);
  for (const [position, scalar] of droppedKeys) {
    const { privateKey } = await importPrivateKey(scalar);
    // Subtracting the leftover: the survivors' signs, negated.
    await applyPairwise(out, position, privateKey, survivors, salt, 1);
  }
  return out;
}
