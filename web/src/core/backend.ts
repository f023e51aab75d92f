/**
 * TF.js backend selection. By default ("auto"): WebGPU where the browser offers a hardware GPU
 * adapter and the backend passes a small training check, else WebAssembly — on several threads
 * when the page is cross-origin isolated (`disco serve` sends the COOP/COEP headers that make it
 * so; half the cores, up to 4), on one otherwise — and the plain-JS cpu backend as the last
 * resort. WebGL only when asked.
 *
 * The wasm binaries are bundled by Vite (`?url` imports give their hashed asset URLs), so the
 * app served by `disco serve` loads them from its own origin: no CDN, works offline. The WebGPU
 * backend is a separate chunk, loaded only where an adapter exists. In Node (vitest) the URLs
 * mean nothing and the paths are left alone.
 */
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount, setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import wasmPlain from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url";
import wasmSimd from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url";
import wasmThreaded from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url";
import { registerTrainingKernels } from "./kernels";
import { trainingCheck } from "./kernels/check";

export { registerTrainingKernels } from "./kernels";

/** Backends the app knows how to start. */
export type BackendName = "webgpu" | "wasm" | "webgl" | "cpu";

/** A backend, or "auto": WebGPU where usable, else wasm. */
export type BackendPreference = BackendName | "auto";

/** The backend that runs, and why the preferred one does not when it does not. */
export interface BackendChoice {
  backend: BackendName;
  /** wasm: the threads its kernels use. */
  threads?: number;
  /** wasm: whether the page is cross-origin isolated (several threads possible). */
  isolated?: boolean;
  /** webgpu: the GPU, as the browser names it. */
  adapter?: string;
  /** Set when a fallback was taken: what failed first. */
  fallbackReason?: string;
}

/** What the page offers; read from the browser by `probeEnvironment`, given by tests. */
export interface Environment {
  /** `crossOriginIsolated`: SharedArrayBuffer, hence wasm threads, are available. */
  isolated: boolean;
  /** `navigator.hardwareConcurrency` (1 when unknown). */
  cores: number;
  /** `navigator.gpu` where the browser has WebGPU. */
  gpu?: GpuLike;
}

/** The part of `navigator.gpu` used here. */
export interface GpuLike {
  requestAdapter(options?: { powerPreference?: "high-performance" | "low-power" }): Promise<AdapterLike | null>;
}

/** The part of a `GPUAdapter` used here. */
export interface AdapterLike {
  isFallbackAdapter?: boolean;
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
}

/**
 * At most this many wasm threads by default: the models trained here are small (more threads
 * mostly wait for each other), and a phone's 8 cores are typically 4 fast and 4 slow ones, the
 * slow ones holding back every parallel step.
 */
export const MAX_WASM_THREADS = 4;

/** The most threads TF.js's wasm backend can have (its Emscripten build starts 8 workers). */
export const WASM_THREAD_POOL = 8;

/** How to start (all optional). */
export interface BackendOptions {
  /** Per backend tried (default 20 s). */
  timeoutMs?: number;
  /** What the page offers (default: what the browser reports). */
  env?: Environment;
  /** wasm threads wanted in an isolated page (default: `wasmThreads`'s choice). */
  threads?: number;
}

const IN_BROWSER = typeof window !== "undefined" && typeof document !== "undefined";

/** The page's environment as the browser reports it (in Node: not isolated, no GPU). */
export function probeEnvironment(): Environment {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number; gpu?: GpuLike } }).navigator;
  const env: Environment = {
    isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    cores: Math.max(1, nav?.hardwareConcurrency ?? 1),
  };
  return IN_BROWSER && nav?.gpu !== undefined ? { ...env, gpu: nav.gpu } : env;
}

/** The backends to try, in order, for `preference`. */
export function backendOrder(preference: BackendPreference, env: Environment): BackendName[] {
  const first: BackendName[] = preference === "auto" ? (env.gpu !== undefined ? ["webgpu"] : []) : [preference];
  return [...new Set<BackendName>([...first, "wasm", "cpu"])];
}

/**
 * Threads for the wasm backend: 1 unless the page is cross-origin isolated; then `requested`, or
 * by default half the cores, at most `MAX_WASM_THREADS` (as TF.js and ONNX Runtime Web do). The
 * other half keeps the page and the machine responsive; and a multi-threaded step suffers badly
 * when another program takes a core (every kernel waits for its slowest thread: measured 3x
 * slower on a busy 2-core machine, benchmarks/RESULTS.md), more so the more cores it uses.
 */
export function wasmThreads(env: Environment, requested?: number): number {
  if (!env.isolated) return 1;
  const wanted = requested ?? Math.min(Math.floor(env.cores / 2), MAX_WASM_THREADS);
  return Math.max(1, Math.min(wanted, env.cores, WASM_THREAD_POOL));
}

/** A short description of `choice` for people, e.g. "WebAssembly, 4 threads". */
export function describeBackend(choice: BackendChoice): string {
  switch (choice.backend) {
    case "webgpu":
      return `WebGPU${choice.adapter ? ` (${choice.adapter})` : ""}`;
    case "wasm": {
      const threads = choice.threads ?? 1;
      if (threads > 1) return `WebAssembly, ${threads} threads`;
      return choice.isolated === false
        ? "WebAssembly, one thread (the page is not cross-origin isolated)"
        : "WebAssembly, one thread";
    }
    case "webgl":
      return "WebGL";
    case "cpu":
      return "plain JavaScript (slow)";
  }
}

let wasmConfigured = false;

function configureWasm(threads: number): void {
  if (wasmConfigured) return;
  setThreadsCount(threads);
  // one thread: the plain SIMD build; the threaded one would only add its idle workers' cost
  // (15-20% slower a training step on one thread here, benchmarks/RESULTS.md)
  if (threads === 1) tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  if (IN_BROWSER) {
    setWasmPaths({
      "tfjs-backend-wasm.wasm": wasmPlain,
      "tfjs-backend-wasm-simd.wasm": wasmSimd,
      "tfjs-backend-wasm-threaded-simd.wasm": wasmThreaded,
    });
  }
  wasmConfigured = true;
}

/**
 * `f` while the page reports `cores` logical cores. TF.js 4.22's wasm backend caps its thread pool
 * at `navigator.hardwareConcurrency / 2`, read when its module starts, whatever `setThreadsCount`
 * says: asked for more threads than that (benchmarks do), the page reports twice as many cores.
 */
async function reportingCores<T>(cores: number, f: () => Promise<T>): Promise<T> {
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav === undefined) return f();
  Object.defineProperty(nav, "hardwareConcurrency", { value: cores, configurable: true });
  try {
    return await f();
  } finally {
    delete (nav as { hardwareConcurrency?: number }).hardwareConcurrency; // the browser's getter again
  }
}

/** The adapter's name, or why WebGPU is not usable (null adapter, software adapter). */
async function webgpuAdapter(gpu: GpuLike): Promise<{ adapter: string } | { failure: string }> {
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) return { failure: "WebGPU: the browser offers no GPU adapter" };
  if (adapter.isFallbackAdapter === true || adapter.info?.isFallbackAdapter === true) {
    return { failure: "WebGPU: only a software adapter (slower than wasm)" };
  }
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture || info.device || info.description].filter(Boolean).join(" ");
  return { adapter: name || "GPU" };
}

/** Start `name` (null: started) or say why it cannot; `extra` collects what the choice reports. */
async function tryBackend(name: BackendName, env: Environment, threads: number, extra: Partial<BackendChoice>): Promise<string | null> {
  if (name === "wasm") configureWasm(threads);
  if (name === "webgl" && !IN_BROWSER) return "WebGL needs a browser";
  if (name === "webgpu") {
    if (env.gpu === undefined) return "WebGPU: this browser does not offer it";
    const found = await webgpuAdapter(env.gpu);
    if ("failure" in found) return found.failure;
    extra.adapter = found.adapter;
    await import("@tensorflow/tfjs-backend-webgpu"); // registers "webgpu" where navigator.gpu exists
  }
  const start = (): Promise<boolean> => tf.setBackend(name);
  const many = name === "wasm" && threads > Math.floor(env.cores / 2);
  // (not `tf.ready()` after it: that would wait for a backend that never answered before)
  if (!(await (many ? reportingCores(2 * threads, start) : start()))) return `${name} backend failed to initialise`;
  if (name === "wasm") Object.assign(extra, { threads: getThreadsCount(), isolated: env.isolated });
  if (name === "webgpu") {
    const wrong = await trainingCheck();
    if (wrong !== null) {
      tf.removeBackend("webgpu"); // its GPU device is let go
      return `WebGPU: ${wrong}`;
    }
  }
  return null;
}

/** `tryBackend` within `timeoutMs`, any error turned into the reason. */
async function attempt(
  name: BackendName, env: Environment, threads: number, extra: Partial<BackendChoice>, timeoutMs: number,
): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`${name}: no answer within ${timeoutMs / 1000} s`), timeoutMs);
    });
    return await Promise.race([tryBackend(name, env, threads, extra), timeout]);
  } catch (error) {
    return `${name} backend failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Start TF.js on `preference` ("auto": WebGPU where usable, else wasm); if it cannot start, try
 * wasm, then cpu, logging why. Resolves to the backend in use. Call it before any other TF.js
 * work: TF.js would otherwise pick a backend by itself (and look for the wasm files where they
 * are not), and only once: the wasm backend's threads are fixed when it starts.
 */
export async function initBackend(preference: BackendPreference = "auto", options: BackendOptions = {}): Promise<BackendChoice> {
  registerTrainingKernels();
  const env = options.env ?? probeEnvironment();
  const threads = wasmThreads(env, options.threads);
  let firstFailure: string | undefined;
  for (const name of backendOrder(preference, env)) {
    const extra: Partial<BackendChoice> = {};
    const failure = await attempt(name, env, threads, extra, options.timeoutMs ?? 20_000);
    if (failure === null) {
      const choice: BackendChoice = { ...extra, backend: name };
      if (firstFailure !== undefined) {
        console.warn(`disco: using the ${name} backend (${firstFailure})`);
        choice.fallbackReason = firstFailure;
      }
      return choice;
    }
    firstFailure ??= failure;
    console.warn(`disco: ${failure}`);
  }
  throw new Error(`disco: no TF.js backend could start (${firstFailure ?? "unknown reason"})`);
}
