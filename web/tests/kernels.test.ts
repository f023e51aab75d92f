/**
 * disco's training kernels (src/core/kernels) against the cpu backend's own kernels: the same
 * gradients up to float rounding, for several shapes, strides, paddings ('same', 'valid',
 * explicit), batch sizes and channel counts; a refused configuration takes the fallback, and the
 * MNIST CNN's training step never does. The GPT's kernels too (batched products, `SplitV`, `Sum`,
 * `UnsortedSegmentSum`), and its training step: the same loss and gradients on wasm as on cpu.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { kernelFallbacks, registerTrainingKernels } from "../src/core/kernels";
import { buildModel, nextTokenLoss, setWeights, weightSlots } from "../src/core/models";
import type { ModelSpec, Task } from "../src/core/task";
import { Weights } from "../src/core/weights";

// the cpu backend's own kernels, taken before disco replaces any of them
const STOCK = {
  filter: tf.getKernel("Conv2DBackpropFilter", "cpu"),
  input: tf.getKernel("Conv2DBackpropInput", "cpu"),
  maxPool: tf.getKernel("MaxPoolGrad", "cpu"),
  matMul: tf.getKernel("BatchMatMul", "cpu"),
  splitV: tf.getKernel("SplitV", "cpu"),
  sum: tf.getKernel("Sum", "cpu"),
  segmentSum: tf.getKernel("UnsortedSegmentSum", "cpu"), // disco replaces this one on cpu too
};

type Quad = [number, number, number, number];
type Pad = "same" | "valid" | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  x: Quad; // [B, H, W, Cin]
  filter: Quad; // [kh, kw, Cin, Cout]
  strides: [number, number];
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { x: [4, 28, 28, 1], filter: [5, 5, 1, 8], strides: [1, 1], pad: "valid" }, // MNIST conv 1
  { x: [3, 24, 24, 8], filter: [5, 5, 8, 16], strides: [1, 1], pad: "valid" }, // MNIST conv 2
  { x: [8, 6, 6, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: "same" },
  { x: [3, 9, 7, 2], filter: [3, 3, 2, 4], strides: [1, 1], pad: "same" },
  { x: [2, 8, 8, 3], filter: [2, 2, 3, 5], strides: [1, 1], pad: "same" }, // even kernel: asymmetric padding
  { x: [4, 11, 9, 2], filter: [3, 3, 2, 4], strides: [2, 1], pad: "valid" },
  { x: [4, 11, 9, 2], filter: [3, 3, 2, 4], strides: [2, 2], pad: "same" },
  { x: [1, 10, 10, 3], filter: [3, 2, 3, 3], strides: [3, 2], pad: "valid" }, // strides leave rows unused
  { x: [2, 7, 6, 1], filter: [1, 1, 1, 6], strides: [1, 1], pad: "valid" }, // 1x1
  { x: [5, 6, 6, 4], filter: [3, 3, 4, 1], strides: [1, 1], pad: "same" }, // one output channel
  { x: [2, 6, 5, 2], filter: [3, 3, 2, 3], strides: [1, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 6, 5, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: [[0, 0], [2, 2], [2, 0], [0, 0]] },
  { x: [1, 5, 5, 1], filter: [5, 5, 1, 1], strides: [1, 1], pad: "valid" }, // output 1x1
];

/** Deterministic normal-ish values (sum of uniforms), not too many exact ties. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  for (let i = 0; i < n; i++) out[i] = next() + next() + next() - 1.5;
  return out;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

type Arrays = Record<string, [Float32Array | Int32Array, number[]]>;

/** A kernel's output: its values and shape. */
interface Out {
  values: Float32Array;
  shape: number[];
}

/** Run `kernel` (a stock cpu kernel) on copies of `inputs` in the cpu backend; every output. */
function runStockAll(kernel: tf.KernelConfig | undefined, inputs: Arrays, attrs: object): Out[] {
  if (kernel === undefined) throw new Error("stock kernel missing");
  type Cpu = { write(v: Float32Array | Int32Array, s: number[], d: tf.DataType): object; readSync(id: object): Float32Array; disposeData(id: object): void };
  const cpu = tf.findBackend("cpu") as unknown as Cpu;
  const infos: tf.NamedTensorInfoMap = {};
  for (const [name, [v, shape]] of Object.entries(inputs)) {
    const dtype = v instanceof Int32Array ? "int32" : "float32";
    infos[name] = { dataId: cpu.write(v.slice(), shape, dtype), shape, dtype };
  }
  const raw = kernel.kernelFunc({ inputs: infos, backend: cpu, attrs: attrs as tf.NamedAttrMap });
  const outs = (Array.isArray(raw) ? raw : [raw]) as tf.TensorInfo[];
  const result = outs.map((out) => ({ values: Float32Array.from(cpu.readSync(out.dataId)), shape: [...out.shape] }));
  for (const info of [...outs, ...Object.values(infos)]) if (info) cpu.disposeData(info.dataId);
  return result;
}

/** Run `kernel` (a stock cpu kernel) on copies of `inputs` in the cpu backend; its output values. */
function runStock(kernel: tf.KernelConfig | undefined, inputs: Arrays, attrs: object): Float32Array {
  return (runStockAll(kernel, inputs, attrs)[0] as Out).values;
}

/** `kernelName` through the engine on the current backend (disco's kernel when registered); every output. */
function runEngineAll(kernelName: string, inputs: Arrays, attrs: object): Out[] {
  return tf.tidy(() => {
    const tensors = Object.fromEntries(
      Object.entries(inputs).map(([k, [v, shape]]) => [k, tf.tensor(v, shape, v instanceof Int32Array ? "int32" : "float32")]),
    );
    const raw = tf.engine().runKernel(kernelName, tensors, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
    const outs = Array.isArray(raw) ? raw : [raw];
    return outs.map((t) => ({ values: Float32Array.from(t.dataSync()), shape: [...t.shape] }));
  });
}

/** `kernelName` through the engine on the current backend (disco's kernel when registered). */
function runEngine(kernelName: string, inputs: Record<string, number[] | Float32Array>, shapes: Record<string, number[]>, attrs: object): Float32Array {
  return tf.tidy(() => {
    const tensors = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v, shapes[k])]));
    const out = tf.engine().runKernel(kernelName, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
    return out.dataSync() as Float32Array;
  }).slice();
}

/** max |a - b| / max |b|: the error relative to the result's scale. */
function relError(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
    scale = Math.max(scale, Math.abs(expected[i] as number));
  }
  return worst / (scale || 1);
}

interface Expected {
  dw: Float32Array;
  dx: Float32Array;
  x: Float32Array;
  w: Float32Array;
  dy: Float32Array;
  dyShape: number[];
}

/** Inputs and the cpu backend's stock gradients for `c`. */
function expected(c: ConvCase, seed: number): Expected {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad as "same");
  const dyShape = [c.x[0], info.outHeight, info.outWidth, c.filter[3]];
  const x = values(size(c.x), seed);
  const w = values(size(c.filter), seed + 1);
  const dy = values(size(dyShape), seed + 2);
  const common = { strides: c.strides, pad: c.pad, dataFormat: "NHWC" };
  const dw = runStock(STOCK.filter, { x: [x, c.x], dy: [dy, dyShape] }, { ...common, filterShape: c.filter });
  const dx = runStock(STOCK.input, { dy: [dy, dyShape], filter: [w, c.filter] }, { ...common, inputShape: c.x });
  return { dw, dx, x, w, dy, dyShape };
}

const TOLERANCE = 1e-5; // float32 rounding of sums of up to a few thousand products

let wanted: Expected[] = [];

beforeAll(() => {
  wanted = CONV_CASES.map((c, k) => expected(c, 10 * k + 1));
}, 120_000);

describe.each(["wasm", "cpu"])("convolution gradients on %s", (backend) => {
  const cases = CONV_CASES.map((c, k) => ({ c, k }));

  beforeAll(async () => {
    registerTrainingKernels();
    expect(await tf.setBackend(backend)).toBe(true);
  });

  it.each(cases)("filter gradient, case $k", ({ c, k }) => {
    const e = wanted[k] as Expected;
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", filterShape: c.filter };
    const got = runEngine("Conv2DBackpropFilter", { x: e.x, dy: e.dy }, { x: c.x, dy: e.dyShape }, attrs);
    expect(relError(got, e.dw)).toBeLessThan(TOLERANCE);
  });

  it.each(cases)("input gradient, case $k", ({ c, k }) => {
    const e = wanted[k] as Expected;
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", inputShape: c.x };
    const got = runEngine("Conv2DBackpropInput", { dy: e.dy, filter: e.w }, { dy: e.dyShape, filter: c.filter }, attrs);
    expect(relError(got, e.dx)).toBeLessThan(TOLERANCE);
  });
});

describe("other training kernels on wasm", () => {
  beforeAll(async () => {
    registerTrainingKernels();
    expect(await tf.setBackend("wasm")).toBe(true);
  });

  it.each<{ x: Quad; size: number; stride: number; pad: "valid" | "same" }>([
    { x: [32, 20, 20, 16], size: 2, stride: 2, pad: "valid" }, // MNIST
    { x: [2, 5, 7, 3], size: 2, stride: 1, pad: "same" },
    { x: [1, 47, 47, 2], size: 3, stride: 2, pad: "valid" },
  ])("MaxPoolGrad $x, size $size, stride $stride, $pad: as the cpu backend's", ({ x, size: k, stride, pad }) => {
    const input = values(size(x), 7).map((v) => Math.max(v, 0)); // relu outputs: windows of tied zeros
    const attrs = { filterSize: k, strides: stride, pad };
    const output = tf.tidy(() => tf.maxPool(tf.tensor(input, x) as tf.Tensor4D, k, stride, pad).dataSync() as Float32Array).slice();
    const info = tf.backend_util.computePool2DInfo(x, k, stride, 1, pad);
    const yShape = [x[0], info.outHeight, info.outWidth, x[3]];
    const dy = values(size(yShape), 8);
    const want = runStock(STOCK.maxPool, { dy: [dy, yShape], input: [input, x], output: [output, yShape] }, attrs);
    const got = runEngine("MaxPoolGrad", { dy, input, output }, { dy: yShape, input: x, output: yShape }, attrs);
    expect(relError(got, want)).toBeLessThan(1e-6); // overlapping windows: sums in another order
  });

  it.each([
    { a: [1, 32, 1600], b: [1, 32, 32], transposeA: true, transposeB: false }, // a dense layer's dW
    { a: [1, 32, 32], b: [1, 1600, 32], transposeA: false, transposeB: true }, // its dx
    { a: [1, 7, 5], b: [1, 3, 7], transposeA: true, transposeB: true },
    { a: [1, 4, 8], b: [1, 8, 20], transposeA: false, transposeB: false }, // M < N: Cᵀ computed
    { a: [32, 1600], b: [32, 10], transposeA: true, transposeB: false }, // rank 2, as the op hands them over
    { a: [6, 10], b: [4, 10], transposeA: false, transposeB: true },
    { a: [2, 3, 4, 5], b: [5, 6], transposeA: false, transposeB: false }, // rank 4 with a shared b
    { a: [1, 9, 4], b: [1, 20, 9], transposeA: true, transposeB: true },
    { a: [4, 6, 5], b: [1, 5, 3], transposeA: false, transposeB: false }, // batch, shared b
    { a: [3, 4, 5], b: [3, 5, 2], transposeA: false, transposeB: false }, // batch: one product per matrix
    { a: [128, 64, 32], b: [128, 64, 32], transposeA: false, transposeB: true }, // attention's q·kᵀ (B·H, T, hd)
    { a: [6, 7, 5], b: [6, 7, 3], transposeA: true, transposeB: false }, // batched, transposed a: a gradient
  ])("BatchMatMul $a x $b (transposed $transposeA, $transposeB): as the cpu backend's", ({ a, b, transposeA, transposeB }) => {
    const [av, bv] = [values(size(a), 3), values(size(b), 4)];
    const attrs = { transposeA, transposeB };
    const want = runStock(STOCK.matMul, { a: [av, a], b: [bv, b] }, attrs);
    const got = runEngine("BatchMatMul", { a: av, b: bv }, { a, b }, attrs);
    expect(relError(got, want)).toBeLessThan(TOLERANCE);
  });

  it("one tensor in two products under two shapes (XNNPACK caches its packing by tensor id)", async () => {
    const products = (): Float32Array[] =>
      tf.tidy(() => {
        const dy = tf.tensor(values(8, 21), [8, 1]);
        const w = tf.tensor(values(124, 22), [124, 1]);
        const h = tf.tensor(values(8 * 124, 23), [8, 124]);
        const dx = tf.matMul(dy, w, false, true); // dy seen as [1, 8] by the product
        const dw = tf.matMul(h, dy, true, false); // dy seen as [8, 1]
        const again = tf.matMul(dy, w, false, true);
        return [dx, dw, again].map((t) => t.dataSync() as Float32Array);
      });
    const got = products();
    await tf.setBackend("cpu");
    const want = products();
    await tf.setBackend("wasm");
    for (const [k, expected] of want.entries()) expect(relError(got[k] as Float32Array, expected)).toBeLessThan(TOLERANCE);
  });

  it("_FusedMatMul with a bias, relu and a transposed operand: as the cpu backend's", () => {
    const [av, bv, bias] = [values(6 * 5, 11), values(4 * 5, 12), values(4, 13)];
    const attrs = { transposeA: false, transposeB: true, activation: "relu" };
    const shapes = { a: [1, 6, 5], b: [1, 4, 5], bias: [4] };
    const want = runStock(tf.getKernel("_FusedMatMul", "cpu"), { a: [av, shapes.a], b: [bv, shapes.b], bias: [bias, shapes.bias] }, attrs);
    const got = runEngine("_FusedMatMul", { a: av, b: bv, bias }, shapes, attrs);
    expect(relError(got, want)).toBeLessThan(TOLERANCE);
  });

  it("a refused configuration takes the fallback: a stride area above 9 for the input gradient", () => {
    const c: ConvCase = { x: [2, 12, 12, 2], filter: [3, 3, 2, 2], strides: [4, 4], pad: "same" };
    const e = expected(c, 99);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", inputShape: c.x };
    const before = kernelFallbacks().get("Conv2DBackpropInput on wasm") ?? 0;
    const got = runEngine("Conv2DBackpropInput", { dy: e.dy, filter: e.w }, { dy: e.dyShape, filter: c.filter }, attrs);
    expect(relError(got, e.dx)).toBeLessThan(TOLERANCE);
    expect(kernelFallbacks().get("Conv2DBackpropInput on wasm")).toBe(before + 1);
  });

  it("the MNIST CNN's training step takes no fallback", async () => {
    const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
    const task = catalog.find((t) => t.task.id === "mnist")?.task;
    if (task === undefined) throw new Error("no mnist task in the catalog fixture");
    const model = buildModel(task.model, task.training);
    const x = tf.tensor(values(32 * 28 * 28, 31).map((v) => v + 0.5), [32, 28, 28, 1]);
    const y = tf.tensor(Float32Array.from({ length: 32 }, (_, i) => i % 10), [32, 1]);
    const before = new Map(kernelFallbacks());
    await model.trainOnBatch(x, y);
    expect(new Map(kernelFallbacks())).toEqual(before);
    tf.dispose([x, y]);
    model.dispose();
  });

  it("channels-first data is refused by ours and computed by the fallback", () => {
    const x = values(2 * 3 * 6 * 6, 5);
    const dy = values(2 * 4 * 4 * 4, 6);
    const attrs = { strides: 1, pad: "valid", dataFormat: "NCHW", filterShape: [3, 3, 3, 4] };
    const before = kernelFallbacks().get("Conv2DBackpropFilter on wasm") ?? 0;
    const got = runEngine("Conv2DBackpropFilter", { x, dy }, { x: [2, 3, 6, 6], dy: [2, 4, 4, 4] }, attrs);
    expect(kernelFallbacks().get("Conv2DBackpropFilter on wasm")).toBe(before + 1);
    const want = runStock(STOCK.filter, { x: [x, [2, 3, 6, 6]], dy: [dy, [2, 4, 4, 4]] }, attrs);
    expect(relError(got, want)).toBeLessThan(TOLERANCE);
  });

  it("SplitV with sizes [3, -1] on axis -1: as the cpu backend's", () => {
    const inputs: Arrays = { x: [values(4 * 5 * 8, 41), [4, 5, 8]] };
    const attrs = { numOrSizeSplits: [3, -1], axis: -1 };
    const want = runStockAll(STOCK.splitV, inputs, attrs);
    const got = runEngineAll("SplitV", inputs, attrs);
    expect(got.map((o) => o.shape)).toEqual([[4, 5, 3], [4, 5, 5]]);
    expect(got.map((o) => o.shape)).toEqual(want.map((o) => o.shape));
    for (const [k, piece] of want.entries()) expect(Array.from((got[k] as Out).values)).toEqual(Array.from(piece.values)); // copies: exact
  });

  it("Sum over axes [1, 0] with keepDims: as the cpu backend's", () => {
    const inputs: Arrays = { x: [values(6 * 5 * 4, 42), [6, 5, 4]] };
    const attrs = { axis: [1, 0], keepDims: true };
    const [want] = runStockAll(STOCK.sum, inputs, attrs) as [Out];
    const [got] = runEngineAll("Sum", inputs, attrs) as [Out];
    expect(got.shape).toEqual([1, 1, 4]);
    expect(want.shape).toEqual([1, 1, 4]);
    expect(relError(got.values, want.values)).toBeLessThan(1e-6);
  });
});

describe.each(["wasm", "cpu"])("UnsortedSegmentSum (gather's gradient) on %s", (backend) => {
  beforeAll(async () => {
    registerTrainingKernels();
    expect(await tf.setBackend(backend)).toBe(true);
  });

  it("rows added up by id, out-of-range ids dropped: as the cpu backend's stock kernel and plain JS", () => {
    const [n, width, segments] = [9, 6, 5];
    const ids = Int32Array.from([2, 0, 2, 7, 4, 0, -1, 2, 1]); // 7 and -1 outside [0, 5); segment 3 empty
    const x = values(n * width, 43);
    const inputs: Arrays = { x: [x, [n, width]], segmentIds: [ids, [n]] };
    const attrs = { numSegments: segments };
    const plain = new Float32Array(segments * width);
    for (let row = 0; row < n; row++) {
      const id = ids[row] as number;
      if (id < 0 || id >= segments) continue;
      for (let j = 0; j < width; j++) plain[id * width + j] = (plain[id * width + j] as number) + (x[row * width + j] as number);
    }
    const [stock] = runStockAll(STOCK.segmentSum, inputs, attrs) as [Out];
    const [got] = runEngineAll("UnsortedSegmentSum", inputs, attrs) as [Out];
    expect(got.shape).toEqual([segments, width]);
    expect(stock.shape).toEqual([segments, width]);
    expect(relError(got.values, stock.values)).toBeLessThan(1e-6);
    expect(relError(got.values, plain)).toBeLessThan(1e-6);
    expect(Array.from(got.values.subarray(3 * width, 4 * width))).toEqual(new Array<number>(width).fill(0));
  });

  it("the embedding's gradient through tf.gather: as a one-hot matrix product", () => {
    const [vocab, width] = [11, 4];
    const ids = Int32Array.from([3, 0, 3, 10, 7, 3]);
    const table = tf.tensor(values(vocab * width, 44), [vocab, width]);
    const dy = tf.tensor(values(ids.length * width, 45), [ids.length, width]);
    const [got, want] = tf.tidy(() => {
      const idx = tf.tensor1d(ids, "int32");
      const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idx), dy)))(table);
      const onehot = tf.matMul(tf.cast(tf.oneHot(idx, vocab), "float32") as tf.Tensor2D, dy as tf.Tensor2D, true, false);
      return [grad.dataSync() as Float32Array, onehot.dataSync() as Float32Array];
    });
    expect(relError(got.slice(), want.slice())).toBeLessThan(1e-6);
    tf.dispose([table, dy]);
  });
});

describe("a GPT's training step", () => {
  const spec: ModelSpec = {
    input_shape: [8],
    layers: [
      { type: "token_embedding", vocab_size: 13, units: 16 },
      { type: "transformer_block", heads: 2, dropout: 0 },
      { type: "layer_norm" },
      { type: "tied_output" },
    ],
    loss: "next_token_crossentropy",
  };
  const [batch, context, vocab] = [3, 8, 13];
  const ids = (seed: number): Int32Array => Int32Array.from(values(batch * context, seed), (v) => Math.floor((v + 1.5) * 4.33) % vocab);

  /** The loss and every weight's gradient on `backend` (targets given as `dtype`), fallbacks taken meanwhile. */
  async function step(backend: string, dtype: "int32" | "float32"): Promise<{ loss: number; grads: Float32Array[]; fallbacks: Map<string, number> }> {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = buildModel(spec);
    const slots = weightSlots(model, spec);
    const weights = new Weights(
      slots.map((s) => s.name),
      slots.map((s) => s.shape),
      slots.map((s, k) => values(size([...s.shape]), 60 + k).map((v) => v * 0.4)),
    );
    setWeights(model, spec, weights);
    const before = new Map(kernelFallbacks());
    const x = tf.tensor(ids(51), [batch, context], "int32");
    const y = tf.tensor(ids(52), [batch, context], dtype);
    const tensorsBefore = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => nextTokenLoss(y, model.apply(x, { training: true }) as tf.Tensor));
    const result = {
      loss: (await value.data())[0] as number,
      grads: model.trainableWeights.map((w) => (grads[(w.read() as tf.Variable).name] as tf.Tensor).dataSync().slice() as Float32Array),
      fallbacks: new Map([...kernelFallbacks()].filter(([k, n]) => before.get(k) !== n)),
    };
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // nothing left behind by the loss's custom gradient
    tf.dispose([x, y]);
    model.dispose();
    return result;
  }

  it("on wasm: the same loss and gradients as on cpu, no fallback; targets int32 or float32", async () => {
    const want = await step("cpu", "int32");
    expect(want.grads.every((g) => g.some((v) => v !== 0))).toBe(true); // every weight gets a gradient
    for (const [backend, dtype] of [["wasm", "int32"], ["wasm", "float32"], ["cpu", "float32"]] as const) {
      const got = await step(backend, dtype);
      expect(got.fallbacks).toEqual(new Map());
      expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss)).toBeLessThan(1e-5);
      for (const [k, g] of want.grads.entries()) expect(relError(got.grads[k] as Float32Array, g)).toBeLessThan(1e-4);
    }
  });

  it("the loss is the mean of logSumExp(z) - z[target], its gradient (softmax(z) - onehot(target)) / N", async () => {
    expect(await tf.setBackend("wasm")).toBe(true);
    const [n, v] = [5, 7];
    const z = values(n * v, 71).map((x) => 3 * x);
    const targets = Int32Array.from([0, 6, 3, 3, 1]);
    let loss = 0;
    const grad = new Float32Array(n * v);
    for (let i = 0; i < n; i++) {
      const row = Array.from(z.subarray(i * v, (i + 1) * v));
      const top = Math.max(...row);
      const lse = top + Math.log(row.reduce((acc, x) => acc + Math.exp(x - top), 0));
      loss += (lse - (row[targets[i] as number] as number)) / n;
      for (let j = 0; j < v; j++) grad[i * v + j] = (Math.exp((row[j] as number) - lse) - (j === targets[i] ? 1 : 0)) / n;
    }
    const logits = tf.tensor(z, [1, n, v]);
    const y = tf.tensor(targets, [1, n], "int32");
    const { value, grad: got } = tf.valueAndGrad((l: tf.Tensor) => nextTokenLoss(y, l))(logits);
    expect(Math.abs((value.dataSync()[0] as number) - loss) / loss).toBeLessThan(1e-6);
    expect(got.shape).toEqual([1, n, v]);
    expect(relError(got.dataSync() as Float32Array, grad)).toBeLessThan(1e-6);
    tf.dispose([logits, y, value, got]);
  });
});
