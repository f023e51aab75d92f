/**
 * Training-speed page for benchmarks/browser_training.py: the app's training loop (`Trainer`)
 * against a bare `model.fit` on the same model and data, in this browser.
 *
 * The benchmark calls `window.discoBench(request)`; data arrives as base64 float32/int32 bytes so
 * every engine trains on the very same samples.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend, type BackendName } from "../core/backend";
import { buildModel } from "../core/models";
import type { Task } from "../core/task";
import { Trainer } from "../core/training/trainer";

interface BenchRequest {
  taskId: string;
  backend: BackendName;
  x: string; // base64 little-endian float32, n * prod(sampleShape)
  y: string; // base64 little-endian int32 class ids
  n: number;
  epochs: number;
}

interface BenchResult {
  backend: string;
  app_samples_per_s: number;
  bare_samples_per_s: number;
  app_s: number;
  bare_s: number;
}

function bytes(b64: string): ArrayBuffer {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out.buffer;
}

async function run(req: BenchRequest): Promise<BenchResult> {
  const choice = await initBackend(req.backend);
  const task = (await (await fetch(`/api/tasks/${req.taskId}`)).json()) as Task;
  const x = new Float32Array(bytes(req.x));
  const y = new Int32Array(bytes(req.y));
  const shape = task.model.input_shape;
  const data = { x, y, n: req.n, sampleShape: shape };
  const xT = tf.tensor(x, [req.n, ...shape], "float32");
  const yT = tf.tensor(Float32Array.from(y), [req.n, 1], "float32");
  const training = { ...task.training, epochs_per_round: req.epochs };

  // warm-up: one epoch of each, untimed (kernel compilation, first allocations)
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
  bareModel.dispose();
  tf.dispose([xT, yT]);

  const samples = req.n * req.epochs;
  return {
    backend: choice.backend,
    app_samples_per_s: samples / appS,
    bare_samples_per_s: samples / bareS,
    app_s: appS,
    bare_s: bareS,
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
