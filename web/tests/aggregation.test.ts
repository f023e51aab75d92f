/**
 * FedAvg in the browser against tests/vectors/aggregation_mean.json (written from the Python side
 * by tests/vectors/aggregation.py): every peer of a decentralized session, Python or browser, must
 * end a round with the same model, bit for bit.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  AggregationError,
  COUNT_LIMIT,
  COUNT_ROOM,
  FRACTION_BITS,
  MAX_CHANGE,
  cappedShares,
  combineMean,
  comparePython,
  type TrainedUpdate,
} from "../src/core/aggregation";
import { Weights } from "../src/core/weights";

interface Tensor {
  name: string;
  shape: number[];
  bits: string[];
}

interface Case {
  name: string;
  max_share: number | null;
  model: Tensor[];
  updates: { participant: string; num_samples: number; weights: Tensor[] }[];
  result?: Tensor[];
  error?: string;
}

interface Vectors {
  limits: { fraction_bits: number; max_change: number; count_limit: number; count_room: number };
  cases: Case[];
}

const vectors = JSON.parse(
  readFileSync(new URL("../../tests/vectors/aggregation_mean.json", import.meta.url), "utf8"),
) as Vectors;
const results = vectors.cases.filter((c) => c.result !== undefined);
const refusals = vectors.cases.filter((c) => c.error !== undefined);

function weights(tensors: Tensor[]): Weights {
  return new Weights(
    tensors.map((t) => t.name),
    tensors.map((t) => t.shape),
    tensors.map((t) => new Float32Array(new Uint32Array(t.bits.map((b) => parseInt(b, 16))).buffer)),
  );
}

function bits(w: Weights): Tensor[] {
  return w.names.map((name, i) => ({
    name,
    shape: [...(w.shapes[i] as readonly number[])],
    bits: Array.from(new Uint32Array((w.values[i] as Float32Array).slice().buffer), (u) => u.toString(16).padStart(8, "0")),
  }));
}

function updatesOf(c: Case): TrainedUpdate[] {
  return c.updates.map((u) => ({ participant: u.participant, weights: weights(u.weights), numSamples: u.num_samples }));
}

/** A seeded permutation (mulberry32), so a failure names an order that can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const random = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (exc) {
    if (exc instanceof AggregationError) return exc.kind;
    throw exc;
  }
  return "no refusal";
}

describe("the vectors", () => {
  it("has the limits of this implementation", () => {
    expect(vectors.limits).toEqual({
      fraction_bits: FRACTION_BITS,
      max_change: MAX_CHANGE,
      count_limit: COUNT_LIMIT,
      count_room: COUNT_ROOM,
    });
  });

  it.each(results.map((c) => [c.name, c] as const))("combines %s to Python's bits", (_, c) => {
    const got = combineMean(weights(c.model), updatesOf(c), c.max_share);
    expect(bits(got)).toEqual(c.result);
  });

  it.each(results.map((c) => [c.name, c] as const))("combines %s with split sums too", (_, c) => {
    const got = combineMean(weights(c.model), updatesOf(c), c.max_share, { sums: "split" });
    expect(bits(got)).toEqual(c.result);
  });

  it.each(refusals.map((c) => [c.name, c] as const))("%s: refused as Python refuses", (_, c) => {
    expect(refusal(() => combineMean(weights(c.model), updatesOf(c), c.max_share))).toBe(c.error);
  });

  it("tells code-point order from UTF-16 order (the capped are added in Python's order)", () => {
    const c = vectors.cases.find((v) => v.name.startsWith("capped participants added in code-point order"));
    expect(c?.result).toBeDefined();
    const rename: Record<string, string> = { a: "a", "😀": "a1", ａ: "a2" }; // UTF-16 order: a, 😀, ａ
    const renamed = updatesOf(c as Case).map((u) => ({ ...u, participant: rename[u.participant] ?? u.participant }));
    const got = combineMean(weights((c as Case).model), renamed, (c as Case).max_share);
    expect(bits(got)).not.toEqual((c as Case).result);
  });
});

describe("combineMean", () => {
  it.each(results.map((c) => [c.name, c] as const))("gives %s whatever the order of the updates", (_, c) => {
    const updates = updatesOf(c);
    for (const order of [[...updates].reverse(), ...[1, 2, 3].map((seed) => shuffled(updates, seed))]) {
      expect(bits(combineMean(weights(c.model), order, c.max_share))).toEqual(c.result);
    }
  });

  it("takes 16,383 updates of COUNT_LIMIT and refuses the 16,384th: round full", () => {
    const model = new Weights(["w"], [[1]], [new Float32Array([0])]);
    const step = new Weights(["w"], [[1]], [new Float32Array([0.5])]);
    const room = Math.floor((COUNT_ROOM - 1) / COUNT_LIMIT);
    const updates = Array.from({ length: room }, (_, i) => ({ participant: `p${i}`, weights: step, numSamples: COUNT_LIMIT }));
    expect(combineMean(model, updates, null).values[0]).toEqual(new Float32Array([0.5]));
    const over = [...updates, { participant: "last", weights: step, numSamples: 2 ** 40 }];
    expect(refusal(() => combineMean(model, over, null))).toBe("round_full");
  });

  it("sums exactly at the limits: 16,383 updates of COUNT_LIMIT, changes just below ±256", () => {
    // S up to 16,383 · 2^49 ≈ 2^63: checked against a BigInt sum, as Python's int64
    const near = Math.fround(256 - 2 ** -16);
    const changes = [near, -near, Math.fround(255.99), 3 * 2 ** -25, Math.fround(-0.1), 2 ** -149];
    const model = new Weights(["w"], [[changes.length]], [new Float32Array(changes.length)]);
    const room = Math.floor((COUNT_ROOM - 1) / COUNT_LIMIT);
    const updates = Array.from({ length: room }, (_, i) => {
      const values = changes.map((x, k) => (k === 2 && i % 3 === 0 ? -x : k === 4 && i % 7 === 0 ? near : x));
      return { participant: `p${i}`, weights: model.map(() => new Float32Array(values)), numSamples: COUNT_LIMIT - (i % 5) };
    });
    const got = combineMean(model, updates, null).values[0] as Float32Array;
    const total = updates.reduce((a, u) => a + u.numSamples, 0);
    const want = changes.map((_, k) => {
      let s = 0n;
      for (const u of updates) {
        const t = ((u.weights.values[0] as Float32Array)[k] as number) * u.numSamples * 2 ** 24;
        s += BigInt(rintEven(t));
      }
      return Math.fround(Math.fround(Number(s) * (1.0 / total / 2 ** 24)));
    });
    expect(Array.from(got)).toEqual(want);
  });

  it("adds a capped participant's change at its share, the rest from the sums", () => {
    const model = new Weights(["w"], [[2]], [new Float32Array([1, -1])]);
    const trained = (a: number, b: number): Weights => new Weights(["w"], [[2]], [new Float32Array([a, b])]);
    const updates = [
      { participant: "liar", weights: trained(3, -1), numSamples: 2 ** 40 },
      { participant: "x", weights: trained(1, 0), numSamples: 10 },
      { participant: "y", weights: trained(1, 1), numSamples: 30 },
    ];
    const got = combineMean(model, updates, 0.5).values[0] as Float32Array;
    // liar: 0.5 of (2, 0); x and y share the other half 1:3 → (0, 0.5·(0.25·1 + 0.75·2))
    expect(Array.from(got)).toEqual([2, Math.fround(-1 + 0.875)]);
    expect(cappedShares([COUNT_LIMIT, 10, 30], 0.5)).toEqual([0.5, 0.125, 0.375]);
  });

  it("refuses what Python refuses, with the kind", () => {
    const model = new Weights(["w"], [[2]], [new Float32Array([0, 0])]);
    const one = (participant: string, numSamples = 1): TrainedUpdate => ({ participant, weights: model, numSamples });
    expect(refusal(() => combineMean(model, [], 0.5))).toBe("no_updates");
    expect(refusal(() => combineMean(model, [one("a"), one("a")], 0.5))).toBe("duplicate");
    expect(refusal(() => combineMean(model, [one("a", 1.5)], 0.5))).toBe("count");
    expect(refusal(() => combineMean(model, [one("a", 0)], 0.5))).toBe("count");
    expect(refusal(() => combineMean(model, [one("a")], Number.NaN))).toBe("max_share");
    const wide = new Weights(["w"], [[3]], [new Float32Array(3)]);
    expect(refusal(() => combineMean(model, [{ participant: "a", weights: wide, numSamples: 1 }], null))).toBe("shape");
  });
});

describe("comparePython", () => {
  it("orders by code point, as Python's sorted()", () => {
    const ids = ["ａ", "😀", "b", "a", "", "a😀", "aａ", "\u{10000}", "\uffff", "A"];
    expect([...ids].sort(comparePython)).toEqual(["", "A", "a", "aａ", "a😀", "b", "ａ", "\uffff", "\u{10000}", "😀"]);
    expect([...ids].sort()).not.toEqual([...ids].sort(comparePython)); // UTF-16 order differs
  });
});

/** rint, ties to even, for the reference sums. */
function rintEven(x: number): number {
  const r = Math.round(x); // ties up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
