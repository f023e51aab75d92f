/**
 * Shamir secret sharing over GF(p), p = 2^256 + 297 (docs/secure_aggregation.md §5).
 *
 * A secret is 32 bytes read as a big-endian integer (so every secret is a field element). Split
 * with threshold t among n: f(X) = secret + a_1·X + … + a_{t−1}·X^{t−1}, the coefficients drawn
 * uniformly from [0, p) by rejection sampling from `crypto.getRandomValues` (or given, for the
 * test vectors); the share of position i is f(i), sent as 33 bytes big-endian. Any t shares with
 * distinct x give f(0) back by Lagrange interpolation; fewer is an error, never a guess.
 */

import { bigintToBytes, bytesToBigint } from "./bytes";
import { SecureAggregationError } from "./errors";
import { mod, modInverse } from "./modular";

/** The field's prime: the smallest prime above 2^256. */
export const FIELD_PRIME = 2n ** 256n + 297n;
/** Bytes of a secret. */
export const SECRET_BYTES = 32;
/** Bytes of a share on the wire. */
export const SHARE_BYTES = 33;

/** One share: the recipient's position `x` (≥ 1) and f(x). */
export interface Share {
  readonly x: number;
  readonly y: bigint;
}

/** A field element drawn uniformly from [0, p): 257 random bits, redrawn until below p. */
export function randomFieldElement(): bigint {
  const bytes = new Uint8Array(SHARE_BYTES);
  for (;;) {
    crypto.getRandomValues(bytes);
    bytes[0] = (bytes[0] as number) & 0x01;
    const value = bytesToBigint(bytes);
    if (value < FIELD_PRIME) return value;
  }
}

function checkX(x: number): void {
  if (!Number.isSafeInteger(x) || x < 1) {
    throw new SecureAggregationError("shares", `a share's x is a position ≥ 1, got ${x}`);
  }
}

/**
 * The shares of a 32-byte `secret` for positions 1..`count`, any `threshold` of which rebuild it.
 * `coefficients` (a_1..a_{t−1}, each in [0, p)) fix the polynomial; by default they are random.
 */
export function split(
  secret: Uint8Array,
  threshold: number,
  count: number,
  coefficients?: readonly bigint[],
): Share[] {
  if (secret.length !== SECRET_BYTES) {
    throw new SecureAggregationError("shares", `a secret is ${SECRET_BYTES} bytes, got ${secret.length}`);
  }
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(threshold) || threshold < 1 || threshold > count) {
    throw new SecureAggregationError("shares", `need 1 ≤ threshold ≤ n, got threshold ${threshold} and n ${count}`);
  }
  let a: readonly bigint[];
  if (coefficients === undefined) {
    a = Array.from({ length: threshold - 1 }, randomFieldElement);
  } else {
    if (coefficients.length !== threshold - 1) {
      throw new SecureAggregationError("shares", `threshold ${threshold} needs ${threshold - 1} coefficients, got ${coefficients.length}`);
    }
    if (coefficients.some((c) => c < 0n || c >= FIELD_PRIME)) {
      throw new SecureAggregationError("shares", "every coefficient must be in [0, p)");
    }
    a = coefficients;
  }
  const constant = bytesToBigint(secret);
  const shares: Share[] = [];
  for (let x = 1; x <= count; x++) {
    // Horner: ((a_{t−1}·x + a_{t−2})·x + …)·x + secret.
    const bx = BigInt(x);
    let y = 0n;
    for (let k = a.length - 1; k >= 0; k--) y = mod((y + (a[k] as bigint)) * bx, FIELD_PRIME);
    shares.push({ x, y: mod(y + constant, FIELD_PRIME) });
  }
  return shares;
}

/**
 * The secret of `threshold` or more shares with distinct x: Lagrange interpolation at 0 over the
 * first `threshold` given (as Python's `disco.secure.shamir.reconstruct`; every share is checked).
 * Fewer than `threshold` shares, a repeated x, or a result that is not a 32-byte secret (shares
 * of different polynomials) is an error.
 */
export function reconstruct(shares: readonly Share[], threshold: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new SecureAggregationError("shares", `a threshold is an integer ≥ 1, got ${threshold}`);
  }
  if (shares.length < threshold) {
    throw new SecureAggregationError("shares", `${shares.length} shares cannot rebuild a secret of threshold ${threshold}`);
  }
  const seen = new Set<number>();
  for (const { x, y } of shares) {
    checkX(x);
    if (seen.has(x)) throw new SecureAggregationError("shares", `two shares have x = ${x}`);
    seen.add(x);
    if (y < 0n || y >= FIELD_PRIME) throw new SecureAggregationError("shares", `the share of x = ${x} is not in [0, p)`);
  }
  const points = shares.slice(0, threshold);
  let secret = 0n;
  for (const { x: xi, y } of points) {
    // L_i(0) = Π_{j ≠ i} x_j / (x_j − x_i).
    let numerator = 1n;
    let denominator = 1n;
    for (const { x: xj } of points) {
      if (xj === xi) continue;
      numerator = mod(numerator * BigInt(xj), FIELD_PRIME);
      denominator = mod(denominator * BigInt(xj - xi), FIELD_PRIME);
    }
    secret = mod(secret + y * numerator * modInverse(denominator, FIELD_PRIME), FIELD_PRIME);
  }
  if (secret >> 256n !== 0n) {
    throw new SecureAggregationError("shares", "the shares do not rebuild a 32-byte secret (they are not of one polynomial)");
  }
  return bigintToBytes(secret, SECRET_BYTES);
}

/** A share's y as 33 bytes, big-endian. */
export function encodeShare(y: bigint): Uint8Array<ArrayBuffer> {
  if (y < 0n || y >= FIELD_PRIME) throw new SecureAggregationError("shares", "a share is in [0, p)");
  return bigintToBytes(y, SHARE_BYTES);
}

/** The y of a 33-byte share, checked to be in [0, p). */
export function decodeShare(bytes: Uint8Array): bigint {
  if (bytes.length !== SHARE_BYTES) {
    throw new SecureAggregationError("shares", `a share is ${SHARE_BYTES} bytes, got ${bytes.length}`);
  }
  const y = bytesToBigint(bytes);
  if (y >= FIELD_PRIME) throw new SecureAggregationError("shares", "a share is not in [0, p)");
  return y;
}
