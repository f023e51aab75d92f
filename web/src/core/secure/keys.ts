/**
 * P-256 key pairs and ECDH (docs/secure_aggregation.md §2, §4): every participant makes two fresh
 * pairs per round, `c` (to encrypt shares) and `s` (to agree pairwise masks).
 *
 * - Public keys travel as uncompressed SEC1 points, 65 bytes `0x04 ‖ x ‖ y`; a malformed one
 *   (wrong length or prefix, coordinates out of range, not on the curve) is refused with a
 *   `SecureAggregationError` of kind `key` before WebCrypto sees it.
 * - Private keys travel as 32-byte big-endian scalars in [1, n). WebCrypto imports a private key
 *   only with its public point (JWK `d`, `x`, `y`), so `importPrivateKey` computes the point
 *   itself with BigInt arithmetic on the curve (`publicKeyOf`). That arithmetic is not constant
 *   time: it is for scalars already revealed (a dropped participant's s key, rebuilt by the
 *   aggregator from shares, §8) and for tests, never for a participant's own fresh keys, which
 *   `generateKeyPair` makes inside WebCrypto.
 * - ECDH gives the x-coordinate of the product point, 32 bytes (`deriveBits(…, 256)`).
 */

import { bigintToBytes, bytesToBigint, concat, own } from "./bytes";
import { SecureAggregationError } from "./errors";
import { mod, modInverse } from "./modular";

/** The field prime of P-256. */
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
/** The curve's b (its a is −3). */
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
/** The base point. */
const GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n;
const GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n;
/** The order of the base point: private scalars lie in [1, N). */
export const CURVE_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/** Bytes of a private scalar and of a public key. */
export const SCALAR_BYTES = 32;
export const PUBLIC_KEY_BYTES = 65;

const ALGORITHM = { name: "ECDH", namedCurve: "P-256" } as const;

/** A P-256 key pair: the private key for WebCrypto, and what of it travels. */
export interface KeyPair {
  /** The private key, usable for `deriveBits` (ECDH). */
  readonly privateKey: CryptoKey;
  /** The private scalar, 32 bytes big-endian: what is Shamir-shared of the `s` key. */
  readonly scalar: Uint8Array<ArrayBuffer>;
  /** The public key, 65 bytes uncompressed SEC1. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
}

// ---- the curve, in Jacobian coordinates (X/Z², Y/Z³); Z = 0 is the point at infinity ----

type Jacobian = readonly [bigint, bigint, bigint];

const f = (a: bigint): bigint => mod(a, P);

/** 2·Q ("dbl-2001-b", a = −3). */
function double([x, y, z]: Jacobian): Jacobian {
  if (z === 0n || y === 0n) return [1n, 1n, 0n];
  const delta = f(z * z);
  const gamma = f(y * y);
  const beta = f(x * gamma);
  const alpha = f(3n * (x - delta) * (x + delta));
  const x3 = f(alpha * alpha - 8n * beta);
  const z3 = f((y + z) * (y + z) - gamma - delta);
  const y3 = f(alpha * (4n * beta - x3) - 8n * gamma * gamma);
  return [x3, y3, z3];
}

/** Q1 + Q2 ("add-2007-bl"). */
function add(q1: Jacobian, q2: Jacobian): Jacobian {
  const [x1, y1, z1] = q1;
  const [x2, y2, z2] = q2;
  if (z1 === 0n) return q2;
  if (z2 === 0n) return q1;
  const z1z1 = f(z1 * z1);
  const z2z2 = f(z2 * z2);
  const u1 = f(x1 * z2z2);
  const u2 = f(x2 * z1z1);
  const s1 = f(y1 * z2 * z2z2);
  const s2 = f(y2 * z1 * z1z1);
  const h = f(u2 - u1);
  const r = f(2n * (s2 - s1));
  if (h === 0n) return r === 0n ? double(q1) : [1n, 1n, 0n];
  const i = f(4n * h * h);
  const j = f(h * i);
  const v = f(u1 * i);
  const x3 = f(r * r - j - 2n * v);
  const y3 = f(r * (v - x3) - 2n * s1 * j);
  const z3 = f(((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h);
  return [x3, y3, z3];
}

/** k·G, as affine coordinates (k in [1, N), so never the point at infinity). */
function multiplyBase(k: bigint): [bigint, bigint] {
  const g: Jacobian = [GX, GY, 1n];
  let q: Jacobian = [1n, 1n, 0n];
  for (let bit = BigInt(k.toString(2).length - 1); bit >= 0n; bit--) {
    q = double(q);
    if (((k >> bit) & 1n) === 1n) q = add(q, g);
  }
  const zInverse = modInverse(q[2], P);
  const zInverse2 = f(zInverse * zInverse);
  return [f(q[0] * zInverse2), f(q[1] * zInverse2 * zInverse)];
}

// ---- encodings ----

/** The scalar of 32 big-endian bytes, checked to be in [1, N). */
function readScalar(scalar: Uint8Array): bigint {
  if (scalar.length !== SCALAR_BYTES) {
    throw new SecureAggregationError("key", `a private scalar is ${SCALAR_BYTES} bytes, got ${scalar.length}`);
  }
  const d = bytesToBigint(scalar);
  if (d === 0n || d >= CURVE_ORDER) {
    throw new SecureAggregationError("key", "a private scalar must be in [1, n) of P-256");
  }
  return d;
}

/** Checks that `publicKey` is an uncompressed point on P-256 (not the point at infinity). */
export function checkPublicKey(publicKey: Uint8Array): void {
  if (publicKey.length !== PUBLIC_KEY_BYTES || publicKey[0] !== 0x04) {
    throw new SecureAggregationError(
      "key",
      `a public key is ${PUBLIC_KEY_BYTES} bytes starting with 0x04 (uncompressed SEC1), ` +
        `got ${publicKey.length} bytes starting with 0x${(publicKey[0] ?? 0).toString(16).padStart(2, "0")}`,
    );
  }
  const x = bytesToBigint(publicKey.subarray(1, 33));
  const y = bytesToBigint(publicKey.subarray(33, 65));
  if (x >= P || y >= P || f(y * y) !== f(x * x * x - 3n * x + B)) {
    throw new SecureAggregationError("key", "a public key is not a point on P-256");
  }
}

/** The public key (65 bytes, uncompressed SEC1) of a 32-byte private scalar. */
export function publicKeyOf(scalar: Uint8Array): Uint8Array<ArrayBuffer> {
  const [x, y] = multiplyBase(readScalar(scalar));
  return concat(Uint8Array.of(0x04), bigintToBytes(x, 32), bigintToBytes(y, 32));
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

// ---- WebCrypto ----

/** A fresh P-256 key pair from WebCrypto's generator. */
export async function generateKeyPair(): Promise<KeyPair> {
  const pair = await crypto.subtle.generateKey(ALGORITHM, true, ["deriveBits"]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const scalar = fromBase64url(jwk.d ?? "");
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  if (scalar.length !== SCALAR_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new SecureAggregationError("key", "WebCrypto exported a P-256 key of an unexpected size");
  }
  return { privateKey: pair.privateKey, scalar, publicKey };
}

/** The key pair of a 32-byte private scalar (its public point computed here, see the header). */
export async function importPrivateKey(scalar: Uint8Array): Promise<KeyPair> {
  const publicKey = publicKeyOf(scalar);
  const jwk: JsonWebKey = {
    kty: "EC",
    crv: "P-256",
    d: base64url(scalar),
    x: base64url(publicKey.subarray(1, 33)),
    y: base64url(publicKey.subarray(33, 65)),
    ext: true,
  };
  try {
    const privateKey = await crypto.subtle.importKey("jwk", jwk, ALGORITHM, true, ["deriveBits"]);
    return { privateKey, scalar: own(scalar), publicKey };
  } catch (error) {
    throw new SecureAggregationError("key", `WebCrypto refused a P-256 private key: ${String(error)}`);
  }
}

/** A peer's public key (65 bytes, uncompressed SEC1), checked, for `ecdh`. */
export async function importPublicKey(publicKey: Uint8Array): Promise<CryptoKey> {
  checkPublicKey(publicKey);
  try {
    return await crypto.subtle.importKey("raw", own(publicKey), ALGORITHM, true, []);
  } catch (error) {
    throw new SecureAggregationError("key", `WebCrypto refused a P-256 public key: ${String(error)}`);
  }
}

/** The ECDH secret of a private key and a peer's public key: the x-coordinate, 32 bytes. */
export async function ecdh(privateKey: CryptoKey, peerPublic: Uint8Array | CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const peer = peerPublic instanceof Uint8Array ? await importPublicKey(peerPublic) : peerPublic;
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: peer }, privateKey, 256));
}
