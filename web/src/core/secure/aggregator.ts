/**
 * The aggregator's side of one secure round: it learns the sum, and only the sum. Python's
 * `disco.secure.aggregator.SecureSum`, refusal for refusal.
 *
 * `SecureSum` follows the four phases of docs/secure_aggregation.md §10 for whoever aggregates
 * (the server of a federated task, every peer of a decentralized one):
 *
 * 1. keys: `addKeys` from each participant, then `setup()` fixes the roster (members by id,
 *    positions, threshold, scale);
 * 2. shares: `addShares` from each member (a commitment to its self-mask seed and one envelope per
 *    other member); `closeShares()` fixes the members that shared and `inbox(member)` hands each
 *    the envelopes addressed to it;
 * 3. masked inputs: `addMasked` folds each masked vector into a running sum modulo 2^32 (memory:
 *    one vector, whatever the number of members); `closeMasked()` splits the members that shared
 *    into survivors and dropped;
 * 4. unmasking: `addReveal` from survivors; once t have answered, `result()` rebuilds each
 *    survivor's self-mask seed (checked against its commitment) and each dropped member's `s`
 *    scalar (checked against its public key), removes their masks and returns Σ y over the
 *    survivors, exactly.
 *
 * In a decentralized round (docs/protocol.md §19.1) the server coordinates without holding a
 * masked input: it names the survivors (`closeMasked(survivors)`) and relays their `commitments`
 * and the `reveals`; each peer starts at phase 3 with `SecureSum.following` (the roster, the
 * senders and their commitments from the coordinator) and unmasks the sum itself.
 *
 * Fewer than t members at any phase throw `RoundAborted`: nothing more is asked for and nothing
 * is revealed. Input from a non-member, twice, of the wrong size or at the wrong phase is refused
 * with a `SecureAggregationError` and changes nothing.
 */

import { toHex, u64be } from "./bytes";
import { CIPHERTEXT_BYTES } from "./envelope";
import { RoundAborted, SecureAggregationError } from "./errors";
import { roundSalt } from "./kdf";
import { PUBLIC_KEY_BYTES, checkPublicKey } from "./keys";
import { addWords } from "./masking";
import type { RevealedShare, ShareKind } from "./participant";
import { scaleBits } from "./quantize";
import {
  COMMITMENT_BYTES,
  MIN_MEMBERS,
  type Member,
  type RoundSetup,
  checkRoster,
  memberIds,
  memberOf,
  sortedIds,
  thresholdFor,
} from "./roster";
import { SHARE_BYTES } from "./shamir";
import { unmask } from "./unmask";

/** The phases of a round, as `SecureSum.phase` names them. */
export type RoundPhase = "keys" | "shares" | "masked" | "unmasking";

/** The round's parameters, as the task fixes them. */
export interface SecureSumOptions {
  /** The model's number of values (a masked input is 1 + values words). */
  readonly values: number;
  readonly clip: number;
  readonly weightCap: number;
  /** The task's threshold (`secure_aggregation.threshold`), if any. */
  readonly threshold?: number | null;
}

/** (survivors, dropped): who sent a masked input, and who shared but did not. */
export interface RoundSplit {
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
}

const revealKey = (of: string, kind: string): string => JSON.stringify([of, kind]);

/** One secure round of `taskId` as its aggregator sees it. */
export class SecureSum {
  readonly taskId: string;
  readonly round: number;
  readonly #values: number;
  readonly #clip: number;
  readonly #cap: number;
  readonly #taskThreshold: number | null;
  #salt: Uint8Array | undefined;
  readonly #keys = new Map<string, readonly [Uint8Array, Uint8Array]>();
  #setup: RoundSetup | undefined;
  readonly #commitments = new Map<string, Uint8Array>();
  /** sender → recipient → envelope. */
  readonly #envelopes = new Map<string, ReadonlyMap<string, Uint8Array>>();
  #senders: readonly string[] | undefined;
  #sum: Uint32Array | undefined;
  readonly #masked = new Set<string>();
  #split: RoundSplit | undefined;
  /** survivor → revealKey(of, kind) → share. */
  readonly #reveals = new Map<string, ReadonlyMap<string, Uint8Array>>();

  constructor(taskId: string, round: number, options: SecureSumOptions) {
    u64be(round); // the round salt's encoding takes it (the salt itself is made when needed)
    this.taskId = taskId;
    this.round = round;
    this.#values = options.values;
    this.#clip = options.clip;
    this.#cap = options.weightCap;
    this.#taskThreshold = options.threshold ?? null;
  }

  /**
   * A peer's aggregator in a decentralized round (docs/protocol.md §19.1): the roster, the members
   * that shared and their commitments come from the coordinator, and the round starts at its
   * masked-inputs phase. The peer adds the survivors' masked inputs (its own among them), closes
   * the phase, adds the relayed reveals and takes `result()`; every check of the phases it runs
   * is the federated server's.
   */
  static following(setup: RoundSetup, senders: readonly string[], commitments: ReadonlyMap<string, Uint8Array>): SecureSum {
    const chosen = sortedIds(senders);
    const ids = new Set(memberIds(setup));
    if (chosen.length !== senders.length || chosen.some((id) => !ids.has(id))) {
      throw new SecureAggregationError("round", "the senders must be distinct members of the roster");
    }
    if ([...commitments.values()].some((c) => c.length !== COMMITMENT_BYTES)) {
      throw new SecureAggregationError("value", `a commitment is ${COMMITMENT_BYTES} bytes`);
    }
    if ([...commitments.keys()].some((id) => !chosen.includes(id))) {
      throw new SecureAggregationError("round", "commitments may come only from members that shared");
    }
    const round = new SecureSum(setup.taskId, setup.round, {
      values: setup.length - 1,
      clip: setup.clip,
      weightCap: setup.weightCap,
    });
    round.#setup = setup;
    round.#senders = chosen;
    for (const [member, c] of commitments) round.#commitments.set(member, new Uint8Array(c));
    return round;
  }

  /** "keys", "shares", "masked", "unmasking". */
  get phase(): RoundPhase {
    if (this.#setup === undefined) return "keys";
    if (this.#senders === undefined) return "shares";
    return this.#split === undefined ? "masked" : "unmasking";
  }

  // -- what the round holds (for the session's phase logic) -------------------------------------

  /** The participants that sent keys. */
  get keys(): string[] {
    return [...this.#keys.keys()];
  }

  /** The roster's members (empty before `setup`). */
  get setupIds(): string[] {
    return this.#setup === undefined ? [] : memberIds(this.#setup);
  }

  /** The round's threshold (0 before `setup`). */
  get threshold(): number {
    return this.#setup?.threshold ?? 0;
  }

  /** The round's scale bits (0 before `setup`). */
  get bits(): number {
    return this.#setup?.bits ?? 0;
  }

  /** The members whose shares arrived. */
  get shared(): string[] {
    return [...this.#envelopes.keys()];
  }

  /** The members that shared, once the shares phase is closed. */
  get senders(): readonly string[] {
    return this.#senders ?? [];
  }

  /** (survivors, dropped), once the masked inputs are closed. */
  get split(): RoundSplit {
    return this.#split ?? { survivors: [], dropped: [] };
  }

  /** The survivors whose shares arrived. */
  get revealers(): Set<string> {
    return new Set(this.#reveals.keys());
  }

  /** How many survivors have revealed their shares. */
  get revealed(): number {
    return this.#reveals.size;
  }

  // -- 1. keys ----------------------------------------------------------------------------------

  /**
   * Takes a participant's keys; with `replace`, newer keys of the same participant (it reconnected
   * before the roster was fixed) take the place of its earlier ones.
   */
  addKeys(participant: string, cPublic: Uint8Array, sPublic: Uint8Array, { replace = false } = {}): void {
    this.#expect("keys");
    if (this.#keys.has(participant) && !replace) {
      throw new SecureAggregationError("round", `${JSON.stringify(participant)} already sent its keys`);
    }
    if (cPublic.length !== PUBLIC_KEY_BYTES || sPublic.length !== PUBLIC_KEY_BYTES) {
      throw new SecureAggregationError("value", `public keys are ${PUBLIC_KEY_BYTES} bytes each`);
    }
    this.#keys.set(participant, [new Uint8Array(cPublic), new Uint8Array(sPublic)]);
  }

  /**
   * Fixes the roster from the keys received (a malformed key leaves its sender out; a key sent by
   * more than one participant, or as both keys, leaves out all who sent it).
   * `RoundAborted` if fewer than 3 members, or than the task's threshold, remain. With `present`, only
   * the participants in it are taken (those still connected).
   */
  setup(present?: ReadonlySet<string>): RoundSetup {
    this.#expect("keys");
    const usable: [string, Uint8Array, Uint8Array][] = [];
    const uses = new Map<string, number>();
    for (const [c, s] of this.#keys.values()) {
      for (const key of [toHex(c), toHex(s)]) uses.set(key, (uses.get(key) ?? 0) + 1);
    }
    for (const participant of this.#keys.keys()) {
      // in the order the keys came
      if (present !== undefined && !present.has(participant)) continue; // only those still here
      const [c, s] = this.#keys.get(participant) as readonly [Uint8Array, Uint8Array];
      const ch = toHex(c);
      const sh = toHex(s);
      // a key sent by more than one participant, or as both keys, leaves out all who sent it
      if ((uses.get(ch) ?? 0) > 1 || (uses.get(sh) ?? 0) > 1) continue;
      try {
        checkPublicKey(c);
        checkPublicKey(s);
      } catch (error) {
        if (error instanceof SecureAggregationError) continue;
        throw error;
      }
      usable.push([participant, c, s]);
    }
    let n = usable.length;
    const least = Math.max(MIN_MEMBERS, this.#taskThreshold || 0);
    if (n < least) {
      throw new RoundAborted(`only ${n} participants sent usable keys; a secure round needs at least ${least}`);
    }
    while (n > least && !fits(n, this.#cap, this.#clip)) n -= 1; // the ring holds fewer: the first to send keys take part
    if (!fits(n, this.#cap, this.#clip)) {
      throw new RoundAborted(`a round of ${n} does not fit the 32-bit ring with weight cap ${this.#cap} and clip ${this.#clip}`);
    }
    const kept = usable.slice(0, n);
    const order = sortedIds(kept.map(([id]) => id));
    kept.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
    const members: Member[] = kept.map(([id, cPublic, sPublic], i) => ({ id, position: i + 1, cPublic, sPublic }));
    const setup: RoundSetup = {
      taskId: this.taskId,
      round: this.round,
      members,
      threshold: thresholdFor(n, this.#taskThreshold),
      clip: this.#clip,
      weightCap: this.#cap,
      bits: scaleBits(n, this.#cap, this.#clip),
      length: 1 + this.#values,
    };
    checkRoster(setup, { taskThreshold: this.#taskThreshold });
    this.#setup = setup;
    return setup;
  }

  // -- 2. shares --------------------------------------------------------------------------------

  addShares(member: string, commitment: Uint8Array, envelopes: ReadonlyMap<string, Uint8Array>): void {
    const setup = this.#expect("shares");
    memberOf(setup, member);
    if (this.#envelopes.has(member)) {
      throw new SecureAggregationError("round", `${JSON.stringify(member)} already sent its shares`);
    }
    const others = memberIds(setup).filter((id) => id !== member);
    if (envelopes.size !== others.length || others.some((id) => !envelopes.has(id))) {
      throw new SecureAggregationError(
        "round",
        `${JSON.stringify(member)} must send one envelope to each of the ${others.length} other members`,
      );
    }
    if ([...envelopes.values()].some((e) => e.length !== CIPHERTEXT_BYTES)) {
      throw new SecureAggregationError("value", `an envelope of shares is ${CIPHERTEXT_BYTES} bytes`);
    }
    if (commitment.length !== COMMITMENT_BYTES) {
      throw new SecureAggregationError("value", `a commitment is ${COMMITMENT_BYTES} bytes`);
    }
    this.#commitments.set(member, new Uint8Array(commitment));
    this.#envelopes.set(member, new Map([...envelopes].map(([to, e]) => [to, new Uint8Array(e)])));
  }

  /** The members that shared (each masks with exactly these); `RoundAborted` below t. */
  closeShares(): readonly string[] {
    const setup = this.#expect("shares");
    const senders = sortedIds(this.#envelopes.keys());
    if (senders.length < setup.threshold) {
      throw new RoundAborted(`only ${senders.length} members sent their shares; unmasking needs ${setup.threshold}`);
    }
    this.#senders = senders;
    return [...senders];
  }

  /** The envelopes addressed to `member` from the members that shared (sender → envelope). */
  inbox(member: string): Map<string, Uint8Array> {
    if (this.#senders === undefined || this.#setup === undefined) {
      throw new SecureAggregationError("round", "the shares phase is not over");
    }
    memberOf(this.#setup, member);
    const out = new Map<string, Uint8Array>();
    for (const sender of this.#senders) {
      if (sender === member) continue;
      out.set(sender, new Uint8Array(this.#envelopes.get(sender)?.get(member) as Uint8Array));
    }
    return out;
  }

  // -- 3. masked inputs -------------------------------------------------------------------------

  addMasked(member: string, words: Uint32Array): void {
    const setup = this.#expect("masked");
    const senders = this.#senders as readonly string[];
    if (!senders.includes(member)) {
      throw new SecureAggregationError("round", `${JSON.stringify(member)} did not share: its input cannot be unmasked`);
    }
    if (this.#masked.has(member)) {
      throw new SecureAggregationError("round", `${JSON.stringify(member)} already sent its masked input`);
    }
    if (!(words instanceof Uint32Array)) {
      throw new SecureAggregationError("value", "a masked input is a vector of uint32 words");
    }
    if (words.length !== setup.length) {
      throw new SecureAggregationError("value", `a masked input of this round is ${setup.length} words, got ${words.length}`);
    }
    if (this.#sum === undefined) this.#sum = new Uint32Array(words);
    else addWords(this.#sum, words); // wraps modulo 2^32
    this.#masked.add(member);
  }

  /**
   * (survivors, dropped): who sent a masked input and who shared but did not. The coordinator of
   * a decentralized round, which holds no masked input, names the `survivors` itself (members
   * that shared).
   */
  closeMasked(named?: readonly string[]): RoundSplit {
    const setup = this.#expect("masked");
    if (named !== undefined) {
      const chosen = sortedIds(named);
      const senders = this.#senders as readonly string[];
      if (chosen.length !== named.length || chosen.some((m) => !senders.includes(m))) {
        throw new SecureAggregationError("round", "survivors must be distinct members that shared");
      }
      if (this.#masked.size > 0) {
        throw new SecureAggregationError("round", "this aggregator holds masked inputs: it names none");
      }
      for (const m of chosen) this.#masked.add(m);
    }
    const survivors = sortedIds(this.#masked);
    if (survivors.length < setup.threshold) {
      throw new RoundAborted(
        `only ${survivors.length} masked inputs arrived; unmasking needs ${setup.threshold} survivors`,
      );
    }
    const dropped = (this.#senders as readonly string[]).filter((m) => !this.#masked.has(m));
    this.#split = { survivors, dropped };
    return { survivors: [...survivors], dropped: [...dropped] };
  }

  // -- 4. unmasking -----------------------------------------------------------------------------

  addReveal(member: string, shares: readonly RevealedShare[]): void {
    this.#expect("unmasking");
    const { survivors, dropped } = this.#split as RoundSplit;
    if (!survivors.includes(member)) {
      throw new SecureAggregationError("round", `${JSON.stringify(member)} is not a survivor of this round`);
    }
    if (this.#reveals.has(member)) {
      throw new SecureAggregationError("round", `${JSON.stringify(member)} already revealed its shares`);
    }
    const expected = new Set([
      ...survivors.map((v) => revealKey(v, "self")),
      ...dropped.map((d) => revealKey(d, "key")),
    ]);
    const given = new Map<string, Uint8Array>(shares.map((s) => [revealKey(s.of, s.kind), s.share]));
    if (given.size !== shares.length || given.size !== expected.size || [...given.keys()].some((k) => !expected.has(k))) {
      throw new SecureAggregationError(
        "round",
        `${JSON.stringify(member)} must reveal exactly a self share for each survivor and a key share for each ` +
          "dropped member",
      );
    }
    if ([...given.values()].some((s) => s.length !== SHARE_BYTES)) {
      throw new SecureAggregationError("value", `a share is ${SHARE_BYTES} bytes`);
    }
    this.#reveals.set(member, new Map([...given].map(([k, s]) => [k, new Uint8Array(s)])));
  }

  /** The commitments of these members (those that shared), to relay to peers. */
  commitments(members: readonly string[]): Map<string, Uint8Array> {
    return new Map(
      members.map((m) => {
        const c = this.#commitments.get(m);
        if (c === undefined) throw new SecureAggregationError("round", `${JSON.stringify(m)} sent no commitment`);
        return [m, new Uint8Array(c)];
      }),
    );
  }

  /** Each survivor's revealed shares, in the order they arrived. */
  get reveals(): [string, RevealedShare[]][] {
    return [...this.#reveals].map(([member, given]) => [
      member,
      [...given].map(([key, share]) => {
        const [of, kind] = JSON.parse(key) as [string, ShareKind];
        return { of, kind, share: new Uint8Array(share) };
      }),
    ]);
  }

  /**
   * Σ y_u over the survivors (modulo 2^32). `RoundAborted` while fewer than t survivors revealed,
   * or if a rebuilt secret does not match its commitment or public key (wrong shares: nothing is
   * unmasked).
   */
  async result(): Promise<Uint32Array<ArrayBuffer>> {
    const setup = this.#expect("unmasking");
    if (this.#reveals.size < setup.threshold) {
      throw new RoundAborted(
        `only ${this.#reveals.size} survivors revealed their shares; unmasking needs ${setup.threshold}`,
      );
    }
    this.#salt ??= await roundSalt(this.taskId, this.round);
    const reveals = this.#reveals;
    const shareOf = (revealer: string, of: string, kind: ShareKind): Uint8Array =>
      reveals.get(revealer)?.get(revealKey(of, kind)) as Uint8Array;
    return unmask(setup, this.#sum as Uint32Array, this.#salt, this.#split as RoundSplit, {
      revealers: [...reveals.keys()],
      shareOf,
      commitments: this.#commitments,
    });
  }

  /** The round's setup, once it is in `phase` (the keys phase has none yet: a placeholder never read). */
  #expect(phase: RoundPhase): RoundSetup {
    if (this.phase !== phase) {
      throw new SecureAggregationError("round", `round ${this.round} is in its ${this.phase} phase, not ${phase}`);
    }
    return this.#setup ?? NO_SETUP;
  }
}

const NO_SETUP: RoundSetup = {
  taskId: "",
  round: 0,
  members: [],
  threshold: 0,
  clip: 1,
  weightCap: 1,
  bits: 0,
  length: 1,
};

/** Whether a round of `n` members fits the ring (docs/secure_aggregation.md §3.1). */
function fits(n: number, weightCap: number, clip: number): boolean {
  try {
    scaleBits(n, weightCap, clip);
    return true;
  } catch (error) {
    if (error instanceof SecureAggregationError) return false;
    throw error;
  }
}
