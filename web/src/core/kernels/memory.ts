/**
 * Kernels of the wasm backend that mostly move memory, in plain JS on the backend's heap
 * (heap.ts). In a GPT's training step TF.js 4.22's own spend more time than the work needs:
 *
 * - `Identity` copies its input; here it shares it, as the cpu and WebGL backends' do (a
 *   tensor's values never change once written, and `Reshape` already shares them on wasm);
 * - `SplitV` copies the whole input once per piece (`readSync`) before slicing it; here each
 *   piece is copied from the heap, row by row;
 * - `Sum` over leading axes (a bias's or a normalisation's gradient: rows added up) transposes
 *   its input first; here the rows are added up in place, in order — the same sums, in the same
 *   order, as the stock kernel's sequential float32 sum.
 *
 * Other configurations (another dtype; a `Sum` over other axes, or over all) run the stock kernel.
 */
import type * as tf from "@tensorflow/tfjs";
import { heapOf, output } from "./heap";
import { type Info, view, withScratch } from "./scratch";

interface RefCounted {
  incRef(dataId: object): void;
}

/** `Identity` on wasm: the input's values, shared. */
export function identityWasm(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: "Identity",
    backendName: "wasm",
    kernelFunc: (args) => {
      const x = (args.inputs as { x: Info }).x;
      if (x.dtype === "string") return stock.kernelFunc(args);
      (args.backend as RefCounted).incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    },
  };
}

function product(dims: readonly number[]): number {
  return dims.reduce((p, d) => p * d, 1);
}

/** `SplitV` of a float32 tensor on wasm: each piece copied from the heap. */
export function splitVWasm(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: "SplitV",
    backendName: "wasm",
    kernelFunc: (args) => {
      const x = (args.inputs as { x: Info }).x;
      if (x.dtype !== "float32") return stock.kernelFunc(args);
      const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number[] | number; axis: number };
      const at = axis < 0 ? axis + x.shape.length : axis;
      const dim = x.shape[at] as number;
      const sizes = splitSizes(dim, numOrSizeSplits);
      const outer = product(x.shape.slice(0, at));
      const inner = product(x.shape.slice(at + 1));
      return withScratch("wasm", args.backend, (s) => {
        const pieces = sizes.map((size) => output(s, x.shape.map((d, i) => (i === at ? size : d))));
        const src = heapOf(s, x); // after the allocations, which may move the heap
        let begin = 0;
        for (const [k, piece] of pieces.entries()) {
          const size = sizes[k] as number;
          const dst = heapOf(s, piece);
          const run = size * inner;
          for (let o = 0; o < outer; o++) {
            const from = (o * dim + begin) * inner;
            dst.set(src.subarray(from, from + run), o * run);
          }
          begin += size;
        }
        return pieces.map((piece) => s.keep(piece));
      });
    },
  };
}

/** The sizes of the pieces of an axis of `dim` elements (TF.js's `prepareSplitSize` rule). */
function splitSizes(dim: number, split: number[] | number): number[] {
  if (typeof split === "number") return new Array<number>(split).fill(dim / split);
  const known = split.reduce((p, v) => (v === -1 ? p : p + v), 0);
  return split.map((v) => (v === -1 ? dim - known : v));
}

/** `Sum` of a float32 tensor over its leading axes on wasm: rows added up in order. */
export function sumWasm(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: "Sum",
    backendName: "wasm",
    kernelFunc: (args) => {
      const x = (args.inputs as { x: Info }).x;
      const { axis, keepDims } = args.attrs as unknown as { axis: number[] | number | null; keepDims: boolean };
      const rank = x.shape.length;
      const given = axis === null || axis === undefined ? [] : typeof axis === "number" ? [axis] : axis;
      const axes = given.map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q);
      const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
      if (x.dtype !== "float32" || !leading) return stock.kernelFunc(args);
      const rows = product(x.shape.slice(0, axes.length));
      const kept = x.shape.slice(axes.length);
      const width = product(kept);
      return withScratch("wasm", args.backend, (s) => {
        const out = output(s, kept);
        const [src, acc] = [heapOf(s, x), heapOf(s, out)];
        acc.fill(0);
        for (let r = 0; r < rows; r++) {
          const base = r * width;
          for (let j = 0; j < width; j++) acc[j] = (acc[j] as number) + (src[base + j] as number);
        }
        const shape = keepDims ? [...axes.map(() => 1), ...kept] : kept;
        return s.keep(view(out, shape));
      });
    },
  };
}
