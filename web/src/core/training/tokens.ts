/**
 * Training a language model (a spec whose first layer is `token_embedding`) on token windows,
 * as Python's trainer does: windows of `context + 1` ids back to back (`TextWindows.train` of
 * `core/data/text.ts`), inputs each window without its last id, targets without its first. The
 * loss is the mean next-token cross-entropy over batch × positions; the metrics are that loss,
 * its exponential (perplexity) and the token accuracy (argmax = target).
 *
 * `model.fit` cannot take (B, T) targets for (B, T, V) outputs, so the loop is ours: each batch
 * is one `optimizer.minimize` of the model's own optimizer (AdamW, clipping: `optim.ts`); the
 * loss and the correct count stay on the backend and are read once per epoch, plus once per
 * `lossEveryMs` for the progress events.
 */
import * as tf from "@tensorflow/tfjs";
import { DataError } from "../data/dataset";
import { nextTokenLoss } from "../models/build";

/** Token windows of `context + 1` ids each, back to back (N windows: N · (context + 1) ids). */
export interface TokenWindows {
  readonly tokens: Int32Array;
  readonly context: number;
}

/** Number of windows in `data`, after checking it fits the model's context. */
export function windowCount(data: TokenWindows, context: number): number {
  if (data.context !== context) {
    throw new DataError(`the windows are cut for a context of ${data.context} tokens; the model reads ${context}`);
  }
  const width = context + 1;
  if (data.tokens.length % width !== 0) {
    throw new DataError(`${data.tokens.length} token ids are not whole windows of ${width}`);
  }
  return data.tokens.length / width;
}

/** Refuse ids outside the model's vocabulary (TF.js would embed them as zeros, or fail). */
export function checkTokenIds(data: TokenWindows, vocab: number): void {
  let lo = 0;
  let hi = 0;
  for (const id of data.tokens) {
    if (id < lo) lo = id;
    if (id > hi) hi = id;
  }
  if (lo < 0 || hi >= vocab) {
    throw new DataError(`token ids must be 0 to ${vocab - 1} (the model's vocabulary), got ${lo} to ${hi}`);
  }
}

/** Inputs and targets (B, T) int32 of the windows at `indices`. */
export function tokenBatch(data: TokenWindows, indices: ArrayLike<number>): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const t = data.context;
  const width = t + 1;
  const n = indices.length;
  const x = new Int32Array(n * t);
  const y = new Int32Array(n * t);
  for (let i = 0; i < n; i++) {
    const start = (indices[i] as number) * width;
    x.set(data.tokens.subarray(start, start + t), i * t);
    y.set(data.tokens.subarray(start + 1, start + width), i * t);
  }
  return { x: tf.tensor2d(x, [n, t], "int32"), y: tf.tensor2d(y, [n, t], "int32") };
}

/** Positions (of B · T) whose most likely next token is the target, as a scalar. */
function correctCount(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), targets), "float32")) as tf.Scalar);
}

/** One optimizer step on a batch; the batch's mean loss and correct count (caller disposes). */
export function tokenStep(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): { loss: tf.Scalar; correct: tf.Scalar } {
  const optimizer = model.optimizer;
  let correct: tf.Scalar | null = null;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = optimizer.minimize(
    () => {
      const logits = model.apply(x, { training: true }) as tf.Tensor;
      correct = tf.keep(correctCount(logits, y));
      return nextTokenLoss(y, logits);
    },
    true,
    variables,
  ) as tf.Scalar;
  return { loss, correct: correct as unknown as tf.Scalar };
}

/** Mean loss and token accuracy of `model` on `data`, in inference mode. */
export async function evaluateTokens(
  model: tf.LayersModel,
  data: TokenWindows,
  context: number,
  batchSize = 64,
): Promise<{ loss: number; accuracy: number }> {
  const n = windowCount(data, context);
  if (n === 0) throw new DataError("cannot evaluate on an empty dataset");
  let lossSum = tf.scalar(0);
  let correct = tf.scalar(0);
  for (let start = 0; start < n; start += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
    const { x, y } = tokenBatch(data, idx);
    const [nextLoss, nextCorrect] = tf.tidy(() => {
      const logits = model.apply(x, { training: false }) as tf.Tensor;
      return [tf.add(lossSum, tf.mul(nextTokenLoss(y, logits), idx.length)), tf.add(correct, correctCount(logits, y))];
    });
    tf.dispose([x, y, lossSum, correct]);
    lossSum = nextLoss as tf.Scalar;
    correct = nextCorrect as tf.Scalar;
  }
  const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
  tf.dispose([lossSum, correct]);
  return { loss: (l[0] as number) / n, accuracy: (c[0] as number) / (n * context) };
}

/** Training progress for `trainTokenEpoch`'s callback. */
export interface BatchProgress {
  batch: number;
  batches: number;
  /** Set when read: at most once per `lossEveryMs`. */
  loss?: number;
}

/** The windows of `data` at `indices`, in that order. */
export function windowsAt(data: TokenWindows, indices: ArrayLike<number>): TokenWindows {
  const width = data.context + 1;
  const tokens = new Int32Array(indices.length * width);
  for (let i = 0; i < indices.length; i++) {
    const start = (indices[i] as number) * width;
    tokens.set(data.tokens.subarray(start, start + width), i * width);
  }
  return { tokens, context: data.context };
}

/**
 * One epoch over `data` in shuffled batches, or over the windows of `order` in that order (a
 * part of an epoch): mean loss and token accuracy. `onBatch` runs after each batch (awaited: it
 * may yield to the page); `shouldStop` ends the epoch early.
 */
export async function trainTokenEpoch(
  model: tf.LayersModel,
  data: TokenWindows,
  context: number,
  batchSize: number,
  lossEveryMs: number,
  onBatch: (progress: BatchProgress) => Promise<void>,
  shouldStop: () => boolean = () => false,
  order?: ArrayLike<number>,
): Promise<{ loss: number; accuracy: number }> {
  const n = windowCount(data, context);
  if (order === undefined) {
    const all = Array.from({ length: n }, (_, i) => i);
    tf.util.shuffle(all);
    order = all;
  }
  const picked = Array.from(order);
  const batches = Math.ceil(picked.length / batchSize);
  let lossSum = tf.scalar(0);
  let correct = tf.scalar(0);
  let seen = 0;
  let lastLoss = -Infinity;
  try {
    for (let b = 0; b < batches && !shouldStop(); b++) {
      const idx = picked.slice(b * batchSize, (b + 1) * batchSize);
      const { x, y } = tokenBatch(data, idx);
      const step = tokenStep(model, x, y);
      const [nextLoss, nextCorrect] = tf.tidy(() => [
        tf.add(lossSum, tf.mul(step.loss, idx.length)),
        tf.add(correct, step.correct),
      ]);
      tf.dispose([x, y, lossSum, correct, step.correct]);
      lossSum = nextLoss as tf.Scalar;
      correct = nextCorrect as tf.Scalar;
      seen += idx.length;
      const progress: BatchProgress = { batch: b + 1, batches };
      const now = Date.now();
      if (now - lastLoss >= lossEveryMs) {
        lastLoss = now;
        progress.loss = ((await step.loss.data()) as Float32Array)[0] as number;
      }
      step.loss.dispose();
      await onBatch(progress);
    }
    const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
    return { loss: seen ? (l[0] as number) / seen : Number.NaN, accuracy: seen ? (c[0] as number) / (seen * context) : Number.NaN };
  } finally {
    tf.dispose([lossSum, correct]);
  }
}
