/**
 * Training kernels disco registers with TF.js, so that training is possible, right and fast on
 * the wasm backend (the browser's default) and on the cpu backend (the last resort).
 *
 * | kernel | wasm (TF.js 4.22) | here |
 * |---|---|---|
 * | `Conv2DBackpropFilter` | missing: no convolutional model could train | one XNNPACK convolution (conv.ts) |
 * | `Conv2DBackpropInput` | a scalar loop | one XNNPACK convolution (conv.ts) |
 * | `BatchMatMul`, `_FusedMatMul` | a scalar loop when transposed or batched | transposed first, then XNNPACK, one product per matrix of a batch (matmul.ts) |
 * | `MaxPoolGrad` | wrong for some shapes | plain JS (pool.ts) |
 * | `DepthwiseConv2dNativeBackprop*` | missing | the cpu backend's, on copies |
 * | `UnsortedSegmentSum` (`gather`'s gradient) | missing | rows added up by id, plain JS (segment.ts) |
 * | `Identity`, `SplitV`, `Sum` (leading axes) | copies, or a transpose first | shared, or plain JS on the heap (memory.ts) |
 *
 * On cpu, `Conv2DBackpropFilter` becomes one convolution too (its own is element by element), and
 * `UnsortedSegmentSum` the same plain-JS sum (its own makes a masked copy of the input per id).
 * Where one of ours refuses a configuration (channels-first data, say), the kernel it replaced
 * runs — for a missing wasm kernel, the cpu backend's on copies of the inputs.
 */
import * as tf from "@tensorflow/tfjs";
import { conv2dBackpropFilter, conv2dBackpropInput } from "./conv";
import { matMulWasm } from "./matmul";
import { identityWasm, splitVWasm, sumWasm } from "./memory";
import { maxPoolGradWasm } from "./pool";
import { countFallback, type DataBackend, type Info } from "./scratch";
import { unsortedSegmentSum } from "./segment";

export { kernelFallbacks } from "./scratch";

/** Gradient kernels TF.js's wasm backend (4.22) lacks; disco registers them. */
export const WASM_MISSING_TRAINING_KERNELS = [
  "Conv2DBackpropFilter",
  "DepthwiseConv2dNativeBackpropFilter",
  "DepthwiseConv2dNativeBackpropInput",
  "UnsortedSegmentSum",
] as const;

/** Kernels of the wasm backend that give wrong results, replaced. */
export const WASM_WRONG_TRAINING_KERNELS = ["MaxPoolGrad"] as const;

/** Kernels of the wasm backend that are right but slow where training needs them, replaced. */
export const WASM_SLOW_TRAINING_KERNELS = [
  "Conv2DBackpropInput", "BatchMatMul", "_FusedMatMul", "Identity", "SplitV", "Sum",
] as const;

const OURS = new Set<tf.KernelConfig>();

/**
 * Register `make(previous)` for `kernelName` on `backendName` unless one of ours is there;
 * `previous` is the kernel it replaces. Its `setupFunc` is kept: the wasm backend binds its C++
 * functions there when it starts, and ours may call the kernel it replaced.
 */
function install(kernelName: string, backendName: string, make: (previous: tf.KernelConfig | undefined) => tf.KernelConfig | null): void {
  const previous = tf.getKernel(kernelName, backendName);
  if (previous !== undefined && OURS.has(previous)) return;
  const made = make(previous);
  if (made === null) return;
  const config: tf.KernelConfig = previous?.setupFunc ? { ...made, setupFunc: previous.setupFunc } : made;
  if (previous !== undefined) tf.unregisterKernel(kernelName, backendName);
  OURS.add(config);
  tf.registerKernel(config);
}

/**
 * `kernelName` for `backendName` as the cpu backend's kernel run on copies of the inputs; each
 * run counts as a fallback when `counted` (not when it is itself the fallback of one of ours).
 */
export function delegateToCpu(kernelName: string, backendName: string, counted = true): tf.KernelConfig | null {
  if (tf.getKernel(kernelName, "cpu") === undefined) return null;
  return {
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      if (counted) countFallback(kernelName, backendName);
      const cpuKernel = tf.getKernel(kernelName, "cpu");
      if (cpuKernel === undefined) throw new Error(`TF.js has no ${kernelName} kernel for the cpu backend`);
      const target = backend as DataBackend;
      const cpu = tf.findBackend("cpu") as unknown as DataBackend;
      const copies: tf.NamedTensorInfoMap = {};
      for (const [key, info] of Object.entries(inputs)) {
        if (info === undefined) continue;
        const values = (target.readSync(info.dataId) as Float32Array).slice();
        copies[key] = { dataId: cpu.write(values, info.shape, info.dtype), shape: info.shape, dtype: info.dtype };
      }
      try {
        const out = cpuKernel.kernelFunc({ inputs: copies, backend: cpu, ...(attrs ? { attrs } : {}) }) as Info;
        const values = cpu.readSync(out.dataId) as Float32Array;
        cpu.disposeData(out.dataId, true);
        return { dataId: target.write(values, [...out.shape], out.dtype), shape: out.shape, dtype: out.dtype };
      } finally {
        for (const info of Object.values(copies)) if (info) cpu.disposeData(info.dataId, true);
      }
    },
  };
}

/**
 * Make training work, right and fast, on the cpu and wasm backends (idempotent). Call it before
 * the backend starts (`initBackend` does). The conformance test checks the results against
 * PyTorch on both backends, web/tests/kernels.test.ts against the cpu backend's own kernels.
 */
export function registerTrainingKernels(): void {
  install("Conv2DBackpropFilter", "cpu", (previous) => conv2dBackpropFilter("cpu", previous ?? null));
  install("Conv2DBackpropFilter", "wasm", () => conv2dBackpropFilter("wasm", delegateToCpu("Conv2DBackpropFilter", "wasm", false)));
  install("Conv2DBackpropInput", "wasm", (previous) => {
    const fallback = previous ?? delegateToCpu("Conv2DBackpropInput", "wasm", false);
    return fallback === null ? null : conv2dBackpropInput("wasm", fallback);
  });
  for (const name of ["BatchMatMul", "_FusedMatMul"] as const) {
    install(name, "wasm", (previous) => (previous === undefined ? null : matMulWasm(name, previous)));
  }
  install("MaxPoolGrad", "wasm", () => maxPoolGradWasm());
  install("Identity", "wasm", (previous) => (previous === undefined ? null : identityWasm(previous)));
  install("SplitV", "wasm", (previous) => (previous === undefined ? null : splitVWasm(previous)));
  install("Sum", "wasm", (previous) => (previous === undefined ? null : sumWasm(previous)));
  for (const backendName of ["cpu", "wasm"]) install("UnsortedSegmentSum", backendName, () => unsortedSegmentSum(backendName));
  for (const name of WASM_MISSING_TRAINING_KERNELS) {
    if (name.startsWith("Depthwise")) install(name, "wasm", () => delegateToCpu(name, "wasm"));
  }
}
