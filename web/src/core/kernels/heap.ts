/**
 * The wasm backend's memory and C++ functions, reached directly from kernels: a tensor's values
 * as a view of the heap (`heapOf`), new outputs (`output`), a blocked transpose of the last two
 * axes in plain JS (`transposeLast2`: TF.js 4.22's wasm `Transpose` walks the output element by
 * element, about 2x slower on large matrices), and matrix products by XNNPACK on any part of a
 * tensor (`xnnProduct`): the part is registered with the C++ side as a tensor of its own, under
 * a fresh id, at its place in memory — no copy.
 *
 * `BackendWasm` is not exported by TF.js; `WasmBackend` names the members used here (4.22).
 */
import type * as tf from "@tensorflow/tfjs";
import type { Info, Scratch } from "./scratch";

type CFunction = (...args: unknown[]) => void;

/** What the kernels here use of TF.js's wasm backend. */
interface WasmBackend {
  wasm: {
    HEAPU8: Uint8Array;
    cwrap(name: string, returns: null, args: string[]): CFunction;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
}

/** The C++ `BatchMatMul` (the function behind the stock kernel), by backend. */
const CXX_MATMUL = new WeakMap<object, CFunction>();

function wasmOf(s: Scratch): WasmBackend {
  return s.backend as unknown as WasmBackend;
}

function offsetOf(backend: WasmBackend, t: Info): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data === undefined) throw new Error("a tensor is not on the wasm backend");
  return data.memoryOffset;
}

/** A new float32 tensor of `shape` on the backend, freed with `s` unless kept. */
export function output(s: Scratch, shape: number[]): Info {
  return s.track(wasmOf(s).makeOutput(shape, "float32"));
}

/** The float32 values of `t` as a view of the heap: valid until the next allocation. */
export function heapOf(s: Scratch, t: Info): Float32Array {
  const backend = wasmOf(s);
  const size = t.shape.reduce((p, d) => p * d, 1);
  return new Float32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size);
}

/** Edge of the square blocks the transpose walks (both blocks stay in the L1 cache). */
const BLOCK = 32;

/** `x` `[g, r, c]` (float32) as `[g, c, r]`, a new tensor. */
export function transposeLast2(s: Scratch, x: Info): Info {
  const [g, r, c] = x.shape as [number, number, number];
  const out = output(s, [g, c, r]);
  const [src, dst] = [heapOf(s, x), heapOf(s, out)];
  for (let m = 0; m < g; m++) {
    const base = m * r * c;
    for (let i0 = 0; i0 < r; i0 += BLOCK) {
      const i1 = Math.min(i0 + BLOCK, r);
      for (let j0 = 0; j0 < c; j0 += BLOCK) {
        const j1 = Math.min(j0 + BLOCK, c);
        for (let i = i0; i < i1; i++) {
          let from = base + i * c + j0;
          for (let j = j0; j < j1; j++) dst[base + j * r + i] = src[from++] as number;
        }
      }
    }
  }
  return out;
}

function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/**
 * `a` `[g, m, k]` · `b` `[g, k, n]` (float32, neither transposed): g products by XNNPACK, each
 * on its matrices registered under fresh ids. XNNPACK packs a right-hand side once per id and
 * frees the packing when the id is disposed — here at once, so no packing outlives the product
 * or is found again under another shape.
 */
export function xnnProduct(s: Scratch, a: Info, b: Info): Info {
  const backend = wasmOf(s);
  const [g, m, k] = a.shape as [number, number, number];
  const n = b.shape[2] as number;
  const out = output(s, [g, m, n]);
  let product = CXX_MATMUL.get(backend);
  if (product === undefined) {
    const types = ["number", "array", "number", "number", "array", "number", "number", "number", "number"];
    product = backend.wasm.cwrap("BatchMatMul", null, types);
    CXX_MATMUL.set(backend, product);
  }
  const [aAt, bAt, outAt] = [offsetOf(backend, a), offsetOf(backend, b), offsetOf(backend, out)];
  const [aShape, bShape] = [shapeBytes([1, m, k]), shapeBytes([1, k, n])];
  const { tfjs } = backend.wasm;
  for (let i = 0; i < g; i++) {
    const ids = [backend.dataIdNextNumber++, backend.dataIdNextNumber++, backend.dataIdNextNumber++] as const;
    tfjs.registerTensor(ids[0], m * k, aAt + 4 * i * m * k);
    tfjs.registerTensor(ids[1], k * n, bAt + 4 * i * k * n);
    tfjs.registerTensor(ids[2], m * n, outAt + 4 * i * m * n);
    try {
      product(ids[0], aShape, 3, ids[1], bShape, 3, false, false, ids[2]);
    } finally {
      for (const id of ids) tfjs.disposeData(id);
    }
  }
  return out;
}
