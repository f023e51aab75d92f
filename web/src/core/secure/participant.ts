/**
 * A participant's side of one secure round: keys, shares, masked input, reveal. Python's
 * `disco.secure.participant.SecureParticipant`, refusal for refusal.
 *
 * The four phases of docs/secure_aggregation.md §10, as a participant lives them. Each method is
 * one phase's answer to what the coordinator sent; the class keeps what the round needs and
 * refuses, with a `SecureAggregationError`, anything that would reveal more than the protocol
 * allows:
 *
 * 1. `keys()`: two fresh P-256 public keys (`c` encrypts shares to it, `s` agrees masks), made by
 *    `SecureParticipant.create`;
 * 2. `share(setup)`: once the roster is fixed, a fresh self-mask seed b_u, and for every other
 *    member an envelope holding its Shamir shares of b_u and of the `s` private scalar, plus a
 *    commitment to b_u;
 * 3. `receive(envelopes)` then `mask(words, senders)`: the shares addressed to it are opened and
 *    kept; the masked input carries pairwise masks with exactly the members that sent shares;
 * 4. `reveal(survivors, dropped)`: for each survivor its share of b_v, for each dropped member its
 *    share of the `s` scalar — never both for one member, never for a different split of the
 *    same round, and only if the survivors are enough to unmask (at least t).
 *
 * Keys: `c` stays inside WebCrypto (not extractable); `s` is generated extractable, because its
 * scalar (JWK `d`) is Shamir-shared. Nothing here does I/O: the clients carry the messages.
 */

import { concat, sameBytes, u64be } from "./bytes";
import { openShares, sealShares } from "./envelope";
import { SecureAggregationError } from "./errors";
import { roundSalt } from "./kdf";
import { PUBLIC_KEY_BYTES, SCALAR_BYTES, generateKeyPair, importPrivateKey, type KeyPair } from "./keys";
import { maskedInput } from "./masking";
import { type RoundSetup, checkRoster, commitment, memberOf, positions, sortedIds } from "./roster";
import { SECRET_BYTES, SHARE_BYTES, encodeShare, split } from "./shamir";

/** Which secret of a member a revealed share is of: its self-mask seed b_v, or its `s` scalar. */
export type ShareKind = "self" | "key";

/** One share revealed in phase 4: `share` (33 bytes) of `of`'s secret `kind`. */
export interface RevealedShare {
  readonly of: string;
  readonly kind: ShareKind;
  readonly share: Uint8Array;
}

/** Phase 2's output: the commitment to b_u and one envelope per other member, by recipient id. */
export interface SharesOut {
  readonly commitment: Uint8Array<ArrayBuffer>;
  readonly envelopes: Map<string, Uint8Array<ArrayBuffer>>;
}

/** A participant's two public keys, 65 bytes each. */
export interface PublicKeys {
  readonly cPublic: Uint8Array<ArrayBuffer>;
  readonly sPublic: Uint8Array<ArrayBuffer>;
}

/** Options of a participant: the task's threshold (`secure_aggregation.threshold`), if any. */
export interface ParticipantOptions {
  readonly threshold?: number | null;
}

/** Where a participant's random choices of a round come from (the CSPRNG but in tests). */
interface Randomness {
  /** b_u, 32 bytes. */
  seed(): Uint8Array;
  /** a_1..a_{t−1} of the polynomial sharing the secret `kind`; undefined: drawn by `split`. */
  coefficients(kind: ShareKind): readonly bigint[] | undefined;
}

const CSPRNG: Randomness = {
  seed: () => crypto.getRandomValues(new Uint8Array(SECRET_BYTES)),
  coefficients: () => undefined,
};

interface Construction {
  readonly taskId: string;
  readonly round: number;
  readonly me: string;
  readonly taskThreshold: number | null;
  readonly salt: Uint8Array;
  readonly c: { readonly privateKey: CryptoKey; readonly publicKey: Uint8Array<ArrayBuffer> };
  readonly s: KeyPair;
  readonly random: Randomness;
}

let construct: (parts: Construction) => SecureParticipant;

/** One participant `me` in round `round` of task `taskId`. */
export class SecureParticipant {
  readonly taskId: string;
  readonly round: number;
  readonly me: string;
  readonly #taskThreshold: number | null;
  readonly #salt: Uint8Array;
  readonly #c: Construction["c"];
  readonly #s: KeyPair;
  readonly #random: Randomness;
  #setup: RoundSetup | undefined;
  #seed: Uint8Array | undefined;
  /** member → (its share of b, its share of s), 33 bytes each. */
  readonly #held = new Map<string, readonly [Uint8Array, Uint8Array]>();
  /** Senders whose envelope is being opened. */
  readonly #opening = new Set<string>();
  #senders: readonly string[] | undefined;
  #revealed: { readonly alive: readonly string[]; readonly gone: readonly string[] } | undefined;

  static {
    construct = (parts) => new SecureParticipant(parts);
  }

  private constructor(parts: Construction) {
    this.taskId = parts.taskId;
    this.round = parts.round;
    this.me = parts.me;
    this.#taskThreshold = parts.taskThreshold;
    this.#salt = parts.salt;
    this.#c = parts.c;
    this.#s = parts.s;
    this.#random = parts.random;
  }

  /** A participant of the round with two fresh key pairs from WebCrypto. */
  static async create(taskId: string, round: number, me: string, options: ParticipantOptions = {}): Promise<SecureParticipant> {
    u64be(round); // a round number WebCrypto's salt can take, checked before anything is made
    const salt = await roundSalt(taskId, round);
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
    const cPublic = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    if (cPublic.length !== PUBLIC_KEY_BYTES) {
      throw new SecureAggregationError("key", "WebCrypto exported a P-256 key of an unexpected size");
    }
    const s = await generateKeyPair(); // extractable: its scalar is shared
    return construct({
      taskId,
      round,
      me,
      taskThreshold: options.threshold ?? null,
      salt,
      c: { privateKey: pair.privateKey, publicKey: cPublic },
      s,
      random: CSPRNG,
    });
  }

  // -- 1. keys ----------------------------------------------------------------------------------

  /** The `c` and `s` public keys, 65 bytes each (uncompressed SEC1). */
  keys(): PublicKeys {
    return { cPublic: new Uint8Array(this.#c.publicKey), sPublic: new Uint8Array(this.#s.publicKey) };
  }

  // -- 2. shares --------------------------------------------------------------------------------

  /** Checks the roster, draws b_u and seals this member's shares for every other member. */
  async share(setup: RoundSetup): Promise<SharesOut> {
    if (this.#setup !== undefined) {
      throw new SecureAggregationError("round", "this participant already shared for this round");
    }
    if (setup.taskId !== this.taskId || setup.round !== this.round) {
      throw new SecureAggregationError(
        "round",
        `a roster for ${JSON.stringify(setup.taskId)} round ${setup.round} reached the secure round of ` +
          `${JSON.stringify(this.taskId)} round ${this.round}`,
      );
    }
    checkRoster(setup, { taskThreshold: this.#taskThreshold });
    const me = memberOf(setup, this.me);
    if (!sameBytes(me.cPublic, this.#c.publicKey) || !sameBytes(me.sPublic, this.#s.publicKey)) {
      throw new SecureAggregationError("roster", "the roster does not carry this participant's keys");
    }
    this.#setup = setup;
    const seed = this.#random.seed();
    if (seed.length !== SECRET_BYTES) throw new SecureAggregationError("value", `a self-mask seed is ${SECRET_BYTES} bytes`);
    this.#seed = new Uint8Array(seed);
    const n = setup.members.length;
    const t = setup.threshold;
    const bShares = split(this.#seed, t, n, this.#random.coefficients("self"));
    const sShares = split(this.#s.scalar, t, n, this.#random.coefficients("key"));
    const sealed = await Promise.all(
      setup.members.map(async (member) => {
        const b = encodeShare((bShares[member.position - 1] as { y: bigint }).y);
        const s = encodeShare((sShares[member.position - 1] as { y: bigint }).y);
        if (member.id === this.me) {
          this.#held.set(this.me, [b, s]); // its own shares count toward t as well
          return undefined;
        }
        const context = { salt: this.#salt, fromPosition: me.position, from: this.me, to: member.id };
        return [member.id, await sealShares(this.#c.privateKey, member.cPublic, context, concat(b, s))] as const;
      }),
    );
    const envelopes = new Map<string, Uint8Array<ArrayBuffer>>();
    for (const entry of sealed) if (entry !== undefined) envelopes.set(entry[0], entry[1]);
    return { commitment: await commitment(this.#seed, this.#salt), envelopes };
  }

  // -- 3. masked input --------------------------------------------------------------------------

  /** Opens the envelopes addressed to this participant (sender id → envelope), in order; if one does not open, none is kept. */
  async receive(envelopes: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const setup = this.#shared();
    const opened = new Map<string, [Uint8Array, Uint8Array]>();
    const senders = [...envelopes.keys()];
    for (const sender of senders) {
      if (sender === this.me || this.#held.has(sender) || this.#opening.has(sender)) {
        throw new SecureAggregationError("round", `shares from ${JSON.stringify(sender)} arrived twice`);
      }
    }
    for (const sender of senders) this.#opening.add(sender);
    try {
      for (const [sender, envelope] of envelopes) {
        const member = memberOf(setup, sender);
        const context = { salt: this.#salt, fromPosition: member.position, from: sender, to: this.me };
        const plain = await openShares(this.#c.privateKey, member.cPublic, context, envelope);
        opened.set(sender, [plain.slice(0, SHARE_BYTES), plain.slice(SHARE_BYTES)]);
      }
    } finally {
      for (const sender of senders) this.#opening.delete(sender);
    }
    for (const [sender, shares] of opened) this.#held.set(sender, shares); // all or nothing
  }

  /**
   * The masked input of `words` (this participant's quantised update, `setup.length` words), with
   * pairwise masks for exactly the members that sent their shares (`senders`).
   */
  async mask(words: Uint32Array, senders: readonly string[]): Promise<Uint32Array<ArrayBuffer>> {
    const setup = this.#shared();
    const chosen = sortedIds(senders);
    if (chosen.length !== senders.length) {
      throw new SecureAggregationError("round", "the members that shared are listed twice");
    }
    if (!chosen.includes(this.me)) {
      throw new SecureAggregationError("round", "this participant's own shares are missing from the list");
    }
    const lacking = chosen.filter((m) => !this.#held.has(m));
    if (lacking.length > 0) {
      throw new SecureAggregationError("round", `no shares were received from ${JSON.stringify(lacking)}`);
    }
    if (chosen.length < setup.threshold) {
      throw new SecureAggregationError(
        "round",
        `only ${chosen.length} members shared, fewer than the threshold ${setup.threshold}`,
      );
    }
    if (!(words instanceof Uint32Array) || words.length !== setup.length) {
      const got = words instanceof Uint32Array ? `${words.length} words` : String(Object.prototype.toString.call(words));
      throw new SecureAggregationError("value", `a masked input is ${setup.length} uint32 words, got ${got}`);
    }
    if (this.#senders !== undefined) {
      throw new SecureAggregationError("round", "this participant already sent its masked input");
    }
    this.#senders = chosen;
    const me = memberOf(setup, this.me);
    return maskedInput(words, me.position, this.#s.privateKey, positions(setup, chosen), this.#seed as Uint8Array, this.#salt);
  }

  // -- 4. unmasking -----------------------------------------------------------------------------

  /**
   * Its shares of b_v for every survivor v and of the `s` scalar of every dropped member d.
   * Refused unless the survivors and the dropped split exactly the members whose shares went into
   * its masked input, the survivors (itself among them) reach the threshold, and no other split
   * was asked for before.
   */
  reveal(survivors: readonly string[], dropped: readonly string[]): RevealedShare[] {
    const setup = this.#shared();
    if (this.#senders === undefined) {
      throw new SecureAggregationError("round", "no masked input was sent: there is nothing to unmask");
    }
    const alive = sortedIds(survivors);
    const gone = sortedIds(dropped);
    if (alive.length !== survivors.length || gone.length !== dropped.length) {
      throw new SecureAggregationError("round", "a member is listed twice among survivors or dropped");
    }
    const both = alive.filter((m) => gone.includes(m));
    if (both.length > 0) {
      throw new SecureAggregationError(
        "round",
        `${JSON.stringify(both)} are listed as survivors and as dropped: revealing both secrets of one member ` +
          "would expose its update",
      );
    }
    const split = sortedIds([...alive, ...gone]);
    const senders = this.#senders;
    if (split.length !== senders.length || split.some((m, i) => m !== senders[i])) {
      throw new SecureAggregationError("round", "survivors and dropped must be exactly the members that shared");
    }
    if (!alive.includes(this.me)) {
      throw new SecureAggregationError("round", "this participant is listed as dropped");
    }
    if (alive.length < setup.threshold) {
      throw new SecureAggregationError("round", `${alive.length} survivors cannot unmask (threshold ${setup.threshold})`);
    }
    const before = this.#revealed;
    if (before !== undefined && !(sameList(before.alive, alive) && sameList(before.gone, gone))) {
      throw new SecureAggregationError("round", "another split of this round was asked for before");
    }
    this.#revealed = { alive, gone };
    const held = (m: string): readonly [Uint8Array, Uint8Array] =>
      this.#held.get(m) as readonly [Uint8Array, Uint8Array];
    return [
      ...alive.map((v) => ({ of: v, kind: "self" as const, share: new Uint8Array(held(v)[0]) })),
      ...gone.map((d) => ({ of: d, kind: "key" as const, share: new Uint8Array(held(d)[1]) })),
    ];
  }

  #shared(): RoundSetup {
    if (this.#setup === undefined) {
      throw new SecureAggregationError("round", "the round's roster has not been shared yet");
    }
    return this.#setup;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---- tests only -------------------------------------------------------------------------------

/** The random choices a test fixes (tests/vectors/secure_round.json's `members`). */
export interface FixedRandomness {
  /** The `c` and `s` private scalars, 32 bytes big-endian each. */
  readonly cPrivate: Uint8Array;
  readonly sPrivate: Uint8Array;
  /** b_u, 32 bytes. */
  readonly selfSeed: Uint8Array;
  /** a_1..a_{t−1} of the polynomials sharing b_u and the `s` scalar. */
  readonly selfCoefficients: readonly bigint[];
  readonly keyCoefficients: readonly bigint[];
}

/**
 * TESTS ONLY — not exported from `./index`, never for a real round: a participant whose keys,
 * self-mask seed and Shamir coefficients are the given ones instead of fresh random ones, so that
 * its messages can be compared byte for byte with the shared vectors. Its `c` private key is
 * imported extractable and its seed used once (a second `share` is refused anyway).
 */
export async function participantWithFixedRandomness(
  taskId: string,
  round: number,
  me: string,
  fixed: FixedRandomness,
  options: ParticipantOptions = {},
): Promise<SecureParticipant> {
  if (fixed.cPrivate.length !== SCALAR_BYTES || fixed.sPrivate.length !== SCALAR_BYTES) {
    throw new SecureAggregationError("key", `a private scalar is ${SCALAR_BYTES} bytes`);
  }
  u64be(round);
  const c = await importPrivateKey(fixed.cPrivate);
  return construct({
    taskId,
    round,
    me,
    taskThreshold: options.threshold ?? null,
    salt: await roundSalt(taskId, round),
    c: { privateKey: c.privateKey, publicKey: c.publicKey },
    s: await importPrivateKey(fixed.sPrivate),
    random: {
      seed: () => fixed.selfSeed,
      coefficients: (kind) => (kind === "self" ? fixed.selfCoefficients : fixed.keyCoefficients),
    },
  });
}
