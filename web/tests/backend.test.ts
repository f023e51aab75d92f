/**
 * The choice of TF.js backend: WebGPU only where the browser offers a hardware adapter, else wasm
 * (threads only in a cross-origin isolated page), and a clean fallback — never a crash — when
 * WebGPU is absent, software-only or fails to start. Node has no WebGPU: the environment is given.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  type AdapterLike,
  type Environment,
  MAX_WASM_THREADS,
  WASM_THREAD_POOL,
  backendOrder,
  describeBackend,
  initBackend,
  probeEnvironment,
  wasmThreads,
} from "../src/core/backend";
import { trainingCheck } from "../src/core/kernels/check";

const plain: Environment = { isolated: false, cores: 4 };

/** An environment whose `navigator.gpu` answers `adapter` (and counts the requests). */
function withGpu(adapter: AdapterLike | null): Environment & { requests: () => number } {
  let requests = 0;
  return {
    isolated: false,
    cores: 2,
    gpu: {
      requestAdapter: async () => {
        requests += 1;
        return adapter;
      },
    },
    requests: () => requests,
  };
}

describe("backend order and threads", () => {
  it("tries WebGPU first only where the browser has it", () => {
    expect(backendOrder("auto", plain)).toEqual(["wasm", "cpu"]);
    expect(backendOrder("auto", withGpu(null))).toEqual(["webgpu", "wasm", "cpu"]);
    expect(backendOrder("wasm", withGpu(null))).toEqual(["wasm", "cpu"]);
    expect(backendOrder("webgl", plain)).toEqual(["webgl", "wasm", "cpu"]);
    expect(backendOrder("cpu", plain)).toEqual(["cpu", "wasm"]);
  });

  it("uses half the cores (at most 4) for wasm, only in a cross-origin isolated page", () => {
    expect(wasmThreads({ isolated: false, cores: 8 })).toBe(1);
    expect(wasmThreads({ isolated: false, cores: 8 }, 4)).toBe(1);
    expect(wasmThreads({ isolated: true, cores: 1 })).toBe(1);
    expect(wasmThreads({ isolated: true, cores: 2 })).toBe(1);
    expect(wasmThreads({ isolated: true, cores: 6 })).toBe(3);
    expect(wasmThreads({ isolated: true, cores: 64 })).toBe(MAX_WASM_THREADS);
  });

  it("takes a requested thread count within the cores and TF.js's pool", () => {
    expect(wasmThreads({ isolated: true, cores: 2 }, 2)).toBe(2);
    expect(wasmThreads({ isolated: true, cores: 2 }, 6)).toBe(2);
    expect(wasmThreads({ isolated: true, cores: 64 }, 64)).toBe(WASM_THREAD_POOL);
    expect(wasmThreads({ isolated: true, cores: 4 }, 0)).toBe(1);
  });

  it("in Node: not isolated, no GPU", () => {
    const env = probeEnvironment();
    expect(env.isolated).toBe(false);
    expect(env.gpu).toBeUndefined();
    expect(env.cores).toBeGreaterThanOrEqual(1);
  });

  it("says which backend runs, in words", () => {
    expect(describeBackend({ backend: "wasm", threads: 4 })).toBe("WebAssembly, 4 threads");
    expect(describeBackend({ backend: "wasm", threads: 1, isolated: true })).toBe("WebAssembly, one thread");
    expect(describeBackend({ backend: "wasm", threads: 1, isolated: false })).toBe(
      "WebAssembly, one thread (the page is not cross-origin isolated)",
    );
    expect(describeBackend({ backend: "webgpu", adapter: "nvidia ampere" })).toBe("WebGPU (nvidia ampere)");
    expect(describeBackend({ backend: "cpu" })).toBe("plain JavaScript (slow)");
  });
});

describe("falling back from WebGPU", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("without a GPU adapter: wasm, saying why, and the WebGPU backend is never loaded", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const env = withGpu(null);

    const choice = await initBackend("auto", { env });

    expect(env.requests()).toBe(1);
    expect(choice.backend).toBe("wasm");
    expect(choice.fallbackReason).toMatch(/no GPU adapter/);
    expect(tf.getBackend()).toBe("wasm");
    expect(tf.findBackendFactory("webgpu")).toBeNull();
  });

  it("with a software adapter only: wasm", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});

    const choice = await initBackend("auto", { env: withGpu({ info: { vendor: "google", isFallbackAdapter: true } }) });

    expect(choice.backend).toBe("wasm");
    expect(choice.fallbackReason).toMatch(/software adapter/);
  });

  it("with an adapter whose backend cannot start: wasm, and training works", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    // a hardware adapter, but this runtime cannot start TF.js's WebGPU backend on it
    const choice = await initBackend("auto", { env: withGpu({ info: { vendor: "acme", architecture: "gpu-1" } }) });

    expect(choice.backend).toBe("wasm");
    expect(choice.fallbackReason).toMatch(/^webgpu backend failed|^WebGPU/);
    expect(warn).toHaveBeenCalled();
    const gradient = tf.tidy(() => {
      const w = tf.variable(tf.ones([3, 1]));
      const x = tf.ones([4, 3]);
      const grads = tf.variableGrads(() => tf.sum(tf.matMul(x, w)));
      return grads.grads[w.name]?.dataSync()[0];
    });
    expect(gradient).toBe(4);
  });
});

describe("the training check a WebGPU backend must pass", () => {
  it("passes on wasm with disco's kernels", async () => {
    await initBackend("wasm", { env: plain });
    expect(await trainingCheck()).toBeNull();
    expect(tf.getBackend()).toBe("wasm");
  });

  it("fails, saying so, when a gradient kernel is wrong", async () => {
    await initBackend("wasm", { env: plain });
    const good = tf.getKernel("Conv2DBackpropFilter", "wasm");
    if (good === undefined) throw new Error("no Conv2DBackpropFilter on wasm");
    tf.unregisterKernel("Conv2DBackpropFilter", "wasm");
    tf.registerKernel({
      ...good,
      kernelFunc: (args) => {
        const out = good.kernelFunc(args) as tf.TensorInfo;
        const backend = args.backend as { disposeData(id: object): void; write(v: Float32Array, s: number[], d: string): object };
        backend.disposeData(out.dataId);
        return { ...out, dataId: backend.write(new Float32Array(out.shape.reduce((a, b) => a * b, 1)), out.shape, "float32") };
      },
    });
    try {
      expect(await trainingCheck()).toMatch(/gradients differ from the cpu backend's/);
    } finally {
      tf.unregisterKernel("Conv2DBackpropFilter", "wasm");
      tf.registerKernel(good);
    }
    expect(tf.getBackend()).toBe("wasm");
  });
});
