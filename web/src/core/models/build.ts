/**
 * The portable model (docs/models.md) realised in TF.js: one `tf.layers.*` per portable layer,
 * under the canonical layer names, so that weights map by name.
 *
 * TF.js is the reference engine of the format: layouts are TF/Keras's (`dense` kernel
 * `[in, units]`, `conv2d` kernel `[kh, kw, in, filters]`, depthwise kernel
 * `[kh, kw, in, multiplier]`), padding and batch-norm semantics are TF's. `getWeights` /
 * `setWeights` speak the canonical names (`{layer}.{suffix}`) and order: every trainable tensor
 * in layer order, then every non-trainable one (batch-norm moving statistics).
 */
import * as tf from "@tensorflow/tfjs";
import { DiscoError, WeightsError } from "../errors";
import type { ActivationName, Layer, LossName, ModelSpec, Pair } from "../task";
import { layerNames } from "../task";
import { makeOptimizer, type OptimizerInfo } from "../training/optim";
import { Weights } from "../weights";
import { BLOCK_EPSILON, LayerNorm, TiedOutput, TokenEmbedding, TransformerBlock } from "./gpt";

export { makeOptimizer, type OptimizerInfo };

/** A portable model cannot be realised in TF.js (mirrors Python's `ModelError`). */
export class ModelError extends DiscoError {
  override name = "ModelError";
}

/** TF.js's activation identifiers. */
type TfActivation = NonNullable<Parameters<typeof tf.layers.activation>[0]["activation"]>;

const ACTIVATIONS: Record<ActivationName, TfActivation> = {
  linear: "linear",
  relu: "relu",
  relu6: "relu6",
  sigmoid: "sigmoid",
  tanh: "tanh",
  softmax: "softmax",
  gelu: "gelu", // exact, erf-based, as in the portable format
};

/**
 * Mean cross-entropy of next-token `logits` (B, T, V) against target ids (B, T), over the
 * N = B·T positions: mean of logSumExp(z) − z[target], as PyTorch's `cross_entropy`. One fused
 * custom gradient, (softmax(z) − onehot(target)) · dy / N, instead of the chain of log-softmax,
 * one-hot product, sum and mean gradients.
 */
export function nextTokenLoss(targets: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const vocab = logits.shape[logits.shape.length - 1] as number;
    const flat = tf.reshape(logits, [-1, vocab]); // (N, V)
    const ids = tf.cast(tf.reshape(targets, [-1]), "int32") as tf.Tensor1D; // (N)
    const n = ids.shape[0];
    const at = tf.add(tf.mul(tf.range(0, n, 1, "int32"), tf.scalar(vocab, "int32")), ids); // flat index of z[target]
    const loss = tf.customGrad(((z: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
      const lse = tf.logSumExp(z, -1, true); // (N, 1)
      save([z, lse, ids]); // kept for the backward pass (this tidy disposes `ids` before it runs)
      return {
        value: tf.mean(tf.sub(tf.reshape(lse, [-1]), tf.gather(tf.reshape(z, [-1]), at))),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [x, logSum, targetIds] = saved as [tf.Tensor, tf.Tensor, tf.Tensor1D];
          const softmax = tf.exp(tf.sub(x, logSum)); // (N, V)
          // oneHot's int32 cast to float32: TF.js 4.22's wasm OneHot writes int32 values whatever its dtype
          const onehot = tf.cast(tf.oneHot(targetIds, vocab), "float32");
          return [tf.mul(tf.sub(softmax, onehot), tf.div(dy, n))];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return loss(flat) as tf.Scalar;
  });
}

/** The TF.js loss of a portable loss (class ids for categorical: the *sparse* variant). */
export const TF_LOSSES: Record<LossName, string | ((yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar)> = {
  categorical_crossentropy: "sparseCategoricalCrossentropy",
  binary_crossentropy: "binaryCrossentropy",
  mse: "meanSquaredError",
  next_token_crossentropy: nextTokenLoss,
};

function pair(value: Pair | null | undefined, fallback: [number, number]): [number, number] {
  if (value === undefined || value === null) return fallback;
  return typeof value === "number" ? [value, value] : [value[0], value[1]];
}

function activation(name: ActivationName | undefined, layer: string): TfActivation {
  const act = ACTIVATIONS[name ?? "linear"];
  if (act === undefined) throw new ModelError(`layer '${layer}': activation '${name}' is not available in TF.js`);
  return act;
}

function needRank(layer: Layer, name: string, rank: number, input: readonly (number | null)[]): void {
  const shape = input.slice(1);
  if (shape.length === rank) return;
  if (layer.type === "dense") {
    throw new ModelError(
      `layer '${name}': dense needs a 1-D input but gets shape [${shape.join(", ")}]; ` +
        "add a flatten or global_avg_pool2d layer before it",
    );
  }
  throw new ModelError(
    `layer '${name}': ${layer.type} needs an (height, width, channels) input, got shape [${shape.join(", ")}]`,
  );
}

function needSequence(type: string, name: string, input: readonly (number | null)[]): void {
  if (input.length !== 3) {
    throw new ModelError(
      `layer '${name}': ${type} needs a (positions, features) input, got shape [${input.slice(1).join(", ")}]; a GPT starts with a token_embedding layer`,
    );
  }
}

/** TF 'same' padding of one axis: the total split in two, the extra cell after. */
function samePads(n: number, k: number, s: number): [number, number] {
  const total = Math.max((Math.ceil(n / s) - 1) * s + k - n, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** Settings of `SameAvgPool2D`. */
interface SameAvgPoolArgs {
  name: string;
  poolSize: [number, number];
  strides: [number, number];
  inputShape?: number[];
}

/**
 * Average pooling with TF 'same' padding whose gradient is right at the borders.
 *
 * TF.js's `avgPool` forward divides each window by its number of real (unpadded) cells, as TF
 * does, but its gradient kernels (cpu, wasm, webgl: `AvgPoolGrad`) divide by the full window
 * size, so border cells get too small a gradient. This layer computes the same forward values as
 * zero padding + 'valid' average pooling + a constant per-position correction (window size /
 * real cells), whose gradients TF.js gets right.
 */
export class SameAvgPool2D extends tf.layers.Layer {
  static className = "DiscoSameAvgPool2D";
  private readonly poolSize: [number, number];
  private readonly poolStrides: [number, number];

  constructor(args: SameAvgPoolArgs) {
    super(args.inputShape ? { name: args.name, inputShape: args.inputShape } : { name: args.name });
    this.poolSize = args.poolSize;
    this.poolStrides = args.strides;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const [b, h, w, c] = shape;
    return [b ?? null, Math.ceil((h ?? 0) / this.poolStrides[0]), Math.ceil((w ?? 0) / this.poolStrides[1]), c ?? null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const [, h, w] = x.shape;
      const [kh, kw] = this.poolSize;
      const [sh, sw] = this.poolStrides;
      const [top, bottom] = samePads(h, kh, sh);
      const [left, right] = samePads(w, kw, sw);
      const padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
      const pooled = tf.avgPool(padded, [kh, kw], [sh, sw], "valid");
      const ones = tf.pad(tf.ones([1, h, w, 1]), [[0, 0], [top, bottom], [left, right], [0, 0]]) as tf.Tensor4D;
      const share = tf.avgPool(ones, [kh, kw], [sh, sw], "valid"); // real cells / window size
      return tf.div(pooled, share);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), poolSize: this.poolSize, strides: this.poolStrides };
  }
}
tf.serialization.registerClass(SameAvgPool2D);

/** The TF.js layer of one portable layer, after checking its input rank. */
function tfLayer(
  layer: Layer, name: string, input: readonly (number | null)[], first: tf.Shape | null, spec: ModelSpec,
  embedding: TokenEmbedding | null,
): tf.layers.Layer {
  const base = first ? { name, inputShape: first } : { name };
  switch (layer.type) {
    case "token_embedding":
      return new TokenEmbedding({ name, vocabSize: layer.vocab_size, units: layer.units, context: spec.input_shape[0] as number });
    case "transformer_block":
      needSequence(layer.type, name, input);
      return new TransformerBlock({ name, heads: layer.heads, mlpRatio: layer.mlp_ratio ?? 4, dropout: layer.dropout ?? 0 });
    case "layer_norm":
      needSequence(layer.type, name, input);
      return new LayerNorm({ name, epsilon: layer.epsilon ?? BLOCK_EPSILON });
    case "tied_output":
      needSequence(layer.type, name, input);
      if (embedding === null) throw new ModelError(`layer '${name}': tied_output needs a token_embedding first layer`);
      return new TiedOutput({ name, embedding });
    case "dense":
      needRank(layer, name, 1, input);
      return tf.layers.dense({
        ...base, units: layer.units, activation: activation(layer.activation, name), useBias: layer.use_bias ?? true,
      });
    case "conv2d":
      needRank(layer, name, 3, input);
      return tf.layers.conv2d({
        ...base,
        filters: layer.filters,
        kernelSize: pair(layer.kernel_size, [1, 1]),
        strides: pair(layer.strides, [1, 1]),
        padding: layer.padding ?? "valid",
        activation: activation(layer.activation, name),
        useBias: layer.use_bias ?? true,
        dataFormat: "channelsLast",
      });
    case "depthwise_conv2d":
      needRank(layer, name, 3, input);
      return tf.layers.depthwiseConv2d({
        ...base,
        kernelSize: pair(layer.kernel_size, [1, 1]),
        strides: pair(layer.strides, [1, 1]),
        padding: layer.padding ?? "valid",
        depthMultiplier: layer.depth_multiplier ?? 1,
        activation: activation(layer.activation, name),
        useBias: layer.use_bias ?? true,
        dataFormat: "channelsLast",
      });
    case "max_pool2d":
    case "avg_pool2d": {
      needRank(layer, name, 3, input);
      const poolSize = pair(layer.pool_size, [2, 2]);
      const strides = pair(layer.strides, poolSize);
      if (layer.type === "avg_pool2d" && layer.padding === "same") {
        return new SameAvgPool2D({ name, poolSize, strides, ...(first ? { inputShape: [...first] as number[] } : {}) });
      }
      const args = { ...base, poolSize, strides, padding: layer.padding ?? "valid" };
      return layer.type === "max_pool2d" ? tf.layers.maxPooling2d(args) : tf.layers.averagePooling2d(args);
    }
    case "global_avg_pool2d":
      needRank(layer, name, 3, input);
      return tf.layers.globalAveragePooling2d({ ...base, dataFormat: "channelsLast" });
    case "batch_norm":
      return tf.layers.batchNormalization({
        ...base, axis: -1, momentum: layer.momentum ?? 0.99, epsilon: layer.epsilon ?? 1e-3,
      });
    case "dropout":
      return tf.layers.dropout({ ...base, rate: layer.rate });
    case "flatten":
      return tf.layers.flatten({ ...base, dataFormat: "channelsLast" });
    case "activation":
      return tf.layers.activation({ ...base, activation: activation(layer.activation, name) });
    default:
      throw new ModelError(`layer '${name}': unknown layer type '${(layer as { type: unknown }).type}'`);
  }
}

/** Whether `spec` reads token ids (a token_embedding first layer): a language model. */
export function takesTokens(spec: ModelSpec): boolean {
  return spec.layers[0]?.type === "token_embedding";
}

/** Whether a built model is a language model (ends in `tied_output`): its outputs are logits. */
export function isTokenModel(model: tf.LayersModel): boolean {
  return model.layers[model.layers.length - 1] instanceof TiedOutput;
}

/**
 * Build `spec` as a compiled `tf.LayersModel` (a `tf.Sequential`) with the task's optimizer,
 * the TF.js form of its loss and, for classifiers, the accuracy metric. Throws `ModelError`
 * naming the layer when the spec cannot be realised. `model.dispose()` also disposes the
 * optimizer's state.
 */
export function buildModel(spec: ModelSpec, training: OptimizerInfo = {}): tf.LayersModel {
  const rank = spec.input_shape.length;
  if (rank !== 1 && rank !== 3) {
    throw new ModelError(`input_shape must be [features], [context] or [height, width, channels], got [${spec.input_shape.join(", ")}]`);
  }
  if (spec.layers.length === 0) throw new ModelError("a model needs at least one layer");
  const names = layerNames(spec);
  if (new Set(names).size !== names.length) throw new ModelError(`duplicate layer names in [${names.join(", ")}]`);
  const tokens = takesTokens(spec);
  spec.layers.forEach((layer, i) => {
    if (layer.type === "token_embedding" && i !== 0) {
      throw new ModelError(`layer '${names[i]}': token_embedding must be the first layer (it reads the token ids)`);
    }
    if (layer.type === "tied_output" && i !== spec.layers.length - 1) {
      throw new ModelError(`layer '${names[i]}': tied_output must be the last layer`);
    }
  });
  if (tokens !== (spec.loss === "next_token_crossentropy")) {
    throw new ModelError("loss 'next_token_crossentropy' goes with models that read token ids (a token_embedding first layer and a tied_output last layer), and only with them");
  }
  const model = tf.sequential();
  // token ids: integers, any number of positions up to the context (generation feeds fewer)
  if (tokens) model.add(tf.layers.inputLayer({ batchInputShape: [null, null], dtype: "int32", name: "token_ids" }));
  let shape: (number | null)[] = tokens ? [null, null] : [null, ...spec.input_shape];
  let embedding: TokenEmbedding | null = null;
  try {
    spec.layers.forEach((layer, i) => {
      const name = names[i] as string;
      const built = tfLayer(layer, name, shape, i === 0 && !tokens ? [...spec.input_shape] : null, spec, embedding);
      if (built instanceof TokenEmbedding) embedding = built;
      try {
        model.add(built);
      } catch (error) {
        throw new ModelError(`layer '${name}': ${error instanceof Error ? error.message : String(error)}`);
      }
      shape = (model.outputs[0]?.shape ?? []) as (number | null)[];
      if (!tokens && shape.slice(1).some((d) => d === null || d < 1)) {
        throw new ModelError(
          `layer '${name}': its window is larger than its input; use padding 'same' or a smaller window`,
        );
      }
    });
  } catch (error) {
    if (model.layers.length > 0) model.dispose(); // free the variables of the layers built so far
    throw error;
  }
  model.compile({
    optimizer: makeOptimizer(training),
    loss: TF_LOSSES[spec.loss],
    metrics: spec.loss === "mse" || tokens ? [] : ["accuracy"],
  });
  // the optimizer (and its Adam moments) belongs to this model: model.dispose() frees it too
  (model as unknown as { isOptimizerOwned: boolean }).isOptimizerOwned = true;
  return model;
}

/** One canonical weight: its name, shape, trainability and the TF.js variable holding it. */
export interface WeightSlot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly trainable: boolean;
  readonly variable: tf.LayerVariable;
}

/** The model's weights under canonical names, in canonical order (trainable first). */
export function weightSlots(model: tf.LayersModel, spec: ModelSpec): WeightSlot[] {
  const trainable: WeightSlot[] = [];
  const frozen: WeightSlot[] = [];
  for (const layerName of layerNames(spec)) {
    const layer = model.getLayer(layerName);
    for (const variable of layer.weights) {
      const suffix = variable.originalName.split("/").pop() ?? variable.originalName;
      const slot = { name: `${layerName}.${suffix}`, shape: [...variable.shape] as number[], trainable: variable.trainable, variable };
      (slot.trainable ? trainable : frozen).push(slot);
    }
  }
  return [...trainable, ...frozen];
}

/** The model's current weights as canonical `Weights` (copies; blocks until read). */
export function getWeights(model: tf.LayersModel, spec: ModelSpec): Weights {
  const slots = weightSlots(model, spec);
  return new Weights(
    slots.map((s) => s.name),
    slots.map((s) => s.shape),
    slots.map((s) => (s.variable.read().dataSync() as Float32Array).slice()),
  );
}

/** Like `getWeights`, without blocking the page while a GPU backend downloads the values. */
export async function getWeightsAsync(model: tf.LayersModel, spec: ModelSpec): Promise<Weights> {
  const slots = weightSlots(model, spec);
  const values = await Promise.all(slots.map((s) => s.variable.read().data() as Promise<Float32Array>));
  return new Weights(slots.map((s) => s.name), slots.map((s) => s.shape), values.map((v) => v.slice()));
}

const showShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;
const showNames = (names: readonly string[]): string =>
  names.length === 0 ? "none" : `[${names.map((n) => `'${n}'`).join(", ")}]`;

/**
 * Load canonical weights into the model, matched by name (any order). Nothing changes unless
 * every name, shape and value is valid; a `WeightsError` names the offending tensor.
 */
export function setWeights(model: tf.LayersModel, spec: ModelSpec, weights: Weights): void {
  const slots = weightSlots(model, spec);
  const expected = new Set(slots.map((s) => s.name));
  const missing = slots.filter((s) => !weights.has(s.name)).map((s) => s.name);
  const extra = weights.names.filter((n) => !expected.has(n));
  if (missing.length > 0 || extra.length > 0) {
    throw new WeightsError(
      `weights do not match the model: missing ${showNames(missing)}, unexpected ${showNames(extra)}`,
    );
  }
  for (const slot of slots) {
    const have = weights.shapeOf(slot.name);
    if (have.length !== slot.shape.length || have.some((d, k) => d !== slot.shape[k])) {
      throw new WeightsError(
        `weights: tensor '${slot.name}' has shape ${showShape(have)}, the model expects ${showShape(slot.shape)}`,
      );
    }
    if (!weights.get(slot.name).every(Number.isFinite)) {
      throw new WeightsError(`weights: tensor '${slot.name}' contains NaN or infinite values`);
    }
  }
  tf.tidy(() => {
    for (const slot of slots) slot.variable.write(tf.tensor(weights.get(slot.name).slice(), [...slot.shape], "float32"));
  });
}
