// The server's field errors (422 `fields`) put back on the task form, in plain words: the form
// key of each server field path, a model file's path in words, and validation wording made plain.
import { AGGREGATIONS } from "../../core/aggregationTask";
import type { FieldProblem } from "./api";
import type { FieldErrors } from "./taskForm";

/** "layer 3 (dense_1): …" → "Layer 3 (dense_1): …" */
function sentence(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const TRAINING_KEYS = new Set([
  "data_type",
  "scheme",
  "epochs",
  "epochs_per_round",
  "rounds_per_epoch",
  "batch_size",
  "validation_split",
  "learning_rate",
  "labels",
  "image_height",
  "image_width",
  "channels",
  "output_column",
  "min_participants",
  "round_deadline_s",
  "wait_for_others_s",
  "aggregation",
  "secure_aggregation",
]);

/**
 * The form key of a server field path (`training.input_columns.0.std` → `columns.0.std`);
 * "" when the problem concerns the task as a whole.
 */
export function formKey(field: string): string {
  const parts = field.split(".");
  const [top, second, third, fourth] = parts;
  if (top === "id") return "id";
  if (top === "display" && (second === "title" || second === "summary")) return second;
  if (top === "display") return "title";
  if (top === "model") return "model";
  if (top === "training" && second) {
    if (second === "privacy") {
      return third === "noise_multiplier" ? "noise_multiplier" : "clipping_radius";
    }
    if (second === "input_columns") {
      if (third !== undefined && /^\d+$/.test(third)) {
        const sub = fourth && ["name", "fill", "mean", "std", "categories"].includes(fourth) ? fourth : "name";
        return `columns.${third}.${sub}`;
      }
      return "columns";
    }
    if (second === "secure_aggregation") {
      // `training.secure_aggregation.clip`: the setting's field; the choice itself otherwise
      return third && /^[a-z_][a-z0-9_]*$/.test(third) ? `secure_aggregation.${third}` : "secure_aggregation";
    }
    if (second === "aggregation") {
      // `training.aggregation.beta` (or `….trimmed_mean.beta`): the setting's field
      const setting = parts.slice(2).filter((p) => p !== "rule").at(-1);
      return setting && /^[a-z_][a-z0-9_]*$/.test(setting) ? `aggregation.${setting}` : "aggregation";
    }
    if (TRAINING_KEYS.has(second)) return second;
  }
  return "";
}

const LAYER_TYPE_NAMES = new Set([
  "dense", "conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d",
  "global_avg_pool2d", "batch_norm", "dropout", "flatten", "activation",
]);

/**
 * A server field path in words: `model.layers.5.units` → "model → layers → 5 → units". The
 * layer-type tags older servers put in the path (`layers.5.dense.units`) are left out.
 */
export function pathText(field: string): string {
  const parts = field.split(".").filter((p, i, all) => !(LAYER_TYPE_NAMES.has(p) && /^\d+$/.test(all[i - 1] ?? "")));
  return parts.join(" → ");
}

/** Validation-library wording (pydantic's, as older servers send it) → plain words. */
const PLAIN: [RegExp, string | ((...m: string[]) => string)][] = [
  [/^Value error, /, ""],
  [
    /^wait_for_others_s \(([^)]*)\) must be at least round_deadline_s \(([^)]*)\)[\s\S]*$/,
    (_all, _wait, deadline) =>
      `wait at least as long as the round deadline (${deadline} seconds), or people stop waiting before a round can close`,
  ],
  [/\bset min_participants to\b/, "set the minimum participants to"],
  [/\bmin_participants\b/g, "the minimum participants"],
  [/\buse the federated scheme\b/, "train together through the server"],
  [/^Field required$/, "is missing"],
  [/^Extra inputs are not permitted$/, "is not a known setting"],
  [
    /^Input tag '([^']*)' found using .* expected tags: (.*)$/,
    (_all, tag, tags) => `unknown layer type '${tag}' (known: ${(tags ?? "").replace(/'/g, "")})`,
  ],
  [/^Unable to extract tag using discriminator.*$/, "needs a 'type'"],
  [/^Input should be a valid (tuple|list|array).*$/, "should be a list"],
  [/^Input should be a valid integer.*$/, "should be a whole number"],
  [/^Input should be a valid number.*$/, "should be a number"],
  [/^Input should be a valid boolean.*$/, "should be true or false"],
  [/^Input should be a valid string.*$/, "should be text"],
  [/^Input should be a valid (dictionary|object).*$/, "should be an object, { … }"],
  [/^Input should be greater than or equal to /, "must be at least "],
  [/^Input should be greater than /, "must be greater than "],
  [/^Input should be less than or equal to /, "must be at most "],
  [/^Input should be less than /, "must be less than "],
  [/^String should have at least 1 character$/, "must not be empty"],
  [/^String should have at most (\d+) characters?$/, (_all, n) => `must have at most ${n} characters`],
  [/^Input should be /, "should be "],
];

/** One server message in plain words (messages already plain pass unchanged). */
export function plainMessage(message: string): string {
  let text = message.trim();
  for (const [pattern, words] of PLAIN) {
    text = typeof words === "string" ? text.replace(pattern, words) : text.replace(pattern, words);
  }
  return text;
}

/** Secure aggregation's refusals (Python's `TrainingInfo`) → the form field each concerns. */
const SECURE_KEYS: [RegExp, string][] = [
  [/^secure aggregation needs at least \d+ participants\b/, "min_participants"],
  [/^a secure decentralized round takes at most \d+ peers\b/, "min_participants"],
  [/^secure aggregation's threshold\b/, "secure_aggregation.threshold"],
  [/^secure aggregation's clip range\b/, "secure_aggregation.clip"],
  [/^secure aggregation\b/, "secure_aggregation"],
];

/**
 * The field a problem of the training settings as a whole names first
 * (`training`: "wait_for_others_s (60) must be at least …" → `wait_for_others_s`); "" otherwise.
 */
function namedKey(problem: FieldProblem): string {
  if (problem.field !== "training") return "";
  const text = problem.message.replace(/^Value error, /, "");
  const secure = SECURE_KEYS.find(([pattern]) => pattern.test(text));
  if (secure) return secure[1];
  const first = /^([a-z_]+)\b/.exec(problem.message.replace(/^Value error, /, ""))?.[1] ?? "";
  if (first === "input_columns") return "columns";
  // "krum with f=1 needs at least 5 updates in a round: …": the rule's own problem
  if ((AGGREGATIONS as readonly string[]).includes(first)) return "aggregation";
  return TRAINING_KEYS.has(first) ? first : "";
}

/**
 * The server's 422 problems on the form: each on its field, in plain words; a model problem with
 * its path in the model file ("model → layers → 5 → units: must be greater than 0"), one per
 * line. `rest` holds what belongs to no field.
 */
export function serverErrors(fields: readonly FieldProblem[]): { errors: FieldErrors; rest: string[] } {
  const errors: FieldErrors = {};
  const rest: string[] = [];
  for (const problem of fields) {
    const msg = plainMessage(problem.message);
    const key = formKey(problem.field) || namedKey(problem) || (/\bmodel\b/.test(msg) ? "model" : "");
    let line: string;
    if (key === "model") {
      line = problem.field.startsWith("model") ? `${pathText(problem.field)}: ${msg}` : sentence(msg);
    } else if (key) line = `${sentence(msg)}${/[.!?]$/.test(msg) ? "" : "."}`;
    else line = problem.field && problem.field !== "task" ? `${pathText(problem.field)}: ${msg}` : msg;
    if (!key) rest.push(line);
    else errors[key] = errors[key] ? `${errors[key]}\n${line}` : line;
  }
  return { errors, rest };
}
