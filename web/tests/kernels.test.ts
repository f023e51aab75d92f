/**
 * disco's training kernels (src/core/kernels) against the cpu backend's own kernels: the same
 * gradients up to float rounding, for several shapes, strides, paddings ('same', 'valid',
 * explicit), batch sizes and channel counts; a refused configuration takes the fallback, and the
 * MNIST CNN's training step never does.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { kernelFallbacks, registerTrainingKernels } from "../src/core/kernels";
import { buildModel } from "../src/core/models";
import type { Task } from "../src/core/task";

// the cpu backend's own kernels, taken before disco replaces any of them
const STOCK = {
  filter: tf.getKernel("Conv2DBackpropFilter", "cpu"),
  input: tf.getKernel("Conv2DBackpropInput", "cpu"),
  maxPool: tf.getKernel("MaxPoolGrad", "cpu"),
  matMul: tf.getKernel("BatchMatMul", "cpu"),
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

type Arrays = Record<string, [Float32Array, number[]]>;

/** Run `kernel` (a stock cpu kernel) on copies of `inputs` in the cpu backend; its output values. */
function runStock(kernel: tf.KernelConfig | undefined, inputs: Arrays, attrs: object): Float32Array {
  if (kernel === undefined) throw new Error("stock kernel missing");
  type Cpu = { write(v: Float32Array, s: number[], d: tf.DataType): object; readSync(id: object): Float32Array; disposeData(id: object): void };
  const cpu = tf.findBackend("cpu") as unknown as Cpu;
  const infos: tf.NamedTensorInfoMap = {};
  for (const [name, [v, shape]] of Object.entries(inputs)) {
    infos[name] = { dataId: cpu.write(v.slice(), shape, "float32"), shape, dtype: "float32" };
  }
  const out = kernel.kernelFunc({ inputs: infos, backend: cpu, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
  const result = cpu.readSync(out.dataId).slice();
  for (const info of [out, ...Object.values(infos)]) if (info) cpu.disposeData(info.dataId);
  return result;
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
    { a: [3, 4, 5], b: [3, 5, 2], transposeA: false, transposeB: false }, // batch (stock path)
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
});
