/**
 * Training-speed page for benchmarks/browser_training.py: the app's training loop (`Trainer`)
 * against a bare `model.fit` on the same model and data, in this browser, and where a training
 * step's time goes (per-kernel times from `tf.profile`).
 *
 * The benchmark calls `window.discoBench(request)`; data arrives as base64 float32/int32 bytes so
 * every engine trains on the very same samples.
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendPreference, describeBackend, initBackend } from "../core/backend";
import { kernelFallbacks } from "../core/kernels";
import { buildModel } from "../core/models";
import type { Task } from "../core/task";
import { Trainer } from "../core/training/trainer";

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

/** One kernel's share of a profiled training step. */
interface KernelTime {
  name: string;
  ms_per_step: number;
  calls_per_step: number;
}

interface BenchResult {
  backend: string;
  description: string;
  threads: number;
  isolated: boolean;
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

/** Per-kernel time of `steps` training steps on the first batches of `x`, `y`. */
async function profileSteps(
  model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, batch: number, steps: number,
): Promise<{ stepMs: number; kernels: KernelTime[] }> {
  const n = x.shape[0] ?? 0;
  const batches = Array.from({ length: steps }, (_, k) => {
    const start = (k * batch) % Math.max(n - batch, 1);
    return [x.slice(start, batch), y.slice(start, batch)] as const;
  });
  await model.trainOnBatch(batches[0]?.[0] ?? x, batches[0]?.[1] ?? y); // warm
  const start = performance.now();
  const info = await tf.profile(async () => {
    for (const [bx, by] of batches) await model.trainOnBatch(bx, by);
  });
  const stepMs = (performance.now() - start) / steps;
  tf.dispose(batches.flat());
  const totals = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const entry = totals.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    entry.calls += 1;
    totals.set(k.name, entry);
  }
  const kernels = [...totals.entries()]
    .map(([name, t]) => ({ name, ms_per_step: t.ms / steps, calls_per_step: t.calls / steps }))
    .sort((a, b) => b.ms_per_step - a.ms_per_step);
  return { stepMs, kernels };
}

async function run(req: BenchRequest): Promise<BenchResult> {
  const choice = await initBackend(req.backend, req.threads === undefined ? {} : { threads: req.threads });
  const task = (await (await fetch(`/api/tasks/${req.taskId}`)).json()) as Task;
  const x = new Float32Array(bytes(req.x));
  const y = new Int32Array(bytes(req.y));
  const shape = task.model.input_shape;
  const perSample = y.length / req.n; // 1: class ids; more: a row of labels per sample
  const xT = tf.tensor(x, [req.n, ...shape], "float32");
  const yT = tf.tensor(Float32Array.from(y), [req.n, perSample], "float32");
  // class ids: the app's own path from a Dataset; otherwise the same tensors as the bare loop
  const data = perSample === 1 ? { x, y, n: req.n, sampleShape: shape } : { x: xT, y: yT };
  const training = { ...task.training, epochs_per_round: req.epochs };

  // warm-up: one epoch, untimed (kernel compilation, first allocations)
  const warm = buildModel(task.model, training);
  await warm.fit(xT, yT, { epochs: 1, batchSize: training.batch_size, shuffle: true, verbose: 0 });
  warm.dispose();

  const appModel = buildModel(task.model, training);
  const trainer = new Trainer(appModel, { training, model: task.model }, () => {});
  let start = performance.now();
  await trainer.trainRound(0, data);
  const appS = (performance.now() - start) / 1000;
  appModel.dispose();

  const bareModel = buildModel(task.model, training);
  start = performance.now();
  await bareModel.fit(xT, yT, {
    epochs: req.epochs, batchSize: training.batch_size, shuffle: true, verbose: 0,
  });
  const bareS = (performance.now() - start) / 1000;

  const profiled = await profileSteps(bareModel, xT, yT, training.batch_size, req.profileSteps);
  bareModel.dispose();
  tf.dispose([xT, yT]);

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
    batch_size: training.batch_size,
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
