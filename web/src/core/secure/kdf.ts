/**
 * Derived secrets (docs/secure_aggregation.md §4): the round salt and HKDF-SHA256 with the three
 * `info` strings that separate the uses of a shared secret.
 *
 *     salt = SHA-256(utf8("disco secure aggregation v1") ‖ utf8(task id) ‖ u64be(round))
 *     key  = HKDF-SHA256(ikm, salt, info), 32 bytes (RFC 5869)
 */

import { concat, own, u64be, utf8 } from "./bytes";

/** The prefix of every round salt. */
export const SALT_LABEL = "disco secure aggregation v1";

/** The `info` of each use of HKDF. */
export const INFO = {
  /** s_uv = HKDF(ECDH(s_u, s_v^pub)): the key of u and v's pairwise mask. */
  pairwise: "pairwise mask",
  /** HKDF(b_u): the key of u's self-mask. */
  self: "self mask",
  /** HKDF(ECDH(c_u, c_v^pub)): the AES-GCM key of the shares u and v send each other. */
  share: "share encryption",
} as const;

/** One of the `info` strings of `INFO`. */
export type HkdfInfo = (typeof INFO)[keyof typeof INFO];

/** The salt of one round of one task: every HKDF of the round uses it. */
export async function roundSalt(taskId: string, round: number): Promise<Uint8Array<ArrayBuffer>> {
  const data = concat(utf8(SALT_LABEL), utf8(taskId), u64be(round));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/** HKDF-SHA256 of `ikm` with the round's `salt` and the text `info`: 32 bytes. */
export async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", own(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: own(salt), info: utf8(info) },
    key,
    256,
  );
  return new Uint8Array(bits);
}
