/**
 * TypeScript mirror of the Python task document (`disco.task`) and of the portable model format
 * (`disco.models.spec`, docs/models.md). Field names are the JSON's (snake_case), so a task
 * fetched from the server is used as is. `parseTask` runs the light checks the web app needs
 * and fills the defaults pydantic would, without re-implementing the server's validation;
 * `secureAggregationProblems` mirrors the rules secure aggregation ties to the other settings,
 * for the task form. The parts with rules of their own are in their modules: the aggregation
 * rules (`aggregationTask.ts`), secure aggregation (`secureTask.ts`) and text tasks
 * (`textTask.ts`); `TaskError` is `taskError.ts`'s.
 *
 * The lists and defaults below mirror Python's; tests/vectors/shared_lists.json is generated from
 * the Python code and web/tests/shared-lists.test.ts compares them with it.
 */
import { AGGREGATION_DEFAULTS, type AggregationConfig, aggregationOf } from "./aggregationTask";
import { type SecureAggregationConfig, secureAggregationOf } from "./secureTask";
import { TaskError, check, isObject } from "./taskError";
import { checkText } from "./textTask";

export {
  SECURE_AGGREGATION_BOUNDS,
  SECURE_AGGREGATION_DEFAULTS,
  SECURE_MAX_PEERS,
  SECURE_MIN_PARTICIPANTS,
  type SecureAggregationConfig,
  type SettingBounds,
  secureAggregationProblems,
} from "./secureTask";

// -- the portable model -------------------------------------------------------------------------

/** Activation functions of the portable format (softmax over the last axis, exact gelu). */
export const ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "gelu"] as const;
/** One of `ACTIVATIONS`. */
export type ActivationName = (typeof ACTIVATIONS)[number];
/** Window paddings, TF semantics. */
export const PADDINGS = ["valid", "same"] as const;
/** One of `PADDINGS`. */
export type Padding = (typeof PADDINGS)[number];
/** Losses of the portable format. */
export const LOSSES = ["categorical_crossentropy", "binary_crossentropy", "mse", "next_token_crossentropy"] as const;
/** One of `LOSSES`. */
export type LossName = (typeof LOSSES)[number];
/** `[a, b]`, or one integer `n` meaning `[n, n]` (as Keras writes it). */
export type Pair = number | readonly [number, number];

/** Fields every layer has: an optional name (`[a-z0-9_]+`; filled in as `{type}_{k}`). */
export interface LayerBase {
  name?: string | null;
}
/** Fully connected layer on a 1-D input: `kernel` [in, units], `bias` [units]. */
export interface DenseLayer extends LayerBase {
  type: "dense";
  units: number;
  activation?: ActivationName;
  use_bias?: boolean;
}
/** 2-D convolution: `kernel` [kh, kw, in, filters], `bias` [filters]. */
export interface Conv2DLayer extends LayerBase {
  type: "conv2d";
  filters: number;
  kernel_size: Pair;
  strides?: Pair;
  padding?: Padding;
  activation?: ActivationName;
  use_bias?: boolean;
}
/** Per-channel convolution: `depthwise_kernel` [kh, kw, in, multiplier], `bias`. */
export interface DepthwiseConv2DLayer extends LayerBase {
  type: "depthwise_conv2d";
  kernel_size: Pair;
  strides?: Pair;
  padding?: Padding;
  depth_multiplier?: number;
  activation?: ActivationName;
  use_bias?: boolean;
}
/** Max or average pooling; `strides` null or absent means `pool_size`. */
export interface Pool2DLayer extends LayerBase {
  type: "max_pool2d" | "avg_pool2d";
  pool_size?: Pair;
  strides?: Pair | null;
  padding?: Padding;
}
/** Mean over height and width. */
export interface GlobalAvgPool2DLayer extends LayerBase {
  type: "global_avg_pool2d";
}
/** Batch normalisation over the last axis, Keras semantics. */
export interface BatchNormLayer extends LayerBase {
  type: "batch_norm";
  momentum?: number;
  epsilon?: number;
}
/** Dropout while training. */
export interface DropoutLayer extends LayerBase {
  type: "dropout";
  rate: number;
}
/** Flatten to 1-D, channels-last order. */
export interface FlattenLayer extends LayerBase {
  type: "flatten";
}
/** An activation function alone. */
export interface ActivationLayer extends LayerBase {
  type: "activation";
  activation: ActivationName;
}
/** First layer of a GPT: token ids [T] -> token + position vectors (T, units). */
export interface TokenEmbeddingLayer extends LayerBase {
  type: "token_embedding";
  vocab_size: number;
  units: number;
}
/** Pre-LayerNorm transformer block: causal multi-head self-attention, then a GELU MLP. */
export interface TransformerBlockLayer extends LayerBase {
  type: "transformer_block";
  heads: number;
  mlp_ratio?: number;
  dropout?: number;
}
/** LayerNorm over each position's features (epsilon 1e-5 by default). */
export interface LayerNormLayer extends LayerBase {
  type: "layer_norm";
  epsilon?: number;
}
/** Last layer of a GPT: logits over the vocabulary with the embedding's token matrix. */
export interface TiedOutputLayer extends LayerBase {
  type: "tied_output";
}

/** One layer of a portable model, tagged by `type`. */
export type Layer =
  | DenseLayer
  | Conv2DLayer
  | DepthwiseConv2DLayer
  | Pool2DLayer
  | GlobalAvgPool2DLayer
  | BatchNormLayer
  | DropoutLayer
  | FlattenLayer
  | ActivationLayer
  | TokenEmbeddingLayer
  | TransformerBlockLayer
  | LayerNormLayer
  | TiedOutputLayer;

/** Every layer type of the portable format. */
export const LAYER_TYPES: readonly Layer["type"][] = [
  "dense", "conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d",
  "global_avg_pool2d", "batch_norm", "dropout", "flatten", "activation",
  "token_embedding", "transformer_block", "layer_norm", "tied_output",
];

/** A portable model document (`disco.model/1`): per-sample channels-last input, layers, loss. */
export interface ModelSpec {
  format?: "disco.model/1";
  input_shape: readonly number[];
  layers: readonly Layer[];
  loss: LossName;
  description?: string;
}

/** Layer names as Python fills them: explicit ones kept, others `{type}_{k}` (k per type). */
export function layerNames(spec: ModelSpec): string[] {
  const counts = new Map<string, number>();
  return spec.layers.map((layer) => {
    const k = (counts.get(layer.type) ?? 0) + 1;
    counts.set(layer.type, k);
    return layer.name ?? `${layer.type}_${k}`;
  });
}

/** The activation the last layer applies ("linear" when it has none). */
export function finalActivation(spec: ModelSpec): ActivationName {
  const last = spec.layers[spec.layers.length - 1];
  return last !== undefined && "activation" in last ? (last.activation ?? "linear") : "linear";
}

// -- the task -----------------------------------------------------------------------------------

/** Kinds of data a task trains on. */
export const DATA_TYPES = ["image", "tabular", "text"] as const;
/** One of `DATA_TYPES`. */
export type DataType = (typeof DATA_TYPES)[number];
/** How participants collaborate. */
export const SCHEMES = ["federated", "decentralized", "local"] as const;
/** One of `SCHEMES`. */
export type Scheme = (typeof SCHEMES)[number];
/** Local optimizers. */
export const OPTIMIZERS = ["adam", "sgd", "adamw"] as const;
/** Image channels: greyscale or colour. */
export const CHANNELS = [1, 3] as const;
/** Task ids: 1-64 lowercase letters, digits, '-' and '_', not starting with '-' or '_'. */
export const TASK_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** What people read about a task before they take part. */
export interface DisplayInfo {
  title: string;
  summary: string;
  data_format: string;
  example: string;
  model_description: string;
  sample_data: string;
}

/** One tabular input column and its fixed preprocessing: `(value - mean) / std`. */
export interface ColumnSpec {
  name: string;
  /** Value used when the cell is empty (null: an empty cell is an error). */
  fill: number | null;
  mean: number;
  std: number;
  /** Text values, encoded as their position in this list. */
  categories: readonly string[] | null;
}

/** Client-side differential privacy on each shared update. */
export interface PrivacyConfig {
  clipping_radius: number;
  noise_multiplier: number;
}

/** How the task is trained. */
export interface TrainingInfo {
  data_type: DataType;
  scheme: Scheme;
  epochs: number;
  epochs_per_round: number;
  /** Rounds into which each local epoch is cut (more than 1: epochs_per_round is 1; core/schedule.ts). */
  rounds_per_epoch: number;
  batch_size: number;
  validation_split: number;
  optimizer: (typeof OPTIMIZERS)[number];
  learning_rate: number;
  /** adamw only: decoupled decay of tensors of rank 2 and more, per unit of learning rate. */
  weight_decay: number;
  /** Largest global L2 norm of a step's gradients (null: no clipping). */
  gradient_clip: number | null;
  input_columns: readonly ColumnSpec[];
  output_column: string | null;
  image_height: number | null;
  image_width: number | null;
  channels: (typeof CHANNELS)[number];
  labels: readonly string[];
  /** Text: the context, tokens the model reads at once (a training window holds one more). */
  max_sequence_length: number | null;
  /** Text: tokens of the task's tokenizer; its ids are 0 to `vocab_size - 1`. */
  vocab_size: number | null;
  /** Text: SHA-256 of the task's tokenizer.json, stored with the task (docs/text.md). */
  tokenizer_digest: string | null;
  min_participants: number;
  round_deadline_s: number;
  /** Seconds a participant waits for the others after its update before it stops with its model. */
  wait_for_others_s: number;
  aggregation: AggregationConfig;
  privacy: PrivacyConfig | null;
  /** On (its settings) or off (null): whoever combines a round's updates learns only their sum. */
  secure_aggregation: SecureAggregationConfig | null;
}

/** Python's `DisplayInfo` defaults: everything but the title may be left out. */
export const DISPLAY_DEFAULTS: Omit<DisplayInfo, "title"> = {
  summary: "",
  data_format: "",
  example: "",
  model_description: "",
  sample_data: "",
};

/** Python's `ColumnSpec` defaults: only the name is required. */
export const COLUMN_DEFAULTS: Omit<ColumnSpec, "name"> = { fill: null, mean: 0, std: 1, categories: null };

/** A collaborative learning task: display info, training info and the model. */
export interface Task {
  id: string;
  display: DisplayInfo;
  training: TrainingInfo;
  model: ModelSpec;
}

/** Python's `TrainingInfo` defaults, for documents that leave fields out. */
export const TRAINING_DEFAULTS: Omit<TrainingInfo, "data_type"> = {
  scheme: "federated",
  epochs: 10,
  epochs_per_round: 1,
  rounds_per_epoch: 1,
  batch_size: 32,
  validation_split: 0.2,
  optimizer: "adam",
  learning_rate: 1e-3,
  weight_decay: 0.1,
  gradient_clip: null,
  input_columns: [],
  output_column: null,
  image_height: null,
  image_width: null,
  channels: 1,
  labels: [],
  max_sequence_length: null,
  vocab_size: null,
  tokenizer_digest: null,
  min_participants: 1,
  round_deadline_s: 120,
  wait_for_others_s: 600,
  aggregation: AGGREGATION_DEFAULTS.mean,
  privacy: null,
  secure_aggregation: null,
};

function positiveInt(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 1;
}

/** Light structural checks of a model document (the server validated it fully). */
export function checkModelSpec(model: unknown, where = "model"): asserts model is ModelSpec {
  check(isObject(model), `${where}: expected an object`);
  const shape = model["input_shape"];
  check(
    Array.isArray(shape) && (shape.length === 1 || shape.length === 3) && shape.every(positiveInt),
    `${where}.input_shape: expected [features], [context] or [height, width, channels]`,
  );
  const layers = model["layers"];
  check(Array.isArray(layers) && layers.length > 0, `${where}.layers: a model needs at least one layer`);
  layers.forEach((layer: unknown, i) => {
    check(isObject(layer), `${where}.layers.${i}: expected an object`);
    const type = layer["type"];
    check(
      typeof type === "string" && (LAYER_TYPES as readonly string[]).includes(type),
      `${where}.layers.${i}: unknown layer type ${JSON.stringify(type)}`,
    );
  });
  const loss = model["loss"];
  check(
    typeof loss === "string" && (LOSSES as readonly string[]).includes(loss),
    `${where}.loss: unknown loss ${JSON.stringify(loss)}`,
  );
}

/**
 * A task document (decoded JSON or text) as a `Task`: shape checked, defaults filled in.
 * Throws `TaskError` naming the first bad field.
 */
export function parseTask(data: unknown): Task {
  let doc = data;
  if (typeof doc === "string") {
    try {
      doc = JSON.parse(doc);
    } catch (error) {
      throw new TaskError(`task is not valid JSON: ${(error as Error).message}`);
    }
  }
  check(isObject(doc), "expected a JSON object");
  check(typeof doc["id"] === "string" && TASK_ID_PATTERN.test(doc["id"]), "id: bad task id");
  const display = doc["display"];
  check(isObject(display) && typeof display["title"] === "string", "display.title: required");
  const training = doc["training"];
  check(isObject(training), "training: expected an object");
  const dataType = training["data_type"];
  check(
    typeof dataType === "string" && (DATA_TYPES as readonly string[]).includes(dataType),
    "training.data_type: unknown",
  );
  checkModelSpec(doc["model"]);
  const filled = { ...TRAINING_DEFAULTS, ...training, data_type: dataType as DataType } as TrainingInfo;
  check(positiveInt(filled.epochs) && positiveInt(filled.epochs_per_round), "training.epochs: positive integers");
  check(
    positiveInt(filled.rounds_per_epoch) && (filled.rounds_per_epoch === 1 || filled.epochs_per_round === 1),
    "training.rounds_per_epoch: a positive integer, with epochs_per_round 1 when more than 1",
  );
  check(positiveInt(filled.batch_size), "training.batch_size: a positive integer");
  const seconds = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v) && v > 0;
  check(seconds(filled.round_deadline_s), "training.round_deadline_s: a number of seconds > 0");
  // without a wait of its own, a task waits at least as long as its round deadline (as in Python)
  if (!("wait_for_others_s" in training)) {
    filled.wait_for_others_s = Math.max(TRAINING_DEFAULTS.wait_for_others_s, filled.round_deadline_s);
  }
  check(seconds(filled.wait_for_others_s), "training.wait_for_others_s: a number of seconds > 0");
  filled.aggregation = aggregationOf(training["aggregation"] ?? TRAINING_DEFAULTS.aggregation);
  filled.secure_aggregation = secureAggregationOf(training["secure_aggregation"]);
  if (dataType === "image") {
    check(positiveInt(filled.image_height) && positiveInt(filled.image_width), "training: image size required");
  }
  if (dataType === "tabular") {
    check(filled.input_columns.length > 0 && !!filled.output_column, "training: columns required");
  }
  if (dataType === "text") checkText(filled, doc["model"]);
  return {
    id: doc["id"],
    display: { ...DISPLAY_DEFAULTS, ...display } as DisplayInfo,
    training: {
      ...filled,
      input_columns: filled.input_columns.map(
        (c: Partial<ColumnSpec>) => ({ ...COLUMN_DEFAULTS, ...c }) as ColumnSpec,
      ),
    },
    model: doc["model"],
  };
}
