/**
 * Arithmetic modulo a prime with BigInt, shared by Shamir's field GF(2^256 + 297) (§5) and the
 * P-256 curve's field (§4) of docs/secure_aggregation.md.
 */

/** `a mod m` in [0, m). */
export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** The inverse of `a` modulo the prime `m` (extended Euclid); `a` must not be 0 mod m. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new RangeError(`${a} has no inverse modulo ${m}`);
  return mod(s0, m);
}
