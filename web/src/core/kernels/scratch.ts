/**
 * Running a backend's own kernels from inside another kernel. `Scratch` calls them by name on one
 * backend and frees every intermediate result at the end; `view` reshapes without copying
 * (kernels find their data by id, so a tensor seen under another shape is the same buffer);
 * `countFallback` keeps count of the configurations disco's kernels leave to slower ones.
 */
import * as tf from "@tensorflow/tfjs";

export type Info = tf.TensorInfo;

/** What the kernels here use of a TF.js backend. */
export interface DataBackend {
  write(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype: tf.DataType): object;
  readSync(dataId: object): unknown;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** `t` under another shape of the same size: no copy. */
export function view(t: Info, shape: readonly number[]): Info {
  return { dataId: t.dataId, dtype: t.dtype, shape: [...shape] };
}

/** The kernel `name` of `backendName` as registered now. */
export function kernelOf(name: string, backendName: string): tf.KernelConfig {
  const kernel = tf.getKernel(name, backendName);
  if (kernel === undefined) throw new Error(`TF.js has no ${name} kernel for the ${backendName} backend`);
  return kernel;
}

/** Kernel calls on one backend whose results are freed by `dispose` unless `keep`-ed. */
export class Scratch {
  private readonly temps: Info[] = [];

  constructor(
    readonly backendName: string,
    readonly backend: object,
  ) {}

  /** Run kernel `name` (or the given `kernel`) on `inputs`. */
  run(name: string, inputs: tf.NamedTensorInfoMap, attrs: object = {}, kernel?: tf.KernelConfig): Info {
    const config = kernel ?? kernelOf(name, this.backendName);
    const out = config.kernelFunc({ inputs, backend: this.backend, attrs: attrs as tf.NamedAttrMap }) as Info;
    this.temps.push(out);
    return out;
  }

  /** Free `out` (a tensor made on the backend by other means) with the results of `run`. */
  track(out: Info): Info {
    this.temps.push(out);
    return out;
  }

  /** `out` (a result of `run`, or a view of one) survives `dispose`: it is the kernel's output. */
  keep(out: Info): Info {
    const at = this.temps.findIndex((t) => t.dataId === out.dataId);
    if (at >= 0) this.temps.splice(at, 1);
    return out;
  }

  /** Free every result not kept. */
  dispose(): void {
    const backend = this.backend as DataBackend;
    for (const t of this.temps.splice(0)) backend.disposeData(t.dataId);
  }
}

const fallbacks = new Map<string, number>();

/** Count one run of a fallback of `kernelName` on `backendName` (a configuration ours refuses, or
 * a kernel the backend lacks). */
export function countFallback(kernelName: string, backendName: string): void {
  const key = `${kernelName} on ${backendName}`;
  fallbacks.set(key, (fallbacks.get(key) ?? 0) + 1);
}

/** How many times each fallback ran since the page started, by "Kernel on backend" (for tests
 * and benchmarks: the MNIST CNN's training step takes none). */
export function kernelFallbacks(): ReadonlyMap<string, number> {
  return fallbacks;
}

/** `f` with a `Scratch` on `backend`, disposed afterwards (kept results excepted). */
export function withScratch<T>(backendName: string, backend: object, f: (s: Scratch) => T): T {
  const s = new Scratch(backendName, backend);
  try {
    return f(s);
  } finally {
    s.dispose();
  }
}
