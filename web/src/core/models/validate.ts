/**
 * A portable model document (docs/models.md) checked in plain words, for people who upload a
 * model file: the rules of Python's `ModelSpec` (field by field, then layer shapes and the loss)
 * and, when given, the task it must fit (input shape, number of answers). Each problem names its
 * layer as people count ("layer 3 (dense_1): units must be a whole number above 0") so that it
 * can be fixed in the file. The server checks the same rules again when the task is published.
 */
import { ACTIVATIONS as ACTIVATION_NAMES, LAYER_TYPES, type Layer, LOSSES as LOSS_NAMES } from "../task";

/** What the task expects of its model; leave a field out to skip that check. */
export interface ModelFit {
  /** The task's per-sample input: `[height, width, channels]` or `[columns]`. */
  inputShape?: readonly number[];
  /** Number of answers (labels) of a classification task. */
  labels?: number;
}

/** A model file that passed: its size in words. */
export interface ModelSummary {
  layers: number;
  inputShape: number[];
  outputs: number;
}

export const MODEL_FORMAT = "disco.model/1";
const MODEL_KEYS = ["format", "input_shape", "layers", "loss", "description"];
const LOSSES: readonly string[] = LOSS_NAMES;
const ACTIVATIONS: readonly string[] = ACTIVATION_NAMES;

type Kind = "count" | "pair" | "pair_or_null" | "padding" | "activation" | "bool" | "momentum" | "epsilon" | "rate";

/** The settings a layer type must have, and every setting it may have with the rule it follows. */
export interface LayerSettings {
  required: string[];
  fields: Record<string, Kind>;
}

/**
 * Settings of each layer type (besides `type` and `name`) and the ones it cannot do without, as
 * Python's layer classes have them (web/tests/shared-lists.test.ts checks it).
 */
export const LAYER_SETTINGS: Record<Layer["type"], LayerSettings> = {
  dense: { required: ["units"], fields: { units: "count", activation: "activation", use_bias: "bool" } },
  conv2d: {
    required: ["filters", "kernel_size"],
    fields: {
      filters: "count", kernel_size: "pair", strides: "pair", padding: "padding",
      activation: "activation", use_bias: "bool",
    },
  },
  depthwise_conv2d: {
    required: ["kernel_size"],
    fields: {
      kernel_size: "pair", strides: "pair", padding: "padding", depth_multiplier: "count",
      activation: "activation", use_bias: "bool",
    },
  },
  max_pool2d: { required: [], fields: { pool_size: "pair", strides: "pair_or_null", padding: "padding" } },
  avg_pool2d: { required: [], fields: { pool_size: "pair", strides: "pair_or_null", padding: "padding" } },
  global_avg_pool2d: { required: [], fields: {} },
  batch_norm: { required: [], fields: { momentum: "momentum", epsilon: "epsilon" } },
  dropout: { required: ["rate"], fields: { rate: "rate" } },
  flatten: { required: [], fields: {} },
  activation: { required: ["activation"], fields: { activation: "activation" } },
  token_embedding: { required: ["vocab_size", "units"], fields: { vocab_size: "count", units: "count" } },
  transformer_block: { required: ["heads"], fields: { heads: "count", mlp_ratio: "count", dropout: "rate" } },
  layer_norm: { required: [], fields: { epsilon: "epsilon" } },
  tied_output: { required: [], fields: {} },
};

const KIND_RULE: Record<Kind, string> = {
  count: "must be a whole number above 0",
  pair: "must be a whole number above 0, or two of them like [3, 3]",
  pair_or_null: "must be a whole number above 0, two of them like [2, 2], or null",
  padding: "must be 'valid' or 'same'",
  activation: `must be one of ${ACTIVATIONS.join(", ")}`,
  bool: "must be true or false",
  momentum: "must be a number from 0 to 1",
  epsilon: "must be a number above 0",
  rate: "must be a number from 0 up to (but not including) 1",
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1;
}

function isNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function fits(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case "count":
      return isCount(v);
    case "pair":
      return isCount(v) || (Array.isArray(v) && v.length === 2 && v.every(isCount));
    case "pair_or_null":
      return v === null || fits("pair", v);
    case "padding":
      return v === "valid" || v === "same";
    case "activation":
      return typeof v === "string" && ACTIVATIONS.includes(v);
    case "bool":
      return typeof v === "boolean";
    case "momentum":
      return isNumber(v) && v >= 0 && v <= 1;
    case "epsilon":
      return isNumber(v) && v > 0;
    case "rate":
      return isNumber(v) && v >= 0 && v < 1;
  }
}

/** A value as it is written in the file, cut short. */
function shown(v: unknown): string {
  const text = typeof v === "string" ? `'${v}'` : (JSON.stringify(v) ?? String(v));
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

function list(items: readonly string[]): string {
  return items.join(", ");
}

/** `[28, 28, 1]` */
function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The task's input in words: "28×28 greyscale images", "30 input columns". */
export function inputText(shape: readonly number[]): string {
  if (shape.length === 3) {
    const [h, w, c] = shape;
    const colour = c === 1 ? "greyscale" : c === 3 ? "colour" : `${c}-channel`;
    return `${w}×${h} ${colour} images`;
  }
  return `${shape[0]} input column${shape[0] === 1 ? "" : "s"}`;
}

function pair(v: unknown, fallback: [number, number]): [number, number] {
  if (v === undefined || v === null) return fallback;
  if (typeof v === "number") return [v, v];
  const [a, b] = v as number[];
  return [a as number, b as number];
}

/** Output height and width of a sliding window (TF semantics), or a problem. */
function spatial(
  hw: [number, number],
  window: [number, number],
  strides: [number, number],
  padding: unknown,
): [number, number] | string {
  if (padding === "same") return [Math.ceil(hw[0] / strides[0]), Math.ceil(hw[1] / strides[1])];
  if (window[0] > hw[0] || window[1] > hw[1]) {
    return `its ${window[0]}×${window[1]} window is larger than its ${hw[0]}×${hw[1]} input; use padding 'same' or a smaller window`;
  }
  return [Math.floor((hw[0] - window[0]) / strides[0]) + 1, Math.floor((hw[1] - window[1]) / strides[1]) + 1];
}

/** Per-sample output shape of a (well-formed) layer, or a problem in words; `vocab` is the
 * vocabulary of the model's token_embedding (what tied_output gives logits over). */
function outputShape(layer: Record<string, unknown>, shape: number[], vocab = 0): number[] | string {
  const type = layer.type as string;
  const sequence = (): string | null =>
    shape.length === 2
      ? null
      : `${type} needs a (positions, features) input but gets ${shapeText(shape)}; a GPT starts with a token_embedding layer`;
  const image = (): [number, number, number] | string =>
    shape.length === 3
      ? [shape[0] as number, shape[1] as number, shape[2] as number]
      : `${type} needs an image input (height, width, channels) but gets ${shapeText(shape)}`;
  switch (type) {
    case "dense":
      if (shape.length !== 1) {
        return `dense needs a flat input but gets ${shapeText(shape)}; add a flatten or global_avg_pool2d layer before it`;
      }
      return [layer.units as number];
    case "conv2d":
    case "depthwise_conv2d":
    case "max_pool2d":
    case "avg_pool2d": {
      const img = image();
      if (typeof img === "string") return img;
      const pooling = type.endsWith("pool2d");
      const window = pair(pooling ? layer.pool_size : layer.kernel_size, [2, 2]);
      const strides = pair(layer.strides, pooling ? window : [1, 1]);
      const hw = spatial([img[0], img[1]], window, strides, layer.padding ?? "valid");
      if (typeof hw === "string") return hw;
      const channels =
        type === "conv2d"
          ? (layer.filters as number)
          : type === "depthwise_conv2d"
            ? img[2] * ((layer.depth_multiplier as number | undefined) ?? 1)
            : img[2];
      return [hw[0], hw[1], channels];
    }
    case "global_avg_pool2d": {
      const img = image();
      return typeof img === "string" ? img : [img[2]];
    }
    case "flatten":
      return [shape.reduce((a, b) => a * b, 1)];
    case "token_embedding":
      if (shape.length !== 1) return `token_embedding reads a sequence of token ids, input_shape [context], but gets ${shapeText(shape)}`;
      return [shape[0] as number, layer.units as number];
    case "transformer_block": {
      const heads = layer.heads as number;
      if (sequence()) return sequence() as string;
      if ((shape[1] as number) % heads !== 0) return `its input width ${shape[1]} must split evenly into ${heads} heads`;
      return shape;
    }
    case "layer_norm":
      return sequence() ?? shape;
    case "tied_output":
      return sequence() ?? [shape[0] as number, vocab];
    default:
      return shape;
  }
}

/**
 * Every problem of a model document, in plain words (empty when it is fine). `doc` is what
 * `JSON.parse` gave; `fit` adds the checks against the task.
 */
export function checkModel(doc: unknown, fit: ModelFit = {}): string[] {
  if (!isObject(doc)) return ["This file is not a disco model: it should hold one JSON object, { … }."];
  const problems: string[] = [];
  if (doc.format === undefined) {
    problems.push(`The file does not say it is a disco model: add "format": "${MODEL_FORMAT}".`);
  } else if (doc.format !== MODEL_FORMAT) {
    problems.push(`format is ${shown(doc.format)}, but this app reads "${MODEL_FORMAT}" models.`);
  }
  for (const key of Object.keys(doc)) {
    if (!MODEL_KEYS.includes(key)) {
      problems.push(`'${key}' is not a setting of a model (settings: ${list(MODEL_KEYS)}).`);
    }
  }
  if (doc.description !== undefined && typeof doc.description !== "string") {
    problems.push("description must be text.");
  }

  let input: number[] | null = null;
  const shape = doc.input_shape;
  if (shape === undefined) {
    problems.push("input_shape is missing: write [height, width, channels] for images or [number of columns] for tables.");
  } else if (!Array.isArray(shape) || !shape.every(isCount)) {
    problems.push(`input_shape must be a list of whole numbers above 0, not ${shown(shape)}.`);
  } else if (shape.length !== 1 && shape.length !== 3) {
    problems.push(`input_shape must be [height, width, channels] or [number of columns], not ${shapeText(shape)}.`);
  } else {
    input = shape;
    const want = fit.inputShape;
    if (want && shapeText(want) !== shapeText(input)) {
      problems.push(`input_shape is ${shapeText(input)}, but this task has ${inputText(want)}: use ${shapeText(want)}.`);
    }
  }

  const loss = doc.loss;
  if (loss === undefined) {
    problems.push(`loss is missing: use one of ${list(LOSSES)}.`);
  } else if (typeof loss !== "string" || !LOSSES.includes(loss)) {
    problems.push(`loss ${shown(loss)} is not available: use one of ${list(LOSSES)}.`);
  }

  const layers = doc.layers;
  if (layers === undefined) {
    problems.push('layers is missing: list the model\'s layers, e.g. [{"type": "flatten"}, {"type": "dense", "units": 2, "activation": "softmax"}].');
    return problems;
  }
  if (!Array.isArray(layers)) {
    problems.push(`layers must be a list of layers, [ … ], not ${shown(layers)}.`);
    return problems;
  }
  if (!layers.length) {
    problems.push("layers is empty: a model needs at least one layer.");
    return problems;
  }

  const before = problems.length;
  const names = checkLayers(layers, problems);
  if (problems.length > before || input === null) return problems;

  // every layer is well formed: follow the shapes through the model, as the server does
  const good = layers as Record<string, unknown>[];
  const tokens = good[0]?.type === "token_embedding";
  for (const [i, layer] of good.entries()) {
    if (layer.type === "token_embedding" && i !== 0) problems.push(`${names[i]}: token_embedding must be the first layer (it reads the token ids).`);
    if (layer.type === "tied_output" && i !== good.length - 1) problems.push(`${names[i]}: tied_output must be the last layer.`);
    if (layer.type === "tied_output" && !tokens) {
      problems.push(`${names[i]}: tied_output reuses the token matrix of a token_embedding first layer, and this model has none.`);
    }
  }
  if (loss !== undefined && tokens !== (loss === "next_token_crossentropy")) {
    problems.push(
      "loss next_token_crossentropy goes with models that read token ids (a token_embedding first layer and a tied_output last layer), and only with them.",
    );
  }
  if (problems.length > before) return problems;
  const vocab = tokens ? (good[0]?.vocab_size as number) : 0;
  let current: number[] = input;
  for (const [i, layer] of good.entries()) {
    if (layer.type === "tied_output" && tokens && current[1] !== good[0]?.units) {
      problems.push(`${names[i]}: tied_output needs inputs of the embedding's width ${String(good[0]?.units)}, got ${current[1]}.`);
      return problems;
    }
    const out = outputShape(layer, current, vocab);
    if (typeof out === "string") {
      problems.push(`${names[i]}: ${out}.`);
      return problems;
    }
    current = out;
  }
  const lastIndex = good.length - 1;
  const last = good[lastIndex] as Record<string, unknown>;
  const act = typeof last.activation === "string" ? last.activation : "linear";
  const lastName = names[lastIndex] as string;
  const units = current.length === 1 ? (current[0] as number) : null;
  if (loss === "categorical_crossentropy") {
    if (act !== "softmax" || units === null || units < 2) {
      problems.push(
        `loss categorical_crossentropy needs a last layer with activation softmax and at least 2 units; the last one, ${lastName}, has activation ${act} and output ${shapeText(current)}.`,
      );
    } else if (fit.labels !== undefined && fit.labels >= 2 && units !== fit.labels) {
      problems.push(`${lastName}: units is ${units}, but the task has ${fit.labels} answers: make it ${fit.labels}.`);
    }
  } else if (loss === "binary_crossentropy") {
    if (act !== "sigmoid" || units !== 1) {
      problems.push(
        `loss binary_crossentropy needs a last layer with activation sigmoid and 1 unit; the last one, ${lastName}, has activation ${act} and output ${shapeText(current)}.`,
      );
    } else if (fit.labels !== undefined && fit.labels > 2) {
      problems.push(
        `loss binary_crossentropy is for two answers, but the task has ${fit.labels}: use categorical_crossentropy with ${fit.labels} softmax units.`,
      );
    }
  }
  return problems;
}

/** Check each layer on its own; the names to show ("layer 3 (dense_1)"), one per layer. */
function checkLayers(layers: unknown[], problems: string[]): string[] {
  const counts = new Map<string, number>();
  const seen = new Map<string, number>();
  return layers.map((layer, i) => {
    const where = `layer ${i + 1}`;
    if (!isObject(layer)) {
      problems.push(`${where} is not a layer: write it as { "type": …, … }, not ${shown(layer)}.`);
      return where;
    }
    const type = layer.type;
    if (type === undefined) {
      problems.push(`${where} has no type: add "type": one of ${list(LAYER_TYPES)}.`);
      return where;
    }
    const settings =
      typeof type === "string" && Object.hasOwn(LAYER_SETTINGS, type) ? LAYER_SETTINGS[type as Layer["type"]] : undefined;
    if (typeof type !== "string" || settings === undefined) {
      problems.push(`${where}: unknown layer type ${shown(type)} (known: ${list(LAYER_TYPES)}).`);
      return where;
    }
    const k = (counts.get(type) ?? 0) + 1;
    counts.set(type, k);
    const rawName = layer.name;
    let name = `${type}_${k}`;
    if (typeof rawName === "string" && /^[a-z0-9_]{1,64}$/.test(rawName)) name = rawName;
    const label = `${where} (${name})`;
    if (rawName !== undefined && rawName !== null && name !== rawName) {
      problems.push(`${label}: name must be up to 64 lowercase letters, digits or '_', not ${shown(rawName)}.`);
    }
    const other = seen.get(name);
    if (other !== undefined) {
      problems.push(`${label}: layer ${other + 1} has the same name; layer names must be unique.`);
    } else seen.set(name, i);
    for (const field of settings.required) {
      if (layer[field] === undefined) problems.push(`${label}: ${field} is missing; it ${KIND_RULE[settings.fields[field] as Kind]}.`);
    }
    for (const [field, value] of Object.entries(layer)) {
      if (field === "type" || field === "name") continue;
      const kind = settings.fields[field];
      if (kind === undefined) {
        const known = Object.keys(settings.fields);
        problems.push(
          `${label}: '${field}' is not a setting of ${type} layers${known.length ? ` (settings: ${list(known)})` : " (it has none besides name)"}.`,
        );
      } else if (!fits(kind, value)) {
        problems.push(`${label}: ${field} ${KIND_RULE[kind]}, not ${shown(value)}.`);
      }
    }
    return label;
  });
}

/** The size of a model that passed `checkModel`, for a confirmation line. */
export function summarize(doc: unknown): ModelSummary | null {
  if (!isObject(doc) || !Array.isArray(doc.layers) || !Array.isArray(doc.input_shape)) return null;
  let shape = doc.input_shape as number[];
  const first = (doc.layers as Record<string, unknown>[])[0];
  const vocab = first?.type === "token_embedding" ? (first.vocab_size as number) : 0;
  for (const layer of doc.layers as Record<string, unknown>[]) {
    const out = outputShape(layer, shape, vocab);
    if (typeof out === "string") return null;
    shape = out;
  }
  return { layers: doc.layers.length, inputShape: doc.input_shape as number[], outputs: shape[shape.length - 1] ?? 0 };
}
