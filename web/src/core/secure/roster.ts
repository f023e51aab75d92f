/**
 * The round's roster (docs/secure_aggregation.md §6): who takes part in a secure round, at which
 * position, with which keys. Python's `disco.secure.roster`, check for check.
 *
 * The coordinator (the server) fixes the roster once the keys phase ends: the members in order of
 * participant id, positions 1..n, each with its two public keys, the threshold t and the round's
 * quantisation (clip range, weight cap, scale bits, length). Every participant and the aggregator
 * check it the same way (`checkRoster`), so a roster that one would refuse is refused by all.
 *
 * The threshold: any t of the round's members can unmask; up to n − t may drop out. It is never
 * below a strict majority of the roster (`thresholdFor`): with t ≤ n/2, two disjoint groups of
 * survivors could each be asked for a different secret of the same participant.
 *
 * Ids are ordered as Python orders `str`, by Unicode code point (`compareIds`), not by UTF-16
 * code unit as JavaScript's `<` does: the two differ for characters above U+FFFF.
 */

import { concat, toHex } from "./bytes";
import { SecureAggregationError } from "./errors";
import { PUBLIC_KEY_BYTES, checkPublicKey } from "./keys";
import type { RosterEntry } from "./masking";
import { scaleBits } from "./quantize";

/** The fewest members of a secure round: with two, each could subtract its own update from the sum
 * and read the other's. */
export const MIN_MEMBERS = 3;
/** Bytes of a commitment to a self-mask seed (SHA-256). */
export const COMMITMENT_BYTES = 32;

/** One member of the roster: its participant id, 1-based position and public keys. */
export interface Member {
  readonly id: string;
  readonly position: number;
  /** Encrypts the shares sent to it (65 bytes, uncompressed SEC1). */
  readonly cPublic: Uint8Array;
  /** Agrees its pairwise masks (65 bytes). */
  readonly sPublic: Uint8Array;
}

/** What every member of a secure round must agree on before it shares anything. */
export interface RoundSetup {
  readonly taskId: string;
  readonly round: number;
  readonly members: readonly Member[];
  readonly threshold: number;
  readonly clip: number;
  readonly weightCap: number;
  /** The scale is 2^bits (§3.1). */
  readonly bits: number;
  /** Words of a masked input: 1 (the weight) + the model's values. */
  readonly length: number;
}

/** Python's order of two strings (by code point): negative, zero or positive. */
export function compareIds(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate starts a code point above U+FFFF, which sorts after every other unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** `ids`, distinct, in Python's order (a new array). */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...new Set(ids)].sort(compareIds);
}

/** The member `participant` of the round; an error if it is not one. */
export function memberOf(setup: RoundSetup, participant: string): Member {
  const member = setup.members.find((m) => m.id === participant);
  if (member === undefined) {
    throw new SecureAggregationError("round", `${JSON.stringify(participant)} is not a member of round ${setup.round}`);
  }
  return member;
}

/** The members' ids, in roster order. */
export function memberIds(setup: RoundSetup): string[] {
  return setup.members.map((m) => m.id);
}

/**
 * The threshold of a round of `n` members: the task's, but never below ⌊n/2⌋ + 1 (a task asking
 * for more members than the round has is refused where the round starts).
 */
export function thresholdFor(n: number, taskThreshold?: number | null): number {
  const majority = Math.floor(n / 2) + 1;
  return Math.max(majority, taskThreshold || 0);
}

/**
 * SHA-256(salt ‖ b_u): sent with the shares, so that the aggregator can tell a self-mask seed
 * rebuilt from wrong shares instead of unmasking with it.
 */
export async function commitment(seed: Uint8Array, salt: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(salt, seed)));
}

/**
 * Checks a round's setup as every member and the aggregator must; returns each member's `s`
 * public key by id. Throws a `SecureAggregationError` saying what is wrong (kind `roster`, or that
 * of `scaleBits` / `checkPublicKey`).
 */
export function checkRoster(setup: RoundSetup, options: { taskThreshold?: number | null } = {}): Map<string, Uint8Array> {
  const members = setup.members;
  const n = members.length;
  if (n < MIN_MEMBERS) {
    throw new SecureAggregationError("roster", `a secure round needs at least ${MIN_MEMBERS} members, this one has ${n}`);
  }
  const ids = members.map((m) => m.id);
  const sorted = sortedIds(ids);
  if (sorted.length !== n || sorted.some((id, i) => id !== ids[i])) {
    throw new SecureAggregationError("roster", "the roster must list distinct members in order of id");
  }
  if (members.some((m, i) => m.position !== i + 1)) {
    throw new SecureAggregationError("roster", "the roster's positions must be 1..n in order of id");
  }
  const least = thresholdFor(n, options.taskThreshold);
  if (!Number.isSafeInteger(setup.threshold) || setup.threshold < least || setup.threshold > n) {
    throw new SecureAggregationError(
      "roster",
      `a round of ${n} members needs a threshold from ${least} to ${n}, not ${setup.threshold}`,
    );
  }
  if (setup.bits !== scaleBits(n, setup.weightCap, setup.clip)) {
    throw new SecureAggregationError(
      "roster",
      `the round's scale 2^${setup.bits} is not the one ${n} members, weight cap ${setup.weightCap} and clip ` +
        `${setup.clip} give`,
    );
  }
  if (!Number.isSafeInteger(setup.length) || setup.length < 1) {
    throw new SecureAggregationError("roster", "a masked input has at least the weight word");
  }
  const keys = new Map<string, Uint8Array>();
  const seen = new Set<string>();
  for (const m of members) {
    for (const key of [m.cPublic, m.sPublic]) {
      const hex = toHex(key);
      if (key.length !== PUBLIC_KEY_BYTES || seen.has(hex)) {
        throw new SecureAggregationError(
          "roster",
          `${JSON.stringify(m.id)} has a malformed or reused public key: every key is fresh`,
        );
      }
      seen.add(hex);
      checkPublicKey(key); // on the curve
    }
    keys.set(m.id, m.sPublic);
  }
  return keys;
}

/** (position, `s` public key) of the members `ids`, for the masking functions. */
export function positions(setup: RoundSetup, ids: readonly string[]): RosterEntry[] {
  return ids.map((id) => {
    const member = memberOf(setup, id);
    return { position: member.position, publicKey: member.sPublic };
  });
}
