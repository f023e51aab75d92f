/**
 * TF.js backend selection: WebAssembly by default (about 3x faster than WebGL under software
 * rendering), WebGL where asked for, the plain-JS CPU backend as the last resort.
 *
 * The wasm binaries are bundled by Vite (`?url` imports give their hashed asset URLs), so the
 * app served by `disco serve` loads them from its own origin: no CDN, works offline. In Node
 * (vitest) the URLs mean nothing and the paths are left alone.
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import wasmPlain from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url";
import wasmSimd from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url";
import wasmThreaded from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url";

/** Backends the app knows how to start. */
export type BackendName = "wasm" | "webgl" | "cpu";

/** The backend that runs, and why the preferred one does not when it does not. */
export interface BackendChoice {
  backend: BackendName;
  /** Set when a fallback was taken: what failed first. */
  fallbackReason?: string;
}

const IN_BROWSER = typeof window !== "undefined" && typeof document !== "undefined";
let wasmConfigured = false;

function configureWasm(): void {
  if (wasmConfigured || !IN_BROWSER) return;
  setWasmPaths({
    "tfjs-backend-wasm.wasm": wasmPlain,
    "tfjs-backend-wasm-simd.wasm": wasmSimd,
    "tfjs-backend-wasm-threaded-simd.wasm": wasmThreaded,
  });
  wasmConfigured = true;
}

/**
 * Gradient kernels TF.js's wasm backend (4.22) lacks: without them no convolutional model can
 * train on wasm ("Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'").
 */
export const WASM_MISSING_TRAINING_KERNELS = [
  "Conv2DBackpropFilter",
  "DepthwiseConv2dNativeBackpropFilter",
  "DepthwiseConv2dNativeBackpropInput",
] as const;

/**
 * Gradient kernels of the wasm backend that give wrong results, replaced here: `MaxPoolGrad`
 * drops the gradient of some windows, depending on the shape (e.g. 2x2 pooling of a 4x4x3 or a
 * 47x47 input; 2x2 'same' pooling with stride 1).
 */
export const WASM_WRONG_TRAINING_KERNELS = ["MaxPoolGrad"] as const;

type Info = tf.TensorInfo;

/** Minimal view of a TF.js backend: what the kernels below use. */
interface DataBackend {
  write(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype: tf.DataType): object;
  readSync(dataId: object): unknown;
  disposeData(dataId: object, force?: boolean): boolean;
}

const OURS = new Set<tf.KernelConfig>();

function install(config: tf.KernelConfig): void {
  const current = tf.getKernel(config.kernelName, config.backendName);
  if (current !== undefined && OURS.has(current)) return;
  if (current !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
  OURS.add(config);
  tf.registerKernel(config);
}

/** `kernelName` for `backendName` as the cpu backend's kernel run on copies of the inputs. */
function delegateToCpu(kernelName: string, backendName: string): tf.KernelConfig | null {
  const cpuKernel = tf.getKernel(kernelName, "cpu");
  if (cpuKernel === undefined) return null;
  return {
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
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
 * `Conv2DBackpropFilter` as one convolution, run by the backend's own fast kernels:
 * `dW[i, j, c, o] = sum_{b, y, x} xpad[b, y*s + i, x*s + j, c] * dy[b, y, x, o]` is a 'valid'
 * convolution of xpad seen as `[c, H, W, b]` with dy seen as `[y, x, b, o]`, dilated by the
 * strides. The stock cpu kernel does this element by element (about 50x slower); wasm has none.
 */
function conv2dBackpropFilter(backendName: string): tf.KernelConfig {
  const run = (name: string, backend: object, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap): Info => {
    const kernel = tf.getKernel(name, backendName);
    if (kernel === undefined) throw new Error(`no ${name} kernel on ${backendName}`);
    return kernel.kernelFunc({ inputs, backend, attrs }) as Info;
  };
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as {
        strides: [number, number] | number;
        pad: "valid" | "same" | number;
        dataFormat: "NHWC" | "NCHW";
        dimRoundingMode?: "floor" | "round" | "ceil";
        filterShape: [number, number, number, number];
      };
      if (a.dataFormat !== "NHWC") throw new Error("Conv2DBackpropFilter: only NHWC is supported");
      const conv = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode,
      );
      const { top, bottom, left, right } = conv.padInfo;
      const [kh, kw, cin, cout] = a.filterShape;
      const temps: Info[] = [];
      const keep = (info: Info): Info => {
        temps.push(info);
        return info;
      };
      try {
        const padded = keep(run("PadV2", backend, { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
        const xt = keep(run("Transpose", backend, { x: padded }, { perm: [3, 1, 2, 0] }));
        const dyt = keep(run("Transpose", backend, { x: dy }, { perm: [1, 2, 0, 3] }));
        const full = keep(run("Conv2D", backend, { x: xt, filter: dyt }, {
          strides: [1, 1], pad: "valid", dataFormat: "NHWC", dilations: [conv.strideHeight, conv.strideWidth],
        }));
        const cut = keep(run("Slice", backend, { x: full }, { begin: [0, 0, 0, 0], size: [cin, kh, kw, cout] }));
        return run("Transpose", backend, { x: cut }, { perm: [1, 2, 0, 3] });
      } finally {
        for (const info of temps) (backend as DataBackend).disposeData(info.dataId);
      }
    },
  };
}

/**
 * `Conv2DBackpropFilter` on wasm: for stride 1, the wasm backend's native
 * `Conv3DBackpropFilterV2` on a depth-1 view of the same buffers (no copy; wasm kernels find data
 * by id), faster there than the convolution above, whose huge dy "filter" suits XNNPACK badly;
 * strided convolutions take the convolution.
 */
function conv2dBackpropFilterWasm(): tf.KernelConfig {
  const fallback = conv2dBackpropFilter("wasm");
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: (args) => {
      const { inputs, attrs, backend } = args;
      const a = attrs as unknown as { strides: [number, number] | number; pad: unknown; dataFormat: string; filterShape: number[] };
      const conv3d = tf.getKernel("Conv3DBackpropFilterV2", "wasm");
      const [sh, sw] = typeof a.strides === "number" ? [a.strides, a.strides] : a.strides;
      // the 3-D kernel's filter gradient is wrong for strided convolutions (checked by the
      // conformance test: stride 2 'same' gives gradients 20-80% off): those take the fallback
      const simple = (a.pad === "same" || a.pad === "valid") && sh === 1 && sw === 1;
      if (conv3d === undefined || !simple || a.dataFormat !== "NHWC") return fallback.kernelFunc(args);
      const as5d = (t: Info): Info => ({ dataId: t.dataId, dtype: t.dtype, shape: [t.shape[0] ?? 1, 1, ...t.shape.slice(1)] });
      const { x, dy } = inputs as { x: Info; dy: Info };
      const out = conv3d.kernelFunc({
        inputs: { x: as5d(x), dy: as5d(dy) },
        backend,
        attrs: { strides: [1, sh, sw], pad: a.pad as string, filterShape: [1, ...a.filterShape] },
      }) as Info;
      return { dataId: out.dataId, dtype: out.dtype, shape: [...a.filterShape] };
    },
  };
}

/**
 * `MaxPoolGrad` for wasm, in plain JS on the NHWC values: each window's gradient goes to its
 * first maximal cell (as in TF and PyTorch); padded cells never win. About 10x faster than the
 * cpu backend's generic kernel, and right where wasm's own kernel is not.
 */
function maxPoolGradWasm(): tf.KernelConfig {
  return {
    kernelName: "MaxPoolGrad",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const target = backend as DataBackend;
      const { dy, input } = inputs as { dy: Info; input: Info };
      const a = attrs as unknown as {
        filterSize: [number, number] | number;
        strides: [number, number] | number;
        pad: "valid" | "same" | number;
        dimRoundingMode?: "floor" | "round" | "ceil";
      };
      const info = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode,
      );
      const { batchSize, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
      const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
      const { top, left } = info.padInfo;
      const x = target.readSync(input.dataId) as Float32Array;
      const g = target.readSync(dy.dataId) as Float32Array;
      const dx = new Float32Array(x.length);
      for (let b = 0; b < batchSize; b++) {
        for (let oy = 0; oy < oh; oy++) {
          const y0 = oy * sh - top;
          for (let ox = 0; ox < ow; ox++) {
            const x0 = ox * sw - left;
            for (let ch = 0; ch < c; ch++) {
              let best = -1;
              let bestValue = Number.NEGATIVE_INFINITY;
              for (let i = Math.max(y0, 0); i < Math.min(y0 + kh, h); i++) {
                for (let j = Math.max(x0, 0); j < Math.min(x0 + kw, w); j++) {
                  const at = ((b * h + i) * w + j) * c + ch;
                  const v = x[at] as number;
                  if (v > bestValue || best < 0) {
                    bestValue = v;
                    best = at;
                  }
                }
              }
              if (best >= 0) dx[best] = (dx[best] as number) + (g[((b * oh + oy) * ow + ox) * c + ch] as number);
            }
          }
        }
      }
      return { dataId: target.write(dx, [...input.shape], "float32"), shape: input.shape, dtype: "float32" };
    },
  };
}

/**
 * Make training work, right and fast, on the cpu and wasm backends (idempotent):
 * `Conv2DBackpropFilter` as one convolution on cpu and as a depth-1 3-D kernel on wasm;
 * `MaxPoolGrad` in JS on wasm; the depthwise gradients wasm lacks run the cpu backend's kernel on
 * copies of their inputs. The conformance test checks the results against PyTorch on both.
 */
export function registerTrainingKernels(): void {
  install(conv2dBackpropFilter("cpu"));
  install(conv2dBackpropFilterWasm());
  install(maxPoolGradWasm());
  for (const name of WASM_MISSING_TRAINING_KERNELS) {
    if (name === "Conv2DBackpropFilter") continue;
    const config = delegateToCpu(name, "wasm");
    if (config !== null) install(config);
  }
}

async function tryBackend(name: BackendName, timeoutMs: number): Promise<string | null> {
  if (name === "wasm") configureWasm();
  if (name === "webgl" && !IN_BROWSER) return "WebGL needs a browser";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<boolean>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    const ok = await Promise.race([tf.setBackend(name), timeout]);
    if (!ok) return `${name} backend failed to initialise`;
    await tf.ready();
    return null;
  } catch (error) {
    return `${name} backend failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Start TF.js on `preferred` (default "wasm"); if it cannot start, try wasm, then cpu, logging
 * why. Resolves to the backend in use. Call it before any other TF.js work: TF.js would
 * otherwise pick a backend by itself (and look for the wasm files where they are not).
 */
export async function initBackend(preferred: BackendName = "wasm", timeoutMs = 20_000): Promise<BackendChoice> {
  registerTrainingKernels();
  const order = [...new Set<BackendName>([preferred, "wasm", "cpu"])];
  let firstFailure: string | undefined;
  for (const name of order) {
    const failure = await tryBackend(name, timeoutMs);
    if (failure === null) {
      if (firstFailure !== undefined) console.warn(`disco: using the ${name} backend (${firstFailure})`);
      return firstFailure === undefined ? { backend: name } : { backend: name, fallbackReason: firstFailure };
    }
    firstFailure ??= failure;
    console.warn(`disco: ${failure}`);
  }
  throw new Error(`disco: no TF.js backend could start (${firstFailure ?? "unknown reason"})`);
}
