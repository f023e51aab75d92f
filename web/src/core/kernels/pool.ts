/**
 * `MaxPoolGrad` for wasm, in plain JS on the NHWC values. TF.js 4.22's wasm kernel drops the
 * gradient of some windows, depending on the shape (e.g. 2x2 pooling of a 4x4x3 or a 47x47 input;
 * 2x2 'same' pooling with stride 1). Here each window's gradient goes to its first maximal cell,
 * in row-major order, as in TF and PyTorch; padded cells never win.
 */
import * as tf from "@tensorflow/tfjs";
import type { Info } from "./scratch";

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: "valid" | "same" | number;
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/**
 * The gradient of max pooling, `dy` routed to each window's first maximum in `x`, added into
 * `dx` (zeros). Cells in row-major order, channels innermost: the first strict maximum wins.
 */
export function maxPoolGradient(x: Float32Array, dy: Float32Array, info: tf.backend_util.Conv2DInfo, dx: Float32Array): void {
  const { batchSize, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { top, left } = info.padInfo;
  const best = new Int32Array(c);
  const bestValue = new Float32Array(c);
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.max(oy * sh - top, 0);
      const y1 = Math.min(oy * sh - top + kh, h);
      for (let ox = 0; ox < ow; ox++) {
        const x0 = Math.max(ox * sw - left, 0);
        const x1 = Math.min(ox * sw - left + kw, w);
        const g = ((b * oh + oy) * ow + ox) * c;
        if (y0 >= y1 || x0 >= x1) continue; // a window of padding only
        const first = ((b * h + y0) * w + x0) * c;
        for (let ch = 0; ch < c; ch++) {
          best[ch] = first + ch;
          bestValue[ch] = x[first + ch] as number;
        }
        for (let i = y0; i < y1; i++) {
          for (let j = i === y0 ? x0 + 1 : x0; j < x1; j++) {
            const base = ((b * h + i) * w + j) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[base + ch] as number;
              if (v > (bestValue[ch] as number)) {
                best[ch] = base + ch;
                bestValue[ch] = v;
              }
            }
          }
        }
        for (let ch = 0; ch < c; ch++) {
          const at = best[ch] as number;
          dx[at] = (dx[at] as number) + (dy[g + ch] as number);
        }
      }
    }
  }
}

/** What the kernel uses of the wasm backend: outputs and views straight into its memory. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): Float32Array;
}

/** The `MaxPoolGrad` kernel for wasm. */
export function maxPoolGradWasm(): tf.KernelConfig {
  return {
    kernelName: "MaxPoolGrad",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const wasm = backend as unknown as WasmBackend;
      const { dy, input } = inputs as { dy: Info; input: Info };
      const a = attrs as unknown as PoolAttrs;
      const info = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode,
      );
      const out = wasm.makeOutput([...input.shape], "float32");
      // views taken after the allocation, which may have moved the memory
      const dx = wasm.typedArrayFromHeap(out);
      dx.fill(0);
      maxPoolGradient(wasm.typedArrayFromHeap(input), wasm.typedArrayFromHeap(dy), info, dx);
      return out;
    },
  };
}
