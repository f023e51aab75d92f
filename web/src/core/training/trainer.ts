/**
 * The browser's local trainer: rounds of `epochs_per_round` epochs of `model.fit`, or of one part
 * of an epoch (`core/schedule.ts`: the part's batches of the epoch's shuffled order, evaluated on
 * the part's share of the validation samples), with one flat stream of events, as Python's
 * `disco.training.Trainer` emits them.
 *
 * The loop is TF.js's own `fit` (shuffled mini-batches of the task's batch size, validation at
 * the end of each epoch). The per-batch hook adds no work to it: a `batch_end` event carries the
 * batch's loss only when at least `lossEveryMs` passed since the last one that did (reading a
 * scalar waits for the backend), and the loop yields to the page every 125 ms, as `fit` does by
 * itself. Epoch metrics are the averages `fit` computes anyway. Every tensor made here is
 * disposed.
 *
 * A language model (a spec that starts with `token_embedding`) trains on `TokenWindows` with the
 * loop of `tokens.ts` instead, emitting the same events; its metrics add the perplexity.
 */
import * as tf from "@tensorflow/tfjs";
import { DataError, type Dataset, permutation, subset } from "../data/dataset";
import { isTokenModel, takesTokens } from "../models/build";
import { TokenEmbedding } from "../models/gpt";
import { type EpochPart, partBatches, partValidation } from "../schedule";
import type { ModelSpec, TrainingInfo } from "../task";
import { checkTokenIds, evaluateTokens, type TokenWindows, trainTokenEpoch, windowCount, windowsAt } from "./tokens";

export type { TokenWindows } from "./tokens";

/** Loss and accuracy of one epoch on the training data and on the validation data. */
export interface EpochMetrics {
  round: number;
  epoch: number;
  train_loss: number;
  /** null for regression (mse). */
  train_accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
  /** Language models: exp of the mean loss over every predicted token. */
  train_perplexity?: number | null;
  val_perplexity?: number | null;
}

/** Kinds of training events. */
export type TrainingEventKind = "round_start" | "batch_end" | "epoch_end" | "round_end";

/** One step of training, as progress displays see it (epochs and batches count from 1). */
export interface TrainingEvent {
  kind: TrainingEventKind;
  round: number;
  epoch: number;
  batch: number;
  batches: number;
  /** The batch's loss, on some `batch_end` events only (see `TrainerOptions.lossEveryMs`). */
  loss?: number;
  metrics?: EpochMetrics;
  /** The part of an epoch the round trains, when it trains one (`core/schedule.ts`). */
  part?: EpochPart;
}

/** Receives training events. */
export type EventCallback = (event: TrainingEvent) => void;

/** Samples to train or evaluate on: a `Dataset`, or tensors the caller owns and disposes. */
export type Batchable = Dataset | { x: tf.Tensor; y: tf.Tensor };

/** What a trainer trains on: `Batchable`, or token windows for a language model. */
export type TrainingData = Batchable | TokenWindows;

function isWindows(data: TrainingData): data is TokenWindows {
  return "tokens" in data && "context" in data;
}

/** exp(loss), capped where a float64 overflows. */
export function perplexity(loss: number): number {
  return Math.exp(Math.min(loss, 700));
}

/** Tuning of the trainer's event stream. */
export interface TrainerOptions {
  /** Minimum milliseconds between two `batch_end` events carrying a loss (default 200; 0: all). */
  lossEveryMs?: number;
}

/** What the trainer needs from a task. */
export interface TrainerTask {
  training: Pick<TrainingInfo, "epochs_per_round" | "batch_size">;
  model: ModelSpec;
}

/** Yield to the event loop without `requestAnimationFrame`, which stalls in background tabs. */
function yieldToPage(): Promise<void> {
  if (typeof MessageChannel === "undefined") return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

async function scalar(value: number | tf.Tensor | undefined): Promise<number | null> {
  if (value === undefined) return null;
  if (typeof value === "number") return value;
  return ((await value.data()) as Float32Array)[0] ?? null;
}

/** Whether `model` was compiled for regression (mse): no accuracy, targets shaped like outputs. */
function isRegression(model: tf.LayersModel): boolean {
  return model.loss === "meanSquaredError";
}

/** `data` as `[x, y]` tensors shaped for `model`: y is `[n, 1]` for classifiers. */
export function toTensors(model: tf.LayersModel, data: Dataset): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const x = tf.tensor(data.x, [data.n, ...data.sampleShape], "float32");
    const out = (model.outputs[0]?.shape ?? [null, 1]).slice(1) as number[];
    const yShape = isRegression(model) ? [data.n, ...out] : [data.n, 1];
    const y = tf.tensor(Float32Array.from(data.y), yShape, "float32");
    return [x, y];
  });
}

function asTensors(model: tf.LayersModel, data: Batchable): { x: tf.Tensor; y: tf.Tensor; owned: boolean } {
  if ("sampleShape" in data) {
    const [x, y] = toTensors(model, data);
    return { x, y, owned: true };
  }
  return { x: data.x, y: data.y, owned: false };
}

function sizeOf(data: Batchable): number {
  return "sampleShape" in data ? data.n : (data.x.shape[0] ?? 0);
}

/**
 * The samples (of `n`) that `part` of an epoch trains, in order: its batches of the epoch's
 * shuffled order (fixed by `seed`), which all parts of that epoch share.
 */
export function partOrder(part: EpochPart, n: number, batchSize: number, seed: number): Int32Array {
  const [start, stop] = partBatches(part, Math.ceil(n / batchSize));
  return permutation(n, seed).subarray(start * batchSize, Math.min(stop * batchSize, n));
}

/** The samples of `data` at `indices`, and the tensors made for them (the caller disposes). */
function pick(data: Batchable, indices: ArrayLike<number>): { data: Batchable; made: tf.Tensor[] } {
  if ("sampleShape" in data) return { data: subset(data, indices), made: [] };
  const at = tf.tensor1d(Int32Array.from(indices), "int32");
  const picked = { x: tf.gather(data.x, at), y: tf.gather(data.y, at) };
  at.dispose();
  return { data: picked, made: [picked.x, picked.y] };
}

/** How often training lets the page breathe (TF.js's own `fit` default, 125 ms). */
const YIELD_EVERY_MS = 125;

class EventBridge extends tf.Callback {
  private epoch = 0;
  private lastLoss = -Infinity;
  private lastYield = Date.now();
  readonly history: EpochMetrics[] = [];

  constructor(
    private readonly round: number,
    private readonly batches: number,
    private readonly hasAccuracy: boolean,
    private readonly lossEveryMs: number,
    private readonly emit: EventCallback,
  ) {
    super();
  }

  override async onEpochBegin(epoch: number): Promise<void> {
    this.epoch = epoch + 1;
  }

  override async onBatchEnd(batch: number, logs?: tf.Logs): Promise<void> {
    const event: TrainingEvent = { kind: "batch_end", round: this.round, epoch: this.epoch, batch: batch + 1, batches: this.batches };
    const now = Date.now();
    if (now - this.lastLoss >= this.lossEveryMs) {
      this.lastLoss = now;
      const loss = await scalar(logs?.["loss"] as number | tf.Tensor | undefined);
      if (loss !== null) event.loss = loss;
    }
    this.emit(event);
    if (now - this.lastYield >= YIELD_EVERY_MS) {
      await yieldToPage();
      this.lastYield = Date.now();
    }
  }

  override async onEpochEnd(epoch: number, logs?: tf.Logs): Promise<void> {
    const get = (key: string): Promise<number | null> => scalar(logs?.[key] as number | tf.Tensor | undefined);
    const [loss, acc, valLoss, valAcc] = await Promise.all([get("loss"), get("acc"), get("val_loss"), get("val_acc")]);
    const metrics: EpochMetrics = {
      round: this.round,
      epoch: epoch + 1,
      train_loss: loss ?? Number.NaN,
      train_accuracy: this.hasAccuracy ? acc : null,
      val_loss: valLoss,
      val_accuracy: this.hasAccuracy && valLoss !== null ? valAcc : null,
    };
    this.history.push(metrics);
    this.emit({ kind: "epoch_end", round: this.round, epoch: epoch + 1, batch: this.batches, batches: this.batches, metrics });
  }
}

/** Trains one participant's TF.js model on its local data, round after round. */
export class Trainer {
  private readonly options: Required<TrainerOptions>;

  /** The part of an epoch the current round trains, told with each of its events. */
  private part: EpochPart | null = null;
  /** An epoch cut into rounds: the seed of its order, drawn when its part 1 trains. */
  private readonly epochSeeds = new Map<number, number>();
  private readonly onEvent: EventCallback;

  /** `model` is built from `task.model` (see `buildModel`); events go to `onEvent`. */
  constructor(
    readonly model: tf.LayersModel,
    readonly task: TrainerTask,
    onEvent: EventCallback = () => {},
    options: TrainerOptions = {},
  ) {
    this.options = { lossEveryMs: options.lossEveryMs ?? 200 };
    this.onEvent = (e) => onEvent(this.part ? { ...e, part: this.part } : e);
  }

  /**
   * Run `epochs_per_round` epochs (or `epochs`), or `part` of an epoch, on `train`; return each
   * epoch's metrics (a part: one entry, on the part's batches and validation share).
   */
  async trainRound(
    round: number,
    train: TrainingData,
    val?: TrainingData,
    epochs?: number,
    part: EpochPart | null = null,
  ): Promise<EpochMetrics[]> {
    this.part = part;
    if (takesTokens(this.task.model)) return this.trainTokens(round, train, val, part ? 1 : epochs, part);
    if (isWindows(train) || (val !== undefined && isWindows(val))) {
      throw new DataError("token windows train language models only; this model reads a Dataset");
    }
    const n = sizeOf(train);
    if (n === 0) throw new DataError("no training data: connect at least one sample");
    const { training, model: spec } = this.task;
    const count = part ? 1 : (epochs ?? training.epochs_per_round);
    const batchSize = training.batch_size;
    const made: tf.Tensor[] = [];
    if (part !== null) {
      const picked = pick(train, partOrder(part, n, batchSize, this.orderSeed(part)));
      made.push(...picked.made);
      train = picked.data;
      if (val !== undefined && sizeOf(val) > 0) {
        const share = pick(val, partValidation(part, sizeOf(val)));
        made.push(...share.made);
        val = share.data;
      }
    }
    const bridge = new EventBridge(
      round, Math.ceil(sizeOf(train) / batchSize), spec.loss !== "mse", this.options.lossEveryMs, this.onEvent,
    );
    const trainT = asTensors(this.model, train);
    const valT = val !== undefined && sizeOf(val) > 0 ? asTensors(this.model, val) : null;
    try {
      this.onEvent({ kind: "round_start", round, epoch: 0, batch: 0, batches: 0 });
      await this.model.fit(trainT.x, trainT.y, {
        epochs: count,
        batchSize,
        shuffle: part === null, // a part keeps its epoch's order
        verbose: 0,
        callbacks: [bridge],
        ...(valT ? { validationData: [valT.x, valT.y] as [tf.Tensor, tf.Tensor] } : {}),
      });
    } finally {
      if (trainT.owned) tf.dispose([trainT.x, trainT.y]);
      if (valT?.owned) tf.dispose([valT.x, valT.y]);
      tf.dispose(made);
    }
    const last = bridge.history[bridge.history.length - 1];
    this.onEvent({
      kind: "round_end", round, epoch: last?.epoch ?? 0, batch: 0, batches: 0, ...(last ? { metrics: last } : {}),
    });
    return bridge.history;
  }

  private async trainTokens(
    round: number,
    train: TrainingData,
    val: TrainingData | undefined,
    epochs: number | undefined,
    part: EpochPart | null,
  ): Promise<EpochMetrics[]> {
    const context = this.task.model.input_shape[0] as number;
    const windows = (data: TrainingData): TokenWindows => {
      if (!isWindows(data)) throw new DataError("a language model trains on token windows, not on a dataset");
      return data;
    };
    const embedding = this.task.model.layers[0];
    const vocab = embedding?.type === "token_embedding" ? embedding.vocab_size : 0;
    const trainW = windows(train);
    const n = windowCount(trainW, context);
    if (n === 0) throw new DataError("no training data: connect at least one text file");
    checkTokenIds(trainW, vocab);
    let valW = val !== undefined ? windows(val) : null;
    const hasVal = valW !== null && windowCount(valW, context) > 0;
    if (valW !== null) checkTokenIds(valW, vocab);
    const { batch_size: batchSize, epochs_per_round: perRound } = this.task.training;
    const count = epochs ?? perRound;
    const order = part ? partOrder(part, n, batchSize, this.orderSeed(part)) : undefined;
    if (part && valW && hasVal) valW = windowsAt(valW, partValidation(part, windowCount(valW, context)));
    const batches = Math.ceil((order?.length ?? n) / batchSize);
    const history: EpochMetrics[] = [];
    let lastYield = Date.now();
    this.model.stopTraining = false;
    this.onEvent({ kind: "round_start", round, epoch: 0, batch: 0, batches: 0 });
    for (let epoch = 1; epoch <= count && !this.model.stopTraining; epoch++) {
      const trained = await trainTokenEpoch(
        this.model, trainW, context, batchSize, this.options.lossEveryMs,
        async ({ batch, loss }) => {
          this.onEvent({ kind: "batch_end", round, epoch, batch, batches, ...(loss !== undefined ? { loss } : {}) });
          if (Date.now() - lastYield >= YIELD_EVERY_MS) {
            await yieldToPage();
            lastYield = Date.now();
          }
        },
        () => this.model.stopTraining,
        order,
      );
      const v = hasVal && valW ? await evaluateTokens(this.model, valW, context) : null;
      const metrics: EpochMetrics = {
        round, epoch,
        train_loss: trained.loss, train_accuracy: trained.accuracy,
        val_loss: v?.loss ?? null, val_accuracy: v?.accuracy ?? null,
        train_perplexity: perplexity(trained.loss), val_perplexity: v ? perplexity(v.loss) : null,
      };
      history.push(metrics);
      this.onEvent({ kind: "epoch_end", round, epoch, batch: batches, batches, metrics });
    }
    const last = history[history.length - 1];
    this.onEvent({
      kind: "round_end", round, epoch: last?.epoch ?? 0, batch: 0, batches: 0, ...(last ? { metrics: last } : {}),
    });
    return history;
  }

  /**
   * The seed of the order `part`'s epoch shares: drawn at random when its part 1 trains (or
   * this trainer starts part way), so that a page that joins again trains other windows.
   */
  private orderSeed(part: EpochPart): number {
    if (part.index === 1 || !this.epochSeeds.has(part.epoch)) {
      this.epochSeeds.set(part.epoch, Math.floor(Math.random() * 2 ** 31));
    }
    return this.epochSeeds.get(part.epoch) as number;
  }

  /** Ask a running `trainRound` to stop after the current batch. */
  stop(): void {
    this.model.stopTraining = true;
  }
}

/**
 * Mean loss and accuracy (null for regression) of `model` on `x` and `y` (tensors the caller
 * owns), or on a `Dataset` given as `x` alone.
 */
export async function evaluate(
  model: tf.LayersModel,
  x: Dataset | tf.Tensor | TokenWindows,
  y?: tf.Tensor,
  batchSize = 512,
): Promise<{ loss: number; accuracy: number | null }> {
  if (!(x instanceof tf.Tensor) && isWindows(x)) {
    const embedding = model.layers.find((l): l is TokenEmbedding => l instanceof TokenEmbedding);
    if (!isTokenModel(model) || embedding === undefined) throw new DataError("token windows evaluate language models only");
    checkTokenIds(x, embedding.vocabSize);
    return evaluateTokens(model, x, embedding.context, Math.min(batchSize, 64));
  }
  if (x instanceof tf.Tensor && y === undefined) throw new DataError("evaluate needs labels y for input tensors");
  const data: Batchable = x instanceof tf.Tensor ? { x, y: y as tf.Tensor } : x;
  if (sizeOf(data) === 0) throw new DataError("cannot evaluate on an empty dataset");
  const t = asTensors(model, data);
  let results: tf.Scalar[] = [];
  try {
    const out = model.evaluate(t.x, t.y, { batchSize, verbose: 0 });
    results = Array.isArray(out) ? out : [out];
    const values = await Promise.all(results.map((r) => scalar(r)));
    return { loss: values[0] ?? Number.NaN, accuracy: isRegression(model) ? null : (values[1] ?? null) };
  } finally {
    tf.dispose(results);
    if (t.owned) tf.dispose([t.x, t.y]);
  }
}

/**
 * Model outputs (final activation applied: probabilities for classifiers, next-token
 * probabilities (n, T, V) for language models, whose input tensor holds int32 token ids) for
 * the samples of `data` (a Dataset, or an input tensor the caller owns): `n * outputSize` values,
 * in order.
 */
export async function predict(
  model: tf.LayersModel,
  data: Dataset | tf.Tensor,
  batchSize = 512,
): Promise<Float32Array> {
  const owned = !(data instanceof tf.Tensor);
  const x = data instanceof tf.Tensor ? data : tf.tensor(data.x, [data.n, ...data.sampleShape], "float32");
  try {
    const predicted = model.predict(x, { batchSize }) as tf.Tensor;
    // a language model gives logits over the vocabulary: probabilities, as for classifiers
    const out = isTokenModel(model) ? tf.tidy(() => tf.softmax(predicted)) : predicted;
    if (out !== predicted) predicted.dispose();
    try {
      return (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    if (owned) x.dispose();
  }
}

/** Class ids from `predict`'s outputs: argmax for softmax, `p > 0.5` for one sigmoid unit. */
export function classesFromOutputs(outputs: Float32Array, n: number): Int32Array {
  const width = n === 0 ? 0 : outputs.length / n;
  const classes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (width === 1) {
      classes[i] = (outputs[i] as number) > 0.5 ? 1 : 0;
      continue;
    }
    let best = 0;
    for (let k = 1; k < width; k++) {
      if ((outputs[i * width + k] as number) > (outputs[i * width + best] as number)) best = k;
    }
    classes[i] = best;
  }
  return classes;
}
