/**
 * Training-speed page for benchmarks/browser_training.py: the app's training loop (`Trainer`)
 * against a bare `model.fit` on the same model and data, in this browser, and where a training
 * step's time goes (per-kernel times from `tf.profile`). A language model (the GPT) trains on
 * token windows instead, its bare loop one `optimizer.minimize` a batch (tokens.ts).
 *
 * The benchmark calls `window.discoBench(request)`; data arrives as base64 float32/int32 bytes so
 * every engine trains on the very same samples.
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendPreference, describeBackend, initBackend } from "../core/backend";
import { kernelFallbacks } from "../core/kernels";
import { buildModel, takesTokens } from "../core/models";
import type { Task } from "../core/task";
import { Trainer } from "../core/training/trainer";
import { type KernelTime, type Profiled, profileSteps } from "./profile";
import { benchTokens, windowsOf } from "./tokens";

interface BenchRequest {
  taskId: string;
  backend: BackendPreference;
  x: string; // base64 little-endian float32, n * prod(sampleShape)
  y: string; // base64 little-endian int32 labels: n class ids, or n rows (a language model's next tokens)
  n: number;
  epochs: number;
  /** Training steps (one batch each) profiled kernel by kernel after the timed runs. */
  profileSteps: number;
  /** wasm threads wanted in an isolated page (default: the app's choice). */
  threads?: number;
}

interface BenchResult {
  backend: string;
  description: string;
  threads: number;
  isolated: boolean;
  /** Samples (windows, for a language model) per second. */
  app_samples_per_s: number;
  bare_samples_per_s: number;
  app_s: number;
  bare_s: number;
  /** Wall time of one profiled step (profiling adds a little). */
  step_ms: number;
  batch_size: number;
  kernels: KernelTime[];
  /** Runs of slower fallback kernels, by "Kernel on backend" (none expected). */
  fallbacks: Record<string, number>;
}

function bytes(b64: string): ArrayBuffer {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out.buffer;
}

/** Seconds of the app's loop and of a bare `model.fit` on the same tensors, then a profile. */
async function benchSamples(
  task: Task, x: Float32Array, y: Int32Array, req: BenchRequest,
): Promise<{ appS: number; bareS: number; profiled: Profiled }> {
  const shape = task.model.input_shape;
  const perSample = y.length / req.n; // 1: class ids; more: a row of labels per sample
  const xT = tf.tensor(x, [req.n, ...shape], "float32");
  const yT = tf.tensor(Float32Array.from(y), [req.n, perSample], "float32");
  // class ids: the app's own path from a Dataset; otherwise the same tensors as the bare loop
  const data = perSample === 1 ? { x, y, n: req.n, sampleShape: shape } : { x: xT, y: yT };
  const training = { ...task.training, epochs_per_round: req.epochs };
  const batch = training.batch_size;

  // warm-up: one epoch, untimed (kernel compilation, first allocations)
  const warm = buildModel(task.model, training);
  await warm.fit(xT, yT, { epochs: 1, batchSize: batch, shuffle: true, verbose: 0 });
  warm.dispose();

  const appModel = buildModel(task.model, training);
  const trainer = new Trainer(appModel, { training, model: task.model }, () => {});
  let start = performance.now();
  await trainer.trainRound(0, data);
  const appS = (performance.now() - start) / 1000;
  appModel.dispose();

  const bareModel = buildModel(task.model, training);
  start = performance.now();
  await bareModel.fit(xT, yT, { epochs: req.epochs, batchSize: batch, shuffle: true, verbose: 0 });
  const bareS = (performance.now() - start) / 1000;

  const batches = Array.from({ length: req.profileSteps }, (_, k) => {
    const first = (k * batch) % Math.max(req.n - batch, 1);
    return [xT.slice(first, batch), yT.slice(first, batch)] as const;
  });
  const profiled = await profileSteps(batches.map(([bx, by]) => async () => {
    await bareModel.trainOnBatch(bx, by);
  }));
  tf.dispose(batches.flat());
  bareModel.dispose();
  tf.dispose([xT, yT]);
  return { appS, bareS, profiled };
}

async function run(req: BenchRequest): Promise<BenchResult> {
  const choice = await initBackend(req.backend, req.threads === undefined ? {} : { threads: req.threads });
  const task = (await (await fetch(`/api/tasks/${req.taskId}`)).json()) as Task;
  const x = new Float32Array(bytes(req.x));
  const y = new Int32Array(bytes(req.y));
  const { appS, bareS, profiled } = takesTokens(task.model)
    ? await benchTokens(task.model, task.training, windowsOf(x, y, req.n), req.n, req.epochs, req.profileSteps)
    : await benchSamples(task, x, y, req);

  const samples = req.n * req.epochs;
  return {
    backend: choice.backend,
    description: describeBackend(choice),
    threads: choice.threads ?? 1,
    isolated: globalThis.crossOriginIsolated === true,
    app_samples_per_s: samples / appS,
    bare_samples_per_s: samples / bareS,
    app_s: appS,
    bare_s: bareS,
    step_ms: profiled.stepMs,
    batch_size: task.training.batch_size,
    kernels: profiled.kernels,
    fallbacks: Object.fromEntries(kernelFallbacks()),
  };
}

declare global {
  interface Window {
    discoBench: (req: BenchRequest) => Promise<BenchResult>;
  }
}

window.discoBench = run;
const state = document.getElementById("state");
if (state) state.textContent = "ready";
