/**
 * Encrypted shares (docs/secure_aggregation.md §7): what participant u sends participant v,
 * through the aggregator, so that only v can read v's shares of u's secrets.
 *
 * - key: HKDF(ECDH(c_u, c_v^pub), salt, "share encryption"), which u and v derive alike;
 * - nonce: `u32be(position of u) ‖ 8 zero bytes` (one message per key and direction per round);
 * - additional data: `utf8("from ") ‖ utf8(u's id) ‖ utf8(" to ") ‖ utf8(v's id)`;
 * - plaintext: `share of b_u (33 bytes) ‖ share of s_u (33 bytes)`; AES-256-GCM appends a
 *   16-byte tag, so the ciphertext is 82 bytes.
 */

import { concat, own, u32be, utf8 } from "./bytes";
import { SecureAggregationError } from "./errors";
import { INFO, hkdf } from "./kdf";
import { ecdh } from "./keys";
import { SHARE_BYTES, decodeShare, encodeShare } from "./shamir";

/** Bytes of the plaintext (two shares) and of the ciphertext (plus the tag). */
export const PLAINTEXT_BYTES = 2 * SHARE_BYTES;
export const CIPHERTEXT_BYTES = PLAINTEXT_BYTES + 16;

/** Who sends the shares to whom, in which round: both ends must agree on every field. */
export interface EnvelopeContext {
  /** The round salt (`roundSalt`). */
  readonly salt: Uint8Array;
  /** The sender's position in the roster (its nonce). */
  readonly fromPosition: number;
  /** The sender's participant id. */
  readonly from: string;
  /** The recipient's participant id. */
  readonly to: string;
}

/** The two shares u sends v, decoded. */
export interface SharePair {
  /** v's share of u's self-mask seed b_u. */
  readonly selfSeed: bigint;
  /** v's share of u's `s` private scalar. */
  readonly sKey: bigint;
}

/** The plaintext of a share pair: two 33-byte shares. */
export function packShares(shares: SharePair): Uint8Array<ArrayBuffer> {
  return concat(encodeShare(shares.selfSeed), encodeShare(shares.sKey));
}

/** The share pair of a 66-byte plaintext. */
export function unpackShares(plaintext: Uint8Array): SharePair {
  if (plaintext.length !== PLAINTEXT_BYTES) {
    throw new SecureAggregationError("decrypt", `shares are ${PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
  }
  return {
    selfSeed: decodeShare(plaintext.subarray(0, SHARE_BYTES)),
    sKey: decodeShare(plaintext.subarray(SHARE_BYTES)),
  };
}

/** The AES-GCM parameters of one message. */
function gcmParams(context: EnvelopeContext): AesGcmParams {
  return {
    name: "AES-GCM",
    iv: concat(u32be(context.fromPosition), new Uint8Array(8)),
    additionalData: concat(utf8("from "), utf8(context.from), utf8(" to "), utf8(context.to)),
    tagLength: 128,
  };
}

/** The AES-256-GCM key of the pair: HKDF(ECDH(own c key, peer's c public key)). */
async function pairKey(ownKey: CryptoKey, peerPublic: Uint8Array, salt: Uint8Array): Promise<CryptoKey> {
  const secret = await ecdh(ownKey, peerPublic);
  const key = await hkdf(secret, salt, INFO.share);
  return crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/**
 * Encrypts a 66-byte plaintext for the recipient whose `c` public key is `peerPublic`, with the
 * sender's `c` private key: 82 bytes.
 */
export async function sealShares(
  ownKey: CryptoKey,
  peerPublic: Uint8Array,
  context: EnvelopeContext,
  plaintext: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  if (plaintext.length !== PLAINTEXT_BYTES) {
    throw new SecureAggregationError("value", `shares are ${PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
  }
  const key = await pairKey(ownKey, peerPublic, context.salt);
  return new Uint8Array(await crypto.subtle.encrypt(gcmParams(context), key, own(plaintext)));
}

/**
 * Decrypts the 82 bytes `context.from` sent, with the recipient's `c` private key and the
 * sender's `c` public key: the 66-byte plaintext. A ciphertext that does not decrypt (tampered,
 * or for another round, pair or direction) is an error naming the sender.
 */
export async function openShares(
  ownKey: CryptoKey,
  senderPublic: Uint8Array,
  context: EnvelopeContext,
  ciphertext: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  if (ciphertext.length !== CIPHERTEXT_BYTES) {
    throw new SecureAggregationError(
      "decrypt",
      `the shares from ${JSON.stringify(context.from)} are ${ciphertext.length} bytes, not ${CIPHERTEXT_BYTES}`,
    );
  }
  const key = await pairKey(ownKey, senderPublic, context.salt);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(gcmParams(context), key, own(ciphertext)));
  } catch {
    throw new SecureAggregationError("decrypt", `the shares from ${JSON.stringify(context.from)} do not decrypt`);
  }
}
