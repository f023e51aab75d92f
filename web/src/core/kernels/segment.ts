/**
 * `UnsortedSegmentSum`, the kernel behind the gradient of `tf.gather` (an embedding lookup's
 * gradient: the rows of dy added up by token id). TF.js 4.22's wasm backend has none, and the
 * cpu backend's makes one masked copy of the whole input per segment (V·N·D work for V segments
 * — 2,048 tokens of a vocabulary of 2,048: half a billion multiplications). Here each row is
 * added to its segment's row, in order and in float64 as the cpu backend's `Sum` adds: N·D
 * additions, the cpu backend's sums (it adds zeros for the other rows). Ids outside
 * `[0, numSegments)` are dropped, as TensorFlow drops them.
 */
import type * as tf from "@tensorflow/tfjs";
import type { DataBackend, Info } from "./scratch";

/** `UnsortedSegmentSum` of `x` `[N, ...]` by 1-D ids `[N]` on `backendName`, in plain JS. */
export function unsortedSegmentSum(backendName: string): tf.KernelConfig {
  return {
    kernelName: "UnsortedSegmentSum",
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: Info; segmentIds: Info };
      const segments = (attrs as unknown as { numSegments: number }).numSegments;
      const data = backend as DataBackend;
      const values = data.readSync(x.dataId) as Float32Array | Int32Array;
      const ids = data.readSync(segmentIds.dataId) as Int32Array | Float32Array;
      const width = x.shape.slice(1).reduce((p, d) => p * d, 1);
      const sums = new Float64Array(segments * width);
      for (let row = 0; row < ids.length; row++) {
        const id = ids[row] as number;
        if (id < 0 || id >= segments) continue;
        const [to, from] = [id * width, row * width];
        for (let j = 0; j < width; j++) sums[to + j] = (sums[to + j] as number) + (values[from + j] as number);
      }
      const shape = [segments, ...x.shape.slice(1)];
      const out = x.dtype === "int32" ? Int32Array.from(sums) : Float32Array.from(sums);
      return { dataId: data.write(out, shape, x.dtype), shape, dtype: x.dtype };
    },
  };
}
