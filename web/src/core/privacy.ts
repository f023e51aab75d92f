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

/** δ of the guarantees shown to people, as in Python `disco.privacy.DEFAULT_DELTA`. */
export const DEFAULT_DELTA = 1e-5;

/** erfc(x), fractional error below 1.2e-7 everywhere (Chebyshev fit, Numerical Recipes `erfcc`). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -z * z -
    1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const r = t * Math.exp(poly);
  return x >= 0 ? r : 2 - r;
}

/** μ of the μ-GDP guarantee after `rounds` shared updates (sensitivity 2C, noise z·C). */
export function gdpMu(noiseMultiplier: number, rounds: number): number {
  if (!(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier)) {
    throw new PrivacyError(`noise multiplier must be finite and ≥ 0, got ${noiseMultiplier}`);
  }
  if (!(rounds >= 0)) throw new PrivacyError(`rounds must be ≥ 0, got ${rounds}`);
  if (rounds === 0) return 0;
  if (noiseMultiplier === 0) return Infinity;
  return (2 * Math.sqrt(rounds)) / noiseMultiplier;
}

function deltaOf(eps: number, mu: number): number {
  const phi = (x: number): number => 0.5 * erfc(-x / Math.SQRT2);
  const tail = phi(-eps / mu - mu / 2);
  const second = tail === 0 ? 0 : Math.exp(eps + Math.log(tail));
  return Math.max(0, phi(-eps / mu + mu / 2) - second);
}

/**
 * ε of the (ε, δ) guarantee after `rounds` updates, as Python `disco.privacy.epsilon`: for
 * everything one participant holds, against a server that sees each update. `Infinity` without
 * noise (or without privacy), 0 before any round.
 */
export function epsilon(config: PrivacyConfig | null, rounds: number, delta = DEFAULT_DELTA): number {
  if (!(delta > 0 && delta < 1)) throw new PrivacyError(`delta must be in (0, 1), got ${delta}`);
  if (config === null) return Infinity;
  const mu = gdpMu(config.noise_multiplier, rounds);
  if (mu === 0) return 0;
  if (!Number.isFinite(mu)) return Infinity;
  if (deltaOf(0, mu) <= delta) return 0;
  let lo = 0;
  let hi = 1;
  while (deltaOf(hi, mu) > delta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-9 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (deltaOf(mid, mu) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}
