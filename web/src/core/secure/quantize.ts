/**
 * Fixed point in Z_2^32 (docs/secure_aggregation.md §3): a weighted float32 update becomes the
 * word vector `[w, q(w·x_1), q(w·x_2), …]` that is masked and summed, and a sum of such vectors
 * decodes to Σw and Σ w·x.
 *
 * - Scale 2^b, b the largest integer with `n · W · c · 2^b + n ≤ 2^31 − 1` (n participants,
 *   weight cap W, clip c), evaluated left to right in float64; b < 8 refuses the round. Then a sum
 *   of n words each within W·c·2^b + 1 of 0 never leaves the signed 32-bit range. The sum of the
 *   weight words must fit as well, `n · W + n ≤ 2^31 − 1`, or the round is refused too (binding
 *   only when c · 2^b < 1; as Python's `disco.secure.quantize`, not yet in the spec's §3.1).
 * - Values must be finite. Each is clamped to [−c, c] and v = w · clamp(x) · 2^b is computed in
 *   float64 (exact for a float32 x, w ≤ 2^16 and c ≥ |x|), then rounded stochastically with a
 *   uniform draw r in [0, 1): `f = floor(v); q = f + (r < v − f ? 1 : 0)`, so E[q] = v; the
 *   word is q mod 2^32.
 * - Draws come from `crypto.getRandomValues` (r = uint32 / 2^32) unless given (test vectors).
 * - A sum decodes as signed(S_i) / 2^b, signed(a) = a − 2^32 for a ≥ 2^31; its first word is Σw.
 *   Each q is within 1 of its v, so the decoded sum is within n / 2^b of Σ w·clamp(x).
 */

import { cryptoRandom } from "../privacy";
import { SecureAggregationError } from "./errors";

/** Fewer fraction bits than this (a step coarser than 1/256) refuse the round. */
export const MIN_SCALE_BITS = 8;
/** The task setting's default weight cap W. */
export const DEFAULT_WEIGHT_CAP = 1024;
/** The largest signed 32-bit word: a sum of n words stays within it. */
const SIGNED_MAX = 2 ** 31 - 1;
/** The largest scale exponent: 2^b stays a finite float64. */
const MAX_SCALE_BITS = 1023;
/** Draws fetched from the CSPRNG per call (64 KiB, `getRandomValues`' limit). */
const DRAW_CHUNK = 16384;

/** A decoded sum: Σw, and Σ w·x per value (in units of 1, not of 2^−b). */
export interface DecodedSum {
  readonly weightSum: number;
  readonly values: Float64Array<ArrayBuffer>;
}

function fits(n: number, weightCap: number, clip: number, bits: number): boolean {
  return n * weightCap * clip * 2 ** bits + n <= SIGNED_MAX;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 0 || bits > MAX_SCALE_BITS) {
    throw new SecureAggregationError("value", `the scale exponent is an integer in [0, ${MAX_SCALE_BITS}], got ${bits}`);
  }
}

/**
 * The scale exponent b of a round of `n` participants with weight cap `weightCap` and clip range
 * `clip`: the largest integer with n · W · c · 2^b + n ≤ 2^31 − 1. Below `MIN_SCALE_BITS` the
 * round cannot be aggregated securely: an error of kind `scale`; so it is when the weights'
 * sum could pass 2^31 − 1 (n · W + n > 2^31 − 1).
 */
export function scaleBits(n: number, weightCap: number, clip: number): number {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new SecureAggregationError("value", `the number of participants is an integer ≥ 1, got ${n}`);
  }
  if (!Number.isSafeInteger(weightCap) || weightCap < 1) {
    throw new SecureAggregationError("value", `the weight cap is an integer ≥ 1, got ${weightCap}`);
  }
  if (!(clip > 0 && Number.isFinite(clip))) {
    throw new SecureAggregationError("value", `the clip range is a finite number > 0, got ${clip}`);
  }
  const advice = "lower the clip range or the weight cap, or use fewer participants per round";
  if (n * weightCap + n > SIGNED_MAX) {
    throw new SecureAggregationError(
      "scale",
      `${n} participants × weight cap ${weightCap}: the weights of a round would not fit a 32-bit word; ${advice}`,
    );
  }
  if (!fits(n, weightCap, clip, MIN_SCALE_BITS)) {
    throw new SecureAggregationError(
      "scale",
      `${n} participants × weight cap ${weightCap} × clip ${clip} is too large for the 32-bit ring ` +
        `(fewer than ${MIN_SCALE_BITS} fraction bits would be left); ${advice}`,
    );
  }
  // An estimate from log2, then the exact test decides (at most a step or two either way).
  const room = (SIGNED_MAX - n) / (n * weightCap * clip);
  let bits = Math.max(MIN_SCALE_BITS, Math.min(MAX_SCALE_BITS, Math.floor(Math.log2(room))));
  while (bits > MIN_SCALE_BITS && !fits(n, weightCap, clip, bits)) bits--;
  while (bits < MAX_SCALE_BITS && fits(n, weightCap, clip, bits + 1)) bits++;
  return bits;
}

/** A participant's weight: its sample count, at most the weight cap (§3.2). */
export function clampWeight(numSamples: number, weightCap: number = DEFAULT_WEIGHT_CAP): number {
  if (!Number.isSafeInteger(numSamples) || numSamples < 1) {
    throw new SecureAggregationError("value", `a sample count is an integer ≥ 1, got ${numSamples}`);
  }
  if (!Number.isSafeInteger(weightCap) || weightCap < 1) {
    throw new SecureAggregationError("value", `the weight cap is an integer ≥ 1, got ${weightCap}`);
  }
  return Math.min(numSamples, weightCap);
}

/**
 * The words `[w, q(w·x_1), …]` of float32 `values` with integer `weight`, clamped to
 * [−clip, clip] and scaled by 2^`bits`, rounded stochastically with `draws` (each in [0, 1), one
 * per value; from the CSPRNG when absent).
 */
export function quantize(
  values: Float32Array,
  weight: number,
  clip: number,
  bits: number,
  draws?: Float64Array,
): Uint32Array<ArrayBuffer> {
  if (!Number.isSafeInteger(weight) || weight < 1 || weight + 1 > SIGNED_MAX) {
    throw new SecureAggregationError("value", `a weight is an integer in [1, 2^31 − 2], got ${weight}`);
  }
  if (!(clip > 0 && Number.isFinite(clip))) {
    throw new SecureAggregationError("value", `the clip range is a finite number > 0, got ${clip}`);
  }
  checkBits(bits);
  const scale = 2 ** bits;
  if (weight * clip * scale + 1 > SIGNED_MAX) {
    throw new SecureAggregationError(
      "value",
      `weight ${weight} × clip ${clip} × 2^${bits} overflows a 32-bit word: use a lower weight cap ` +
        "or take the scale from scaleBits",
    );
  }
  if (draws !== undefined && draws.length !== values.length) {
    throw new SecureAggregationError("value", `${values.length} values need as many draws, got ${draws.length}`);
  }
  const words = new Uint32Array(1 + values.length);
  words[0] = weight;
  const random = draws === undefined ? new Uint32Array(Math.min(DRAW_CHUNK, values.length)) : undefined;
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    if (!Number.isFinite(x)) {
      throw new SecureAggregationError("value", `value ${i} is ${x}: a secure update must be finite`);
    }
    let r: number;
    if (random === undefined) {
      r = (draws as Float64Array)[i] as number;
      if (!(r >= 0 && r < 1)) throw new SecureAggregationError("value", `draw ${i} is not in [0, 1): ${r}`);
    } else {
      if (i % DRAW_CHUNK === 0) cryptoRandom(random);
      r = (random[i % DRAW_CHUNK] as number) / 2 ** 32;
    }
    const v = weight * Math.min(Math.max(x, -clip), clip) * scale;
    const floor = Math.floor(v);
    words[i + 1] = (floor + (r < v - floor ? 1 : 0)) >>> 0;
  }
  return words;
}

/** Σw and Σ w·x of a sum of quantised vectors scaled by 2^`bits`. */
export function decode(words: Uint32Array, bits: number): DecodedSum {
  if (words.length < 1) throw new SecureAggregationError("value", "a sum has at least its weight word");
  checkBits(bits);
  const scale = 2 ** bits;
  const values = new Float64Array(words.length - 1);
  for (let i = 1; i < words.length; i++) values[i - 1] = ((words[i] as number) | 0) / scale;
  return { weightSum: words[0] as number, values };
}
