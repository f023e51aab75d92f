/**
 * The bench page's path for a language model: the web app's loop (`Trainer.trainRound` on
 * `TokenWindows`, the loop of core/training/tokens.ts) against the most direct TF.js loop on the
 * same windows — per batch, the same int32 batch tensors and one `optimizer.minimize` of the
 * model's own optimizer (AdamW with gradient clipping for the catalog's GPT) on the mean
 * next-token loss, with no loss read back, no accuracy and no events.
 */
import * as tf from "@tensorflow/tfjs";
import { buildModel, nextTokenLoss } from "../core/models";
import type { ModelSpec, TrainingInfo } from "../core/task";
import { type TokenWindows, tokenBatch } from "../core/training/tokens";
import { Trainer } from "../core/training/trainer";
import { type Profiled, profileSteps } from "./profile";

/** Untimed steps before the timed loops (first allocations). */
const WARM_STEPS = 4;

/**
 * The windows of `n` input rows `x` (float32 token ids, `n · T`) and their target rows `y`
 * (int32, `n · T`, the inputs shifted by one): each window is its input row and the last target.
 */
export function windowsOf(x: Float32Array, y: Int32Array, n: number): TokenWindows {
  const t = x.length / n;
  const tokens = new Int32Array(n * (t + 1));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < t; j++) tokens[i * (t + 1) + j] = x[i * t + j] as number;
    tokens[i * (t + 1) + t] = y[i * t + t - 1] as number;
  }
  return { tokens, context: t };
}

/** The bare step on the windows at `indices`: one `minimize` of the model's optimizer. */
function bareStep(model: tf.LayersModel, data: TokenWindows, indices: ArrayLike<number>): void {
  const { x, y } = tokenBatch(data, indices);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  model.optimizer.minimize(() => nextTokenLoss(y, model.apply(x, { training: true }) as tf.Tensor), false, variables);
  tf.dispose([x, y]);
}

/** Batches of `batch` windows in a fresh shuffled order of `n` (the last may be short). */
function shuffledBatches(n: number, batch: number): number[][] {
  const order = Array.from({ length: n }, (_, i) => i);
  tf.util.shuffle(order);
  return Array.from({ length: Math.ceil(n / batch) }, (_, b) => order.slice(b * batch, (b + 1) * batch));
}

/** `epochs` epochs of bare steps; resolves once the backend has finished them. */
async function bareEpochs(model: tf.LayersModel, data: TokenWindows, n: number, batch: number, epochs: number): Promise<void> {
  for (let e = 0; e < epochs; e++) for (const idx of shuffledBatches(n, batch)) bareStep(model, data, idx);
  await model.trainableWeights[0]?.read().data(); // wait for the last step
}

/** Seconds of the app's loop and of the bare loop on the same windows, then a profile. */
export async function benchTokens(
  spec: ModelSpec, training: TrainingInfo, data: TokenWindows, n: number, epochs: number, steps: number,
): Promise<{ appS: number; bareS: number; profiled: Profiled }> {
  const batch = training.batch_size;
  const warm = buildModel(spec, training);
  for (const idx of shuffledBatches(n, batch).slice(0, WARM_STEPS)) bareStep(warm, data, idx);
  await warm.trainableWeights[0]?.read().data();
  warm.dispose();

  const appModel = buildModel(spec, training);
  const trainer = new Trainer(appModel, { training, model: spec }, () => {});
  let start = performance.now();
  await trainer.trainRound(0, data, undefined, epochs);
  const appS = (performance.now() - start) / 1000;
  appModel.dispose();

  const bareModel = buildModel(spec, training);
  start = performance.now();
  await bareEpochs(bareModel, data, n, batch, epochs);
  const bareS = (performance.now() - start) / 1000;

  const all = shuffledBatches(n, batch);
  const full = all.filter((idx) => idx.length === batch);
  const order = full.length > 0 ? full : all; // whole batches, unless there is none
  const profiled = await profileSteps(
    Array.from({ length: steps }, (_, k) => async () => {
      bareStep(bareModel, data, order[k % order.length] as number[]);
      await bareModel.trainableWeights[0]?.read().data();
    }),
  );
  bareModel.dispose();
  return { appS, bareS, profiled };
}
