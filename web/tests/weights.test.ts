/** `Weights`: construction checks, checkLike, flatten, and the digest against the shared vectors. */

import { describe, expect, it } from "vitest";
import { WeightsError } from "../src/core/errors";
import { sha256Hex, sha256HexJs, Weights } from "../src/core/weights";
import { VECTORS, weightsFromJson, type WeightsJson } from "./protocol-vectors";

const f32 = (...xs: number[]): Float32Array => new Float32Array(xs);
const model = (): Weights =>
  new Weights(["dense.kernel", "dense.bias"], [[2, 3], [1]], [f32(0.5, -1.25, 2, 0, 1, -0.375), f32(0.25)]);

describe("digest", () => {
  const carrying = VECTORS.valid.filter((v) => v.digest !== undefined);

  it("is checked by enough vectors", () => {
    expect(carrying.length).toBeGreaterThanOrEqual(10);
  });

  it.each(carrying.map((v) => [v.name, v] as const))("equals the Python digest for %s", async (_, vector) => {
    const weights = weightsFromJson(vector.message.weights as WeightsJson);
    expect(await weights.digest()).toBe(vector.digest);
  });

  it("of empty weights is the SHA-256 of nothing", async () => {
    const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    expect(await new Weights([], [], []).digest()).toBe(empty);
    expect(sha256HexJs(new Uint8Array(0))).toBe(empty);
  });

  it("has a plain-JS fallback equal to Web Crypto", async () => {
    for (const n of [1, 55, 56, 63, 64, 65, 1000, 100_003]) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
      expect(sha256HexJs(data)).toBe(await sha256Hex(data));
    }
  });

  it("changes with names, shapes and values", async () => {
    const base = await model().digest();
    const renamed = new Weights(["dense.kernel", "dense.b"], [[2, 3], [1]], [...model().values]);
    const reshaped = new Weights(["dense.kernel", "dense.bias"], [[3, 2], [1]], [...model().values]);
    const changed = model().map((v, name) => (name === "dense.bias" ? f32(-0) : v));
    for (const other of [renamed, reshaped, changed]) expect(await other.digest()).not.toBe(base);
  });
});

describe("construction", () => {
  it("checks one shape and one array per name", () => {
    expect(() => new Weights(["a", "b"], [[1]], [f32(1)])).toThrow(/2 names, 1 shapes and 1 value arrays/);
  });

  it("checks lengths against shapes", () => {
    expect(() => new Weights(["w"], [[2, 2]], [f32(1, 2, 3)])).toThrow(/'w' of shape \[2, 2\] needs 4 values, got 3/);
    expect(() => new Weights(["s"], [[]], [f32()])).toThrow(WeightsError); // a scalar has one value
    expect(new Weights(["s", "e"], [[], [2, 0]], [f32(3), f32()]).size).toBe(1);
  });

  it("checks names and dimensions", () => {
    expect(() => new Weights(["w", "w"], [[1], [1]], [f32(1), f32(2)])).toThrow(/duplicate weight name 'w'/);
    expect(() => new Weights([""], [[1]], [f32(1)])).toThrow(/non-empty strings/);
    expect(() => new Weights(["w"], [[-1]], [f32()])).toThrow(/invalid shape/);
    expect(() => new Weights(["w"], [[1.5]], [f32(1)])).toThrow(/invalid shape/);
    expect(() => new Weights(["w"], [[1]], [[1] as unknown as Float32Array])).toThrow(/Float32Array/);
  });

  it("freezes names and shapes", () => {
    const names = ["w"];
    const weights = new Weights(names, [[2]], [f32(1, 2)]);
    names[0] = "changed";
    expect(weights.names).toEqual(["w"]);
    expect(Object.isFrozen(weights.names) && Object.isFrozen(weights.shapes[0])).toBe(true);
  });
});

describe("access", () => {
  it("gets tensors by name", () => {
    const w = model();
    expect(Array.from(w.get("dense.bias"))).toEqual([0.25]);
    expect(w.shapeOf("dense.kernel")).toEqual([2, 3]);
    expect(w.has("nope")).toBe(false);
    expect(() => w.get("nope")).toThrow(/no tensor named 'nope'; the weights have \['dense.kernel', 'dense.bias'\]/);
    expect(w.size).toBe(7);
    expect(w.nbytes).toBe(28);
  });

  it("flattens and rebuilds", () => {
    const w = model();
    const flat = w.flatten();
    expect(Array.from(flat)).toEqual([0.5, -1.25, 2, 0, 1, -0.375, 0.25]);
    const back = Weights.fromFlat(w.names, w.shapes, flat);
    expect(back.equals(w)).toBe(true);
    expect(() => Weights.fromFlat(w.names, w.shapes, f32(1))).toThrow(/1 values, the shapes need 7/);
  });

  it("tells finite from non-finite", () => {
    expect(model().isFinite()).toBe(true);
    expect(new Weights(["w"], [[2]], [f32(1, NaN)]).isFinite()).toBe(false);
    expect(new Weights(["w"], [[1]], [f32(-Infinity)]).isFinite()).toBe(false);
  });

  it("compares bit for bit", () => {
    const nan = (): Weights => new Weights(["w"], [[1]], [f32(NaN)]);
    expect(nan().equals(nan())).toBe(true);
    expect(new Weights(["w"], [[1]], [f32(0)]).equals(new Weights(["w"], [[1]], [f32(-0)]))).toBe(false);
  });
});

describe("checkLike", () => {
  it("accepts the same names and shapes", () => {
    expect(() => model().map((v) => v.map((x) => x + 1)).checkLike(model())).not.toThrow();
  });

  it("names missing and unexpected tensors", () => {
    const other = new Weights(["dense.kernel", "extra"], [[2, 3], [1]], [...model().values]);
    expect(() => other.checkLike(model(), "update")).toThrow(
      "update do not match the model: missing ['dense.bias'], unexpected ['extra']",
    );
    const fewer = new Weights(["dense.kernel"], [[2, 3]], [model().get("dense.kernel")]);
    expect(() => fewer.checkLike(model())).toThrow("missing ['dense.bias'], unexpected none");
  });

  it("names a different order", () => {
    const swapped = new Weights(["dense.bias", "dense.kernel"], [[1], [2, 3]], [...model().values].reverse());
    expect(() => swapped.checkLike(model())).toThrow("weights have the model's tensors in another order");
  });

  it("names the first tensor with another shape and both shapes", () => {
    const other = new Weights(["dense.kernel", "dense.bias"], [[3, 2], [1]], [...model().values]);
    expect(() => other.checkLike(model(), "trained weights")).toThrow(
      "trained weights: tensor 'dense.kernel' has shape [3, 2], the model expects [2, 3]",
    );
  });
});
