/**
 * Client-side differential privacy on model updates, as in Python `disco.privacy`.
 *
 * Before an update leaves the browser, `delta = trained − received` is clipped to L2 norm at most
 * `C = clipping_radius` (scaled by `min(1, C / ‖delta‖)`, the norm summed in float64), then
 * Gaussian noise with standard deviation `σ = noise_multiplier × C` is added to every coordinate
 * independently. The shared weights are `received + clipped + noise`.
 *
 * The noise comes from `crypto.getRandomValues` (a cryptographically secure source) through the
 * Box–Muller transform with 53-bit uniforms; tests may pass their own source.
 */
import { DiscoError } from "./errors";
import type { PrivacyConfig } from "./task";
import { Weights } from "./weights";

/** Fills a Uint32Array with uniformly random 32-bit words. */
export type RandomSource = (words: Uint32Array<ArrayBuffer>) => void;

/** A privacy setting that cannot be applied. */
export class PrivacyError extends DiscoError {
  override name = "PrivacyError";
}

/** `crypto.getRandomValues`, called in chunks of at most 65536 bytes (the API's limit). */
export const cryptoRandom: RandomSource = (words) => {
  const chunk = 16384;
  for (let start = 0; start < words.length; start += chunk) {
    crypto.getRandomValues(words.subarray(start, Math.min(words.length, start + chunk)));
  }
};

/** The standard deviation of the noise added to each coordinate: `noise_multiplier × C`. */
export function noiseStd(config: PrivacyConfig): number {
  return config.noise_multiplier * config.clipping_radius;
}

/** L2 norm over every value of every tensor, accumulated in float64. */
export function l2Norm(weights: Weights): number {
  let sum = 0;
  for (const values of weights.values) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      sum += v * v;
    }
  }
  return Math.sqrt(sum);
}

/** `a − b`, tensor by tensor (same names and shapes required). */
export function subtract(a: Weights, b: Weights): Weights {
  a.checkLike(b, "weights");
  return a.map((values, name) => {
    const other = b.get(name);
    const out = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = (values[i] as number) - (other[i] as number);
    return out;
  });
}

/** `delta` scaled so that its L2 norm is at most `radius`. */
export function clip(delta: Weights, radius: number): Weights {
  if (!(radius > 0)) throw new PrivacyError(`clipping radius must be > 0, got ${radius}`);
  const norm = l2Norm(delta);
  if (norm <= radius) return delta;
  const scale = radius / norm;
  return delta.map((values) => {
    const out = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = (values[i] as number) * scale;
    return out;
  });
}

/** `n` independent draws from N(0, std²) (Box–Muller on 53-bit uniforms), as float64. */
export function gaussian(n: number, std: number, random: RandomSource = cryptoRandom): Float64Array {
  const out = new Float64Array(n);
  const pairs = Math.ceil(n / 2);
  const words = new Uint32Array(pairs * 4);
  random(words);
  for (let p = 0; p < pairs; p++) {
    const w = p * 4;
    // u1 in (0, 1] (never 0, so log is finite), u2 in [0, 1)
    const u1 = 1 - uniform53(words[w] as number, words[w + 1] as number);
    const u2 = uniform53(words[w + 2] as number, words[w + 3] as number);
    const r = std * Math.sqrt(-2 * Math.log(u1));
    out[2 * p] = r * Math.cos(2 * Math.PI * u2);
    if (2 * p + 1 < n) out[2 * p + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

function uniform53(hi: number, lo: number): number {
  return ((hi >>> 5) * 67108864 + (lo >>> 6)) / 9007199254740992;
}

/** The weights to share: `received` plus the clipped update plus Gaussian noise. */
export function privatizeUpdate(
  received: Weights,
  trained: Weights,
  config: PrivacyConfig,
  random: RandomSource = cryptoRandom,
): Weights {
  trained.checkLike(received, "trained weights");
  const std = noiseStd(config);
  if (!(std >= 0) || !Number.isFinite(std)) throw new PrivacyError(`noise standard deviation must be finite and ≥ 0, got ${std}`);
  const clipped = clip(subtract(trained, received), config.clipping_radius);
  return clipped.map((values, name) => {
    const base = received.get(name);
    const noise = std > 0 ? gaussian(values.length, std, random) : null;
    const out = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      out[i] = (base[i] as number) + (values[i] as number) + (noise === null ? 0 : (noise[i] as number));
    }
    return out;
  });
}
