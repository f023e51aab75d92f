/** Client-side differential privacy: clipping to the radius, Gaussian noise of the stated std. */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WeightsError } from "../src/core/errors";
import {
  clip,
  epsilon,
  erfc,
  gaussian,
  gdpMu,
  l2Norm,
  noiseStd,
  PrivacyError,
  privatizeUpdate,
  subtract,
} from "../src/core/privacy";
import { Weights } from "../src/core/weights";

const f32 = (...xs: number[]): Float32Array => new Float32Array(xs);
const pair = (a: Float32Array, b: Float32Array): Weights => new Weights(["k", "b"], [[a.length], [b.length]], [a, b]);

/** A deterministic source (xorshift32) so that failures reproduce. */
function seeded(seed: number): (words: Uint32Array<ArrayBuffer>) => void {
  let x = seed >>> 0 || 1;
  return (words) => {
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
  };
}

describe("clip", () => {
  it("leaves an update inside the radius untouched", () => {
    const delta = pair(f32(0.3, 0.4), f32(0));
    expect(clip(delta, 1)).toBe(delta);
  });

  it("scales a larger update onto the radius, keeping its direction", () => {
    const clipped = clip(pair(f32(3, 4), f32(0)), 2);
    expect(l2Norm(clipped)).toBeCloseTo(2, 6);
    expect(Array.from(clipped.get("k"))).toEqual([Math.fround(1.2), Math.fround(1.6)]);
  });

  it("counts every tensor in the norm", () => {
    expect(l2Norm(pair(f32(1, 2), f32(2)))).toBe(3);
  });

  it("refuses a radius that is not positive", () => {
    for (const r of [0, -1, Number.NaN]) expect(() => clip(pair(f32(1), f32(1)), r)).toThrow(PrivacyError);
  });
});

describe("gaussian", () => {
  it("has mean 0 and the requested standard deviation", () => {
    const n = 200_000;
    const draws = gaussian(n, 0.7, seeded(42));
    let sum = 0;
    let sq = 0;
    for (const v of draws) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    const std = Math.sqrt(sq / n - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(std).toBeGreaterThan(0.69);
    expect(std).toBeLessThan(0.71);
    // tails as a normal distribution has them: about 4.55% beyond 2σ
    const beyond = draws.filter((v) => Math.abs(v) > 1.4).length / n;
    expect(beyond).toBeGreaterThan(0.042);
    expect(beyond).toBeLessThan(0.049);
  });

  it("draws with the secure source by default, and odd counts work", () => {
    const draws = gaussian(7, 1);
    expect(draws.length).toBe(7);
    expect(draws.every(Number.isFinite)).toBe(true);
    expect(new Set(draws).size).toBe(7);
  });
});

describe("privatizeUpdate", () => {
  const received = pair(f32(1, 1, 1), f32(0.5));

  it("without noise shares received + the clipped update", () => {
    const trained = pair(f32(4, 5, 1), f32(0.5)); // delta (3, 4, 0, 0): norm 5
    const shared = privatizeUpdate(received, trained, { clipping_radius: 1, noise_multiplier: 0 });
    const delta = subtract(shared, received);
    expect(l2Norm(delta)).toBeCloseTo(1, 5);
    expect(delta.get("k")[0]! / delta.get("k")[1]!).toBeCloseTo(0.75, 5);
  });

  it("adds noise of std noise_multiplier × radius to every coordinate", () => {
    const n = 50_000;
    const base = new Weights(["w"], [[n]], [new Float32Array(n)]);
    const trained = base.map(() => new Float32Array(n).fill(1e-3)); // norm ≈ 0.22 < radius
    const config = { clipping_radius: 0.5, noise_multiplier: 2 };
    expect(noiseStd(config)).toBe(1);
    const delta = subtract(privatizeUpdate(base, trained, config, seeded(7)), base).get("w");
    let sq = 0;
    for (const v of delta) sq += (v - 1e-3) ** 2;
    expect(Math.sqrt(sq / n)).toBeGreaterThan(0.98);
    expect(Math.sqrt(sq / n)).toBeLessThan(1.02);
  });

  it("gives a different update each time with the secure source", () => {
    const trained = pair(f32(2, 2, 2), f32(1));
    const config = { clipping_radius: 1, noise_multiplier: 1 };
    const a = privatizeUpdate(received, trained, config);
    const b = privatizeUpdate(received, trained, config);
    expect(a.equals(b)).toBe(false);
  });

  it("refuses weights of another model", () => {
    const other = new Weights(["k"], [[3]], [f32(1, 2, 3)]);
    expect(() => privatizeUpdate(received, other, { clipping_radius: 1, noise_multiplier: 0 })).toThrow(WeightsError);
  });
});

describe("epsilon", () => {
  const file = JSON.parse(
    readFileSync(new URL("../../tests/vectors/privacy_epsilon.json", import.meta.url), "utf8"),
  ) as { cases: { noise_multiplier: number; rounds: number; delta: number; epsilon: number }[] };

  it.each(file.cases.map((c) => [`z=${c.noise_multiplier} rounds=${c.rounds} δ=${c.delta}`, c] as const))(
    "equals the Python value for %s",
    (_, c) => {
      const got = epsilon({ clipping_radius: 1, noise_multiplier: c.noise_multiplier }, c.rounds, c.delta);
      expect(Math.abs(got - c.epsilon) / c.epsilon).toBeLessThan(1e-4);
    },
  );

  it("has no finite value without noise or privacy, and is 0 before any round", () => {
    expect(epsilon(null, 5)).toBe(Infinity);
    expect(epsilon({ clipping_radius: 1, noise_multiplier: 0 }, 5)).toBe(Infinity);
    expect(epsilon({ clipping_radius: 1, noise_multiplier: 1 }, 0)).toBe(0);
    expect(gdpMu(1, 4)).toBe(4);
    expect(() => epsilon({ clipping_radius: 1, noise_multiplier: 1 }, 5, 0)).toThrow(PrivacyError);
  });

  it("uses an erfc accurate in the tails", () => {
    expect(erfc(0)).toBeCloseTo(1, 7);
    expect(Math.abs(erfc(3) / 2.209049699858544e-5 - 1)).toBeLessThan(2e-7);
    expect(Math.abs(erfc(-1.5) - 1.9661051464753108)).toBeLessThan(1e-7);
  });
});
