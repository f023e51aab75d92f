// The code-free task form: its state, client-side checks, the task document it produces, and
// the mapping of the server's field errors (422 `fields`) back onto the form, in plain words.
import { markRaw } from "vue";
import { parseNumber } from "../../core/data/tabular";
import {
  AGGREGATIONS,
  type AggregationConfig,
  SECURE_AGGREGATION_DEFAULTS,
  type Scheme,
  type SecureAggregationConfig,
  TRAINING_DEFAULTS,
  secureAggregationProblems,
} from "../../core/task";
import { type ModelFit, checkModel } from "../../core/models/validate";
import type { FieldProblem } from "./api";
import { type ArchitectureId, type ModelDoc, buildArchitecture } from "./architectures";
import { type TableSource, answersIn, guessAnswer, inputColumns, measure, trainingRows } from "./csvColumns";
import { type RuleSchema, type SettingField, checkSetting } from "./ruleSettings";

export interface ColumnRow {
  name: string;
  /** Text values, comma-separated; empty for numeric columns. */
  categories: string;
  fill: string;
  /** "" until measured in a file or typed: a number column needs both, never a silent 0 and 1. */
  mean: number | string;
  std: number | string;
  /** The file the values above were measured in; "" when typed by hand or not measured. */
  from: string;
  /** What measuring the column found, in plain words ("" when not measured). */
  about: string;
}

export interface TaskForm {
  id: string;
  title: string;
  summary: string;
  data_format: string;
  data_type: "image" | "tabular";
  labels: string;
  image_height: number | string;
  image_width: number | string;
  channels: 1 | 3;
  columns: ColumnRow[];
  output_column: string;
  /** The CSV file the columns were read from (kept in this browser, never uploaded), or null. */
  table: TableSource | null;
  model_source: "builtin" | "upload";
  architecture: ArchitectureId;
  uploaded_model: string;
  uploaded_model_name: string;
  /** One of the server's schemes (`GET /api/schema/task`). */
  scheme: string;
  /** One of the server's aggregation rules. */
  aggregation: string;
  /**
   * What is typed in each rule's settings, by rule then setting ("" = empty); kept per rule so
   * that trying another rule loses nothing. A setting not here is left to the server's default.
   */
  aggregation_settings: Record<string, Record<string, number | string>>;
  epochs: number | string;
  epochs_per_round: number | string;
  rounds_per_epoch: number | string;
  batch_size: number | string;
  learning_rate: number | string;
  validation_split: number | string;
  min_participants: number | string;
  round_deadline_s: number | string;
  wait_for_others_s: number | string;
  privacy: boolean;
  clipping_radius: number | string;
  noise_multiplier: number | string;
  /** Secure aggregation on: the server learns only the total of the updates (federated tasks). */
  secure_aggregation: boolean;
  /**
   * What is typed in secure aggregation's settings, by setting ("" = empty: the threshold is
   * then automatic). A setting not here is left to the server's default.
   */
  secure_settings: Record<string, number | string>;
}

/** Form key → message; a message of several problems has one per line. */
export type FieldErrors = Record<string, string>;

export const TASK_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** A fresh form: an image task with sensible defaults. */
export function emptyForm(): TaskForm {
  return {
    id: "",
    title: "",
    summary: "",
    data_format: "",
    data_type: "image",
    labels: "",
    image_height: 28,
    image_width: 28,
    channels: 1,
    columns: [emptyColumn()],
    output_column: "",
    table: null,
    model_source: "builtin",
    architecture: "mnist_cnn",
    uploaded_model: "",
    uploaded_model_name: "",
    scheme: "federated",
    aggregation: TRAINING_DEFAULTS.aggregation.rule,
    aggregation_settings: {},
    epochs: 10,
    epochs_per_round: 2,
    rounds_per_epoch: 1,
    batch_size: 32,
    learning_rate: 0.001,
    validation_split: 0.2,
    min_participants: 2,
    round_deadline_s: TRAINING_DEFAULTS.round_deadline_s,
    wait_for_others_s: TRAINING_DEFAULTS.wait_for_others_s,
    privacy: false,
    clipping_radius: 1,
    noise_multiplier: 1,
    secure_aggregation: false,
    secure_settings: {},
  };
}

export function emptyColumn(name = ""): ColumnRow {
  return { name, categories: "", fill: "", mean: "", std: "", from: "", about: "" };
}

/**
 * Use a CSV file for the columns: the answer column is guessed from its name ("label",
 * "target", …) when one looks like it, otherwise left for the person to choose; the inputs and
 * answers are read for it (`setAnswer`).
 */
export function setTable(f: TaskForm, table: TableSource): void {
  f.table = markRaw(table);
  setAnswer(f, guessAnswer(table.header));
}

/**
 * Make `answer` the answer column and read the file again: every other column becomes an input,
 * measured on the rows that have an answer, and the answers (labels) are the column's values.
 * Without an answer ("") the inputs wait until one is chosen.
 */
export function setAnswer(f: TaskForm, answer: string): void {
  f.output_column = answer;
  const table = f.table;
  if (!table) return;
  if (!answer) {
    f.columns = [];
    f.labels = "";
    return;
  }
  f.columns = inputColumns(table, answer).map((c) => ({ ...c, from: table.file }));
  f.labels = answersIn(table, answer).labels.join(", ");
}

/**
 * Measure a column whose name was typed: from the file when it has that column; a column
 * measured before under another name loses its values (they were another column's).
 */
export function remeasure(f: TaskForm, col: ColumnRow): void {
  const name = col.name.trim();
  const table = f.table;
  if (table && name && name !== f.output_column && table.header.includes(name)) {
    const rows = trainingRows(table, f.output_column);
    Object.assign(col, measure(table.file, table.header, rows, name), { from: table.file });
  } else if (col.from) {
    Object.assign(col, emptyColumn(col.name));
  }
}

/** Prefill the settings of `rule` not typed yet with the schema's defaults (none: empty). */
export function fillRuleDefaults(f: TaskForm, rule: string, fields: readonly SettingField[]): void {
  const typed = (f.aggregation_settings[rule] ??= {});
  for (const field of fields) typed[field.key] ??= field.default ?? "";
}

/** Prefill secure aggregation's settings not typed yet with the schema's defaults (none: empty). */
export function fillSecureDefaults(f: TaskForm, fields: readonly SettingField[]): void {
  for (const field of fields) f.secure_settings[field.key] ??= field.default ?? "";
}

/**
 * Secure aggregation's settings as typed (an empty threshold is sent as null: automatic),
 * checked against the schema's bounds; problems go into `errors` as
 * `secure_aggregation.<setting>`. Null when it is off, or in a local task (nothing is combined:
 * the choice is not shown).
 */
function secureDoc(f: TaskForm, fields: readonly SettingField[], errors: FieldErrors): Record<string, unknown> | null {
  if (!f.secure_aggregation || f.scheme === "local") return null;
  return typedSettings(fields, f.secure_settings, "secure_aggregation", errors);
}

/**
 * The settings typed in `values` (an empty nullable setting as null: automatic), each checked
 * against its schema bounds; a problem goes into `errors` as `<prefix>.<setting>`. A setting never
 * shown is left out (the server's default).
 */
function typedSettings(
  fields: readonly SettingField[],
  values: Record<string, number | string>,
  prefix: string,
  errors: FieldErrors,
): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.key];
    if (raw === undefined) continue;
    const checked = checkSetting(field, raw);
    if ("error" in checked) errors[`${prefix}.${field.key}`] = checked.error;
    else doc[field.key] = checked.value;
  }
  return doc;
}

/**
 * What secure aggregation refuses in these settings (`secureAggregationProblems`, Python's own
 * words), each on the field it concerns as the server's refusal would be; settings already wrong
 * on their own are left to their messages.
 */
function secureConflicts(
  f: TaskForm,
  secure: Record<string, unknown> | null,
  aggregation: Record<string, unknown>,
  minParticipants: number,
  errors: FieldErrors,
): void {
  const own = ["min_participants", "secure_aggregation.clip", "secure_aggregation.weight_cap", "secure_aggregation.threshold"];
  if (!secure || own.some((k) => errors[k])) return;
  const problems = secureAggregationProblems({
    scheme: f.scheme as Scheme,
    aggregation: aggregation as AggregationConfig,
    min_participants: minParticipants,
    secure_aggregation: { ...SECURE_AGGREGATION_DEFAULTS, ...secure } as SecureAggregationConfig,
  });
  const { errors: found } = serverErrors(problems.map((message) => ({ field: "training", message })));
  for (const [key, message] of Object.entries(found)) errors[key] ??= message;
}

/**
 * The chosen rule with its settings, `{"rule": "trimmed_mean", "beta": 0.2}` (an empty nullable
 * setting is sent as null: automatic), checked against the schema's bounds; problems go into
 * `errors` as `aggregation.<setting>`.
 */
function aggregationDoc(f: TaskForm, rules: Record<string, RuleSchema>, errors: FieldErrors): Record<string, unknown> {
  const doc: Record<string, unknown> = { rule: f.aggregation };
  if (f.scheme === "local") return doc; // nothing is combined: the settings are not shown
  const typed = f.aggregation_settings[f.aggregation] ?? {};
  return { ...doc, ...typedSettings(rules[f.aggregation]?.settings ?? [], typed, "aggregation", errors) };
}

/** A task id suggested from a title ("Hospital X-rays" → "hospital-x-rays"). */
export function slug(title: string): string {
  return title
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}

function list(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function isBlank(v: number | string): boolean {
  return typeof v === "string" && v.trim() === "";
}

function num(v: number | string): number {
  if (typeof v === "number") return v;
  return v.trim() === "" ? Number.NaN : Number(v);
}

/** Labels (class names) typed in the form. */
export function formLabels(f: TaskForm): string[] {
  return list(f.labels);
}

interface Check {
  errors: FieldErrors;
  int(key: keyof TaskForm, lo: number, hi: number, what: string): number;
  real(key: keyof TaskForm, lo: number, hi: number, what: string, open?: boolean): number;
}

function checker(f: TaskForm): Check {
  const errors: FieldErrors = {};
  return {
    errors,
    int(key, lo, hi, what) {
      const v = num(f[key] as number | string);
      if (!Number.isInteger(v) || v < lo || v > hi) {
        errors[key] = `${what} must be a whole number from ${lo} to ${hi}.`;
      }
      return v;
    },
    real(key, lo, hi, what, open = false) {
      const v = num(f[key] as number | string);
      if (!Number.isFinite(v) || (open ? v <= lo : v < lo) || v > hi) {
        errors[key] = `${what} must be a number ${open ? "above" : "from"} ${lo}${
          Number.isFinite(hi) ? ` ${open ? "and at most" : "to"} ${hi}` : ""
        }.`;
      }
      return v;
    },
  };
}

/**
 * Check the form; the task document when it is valid, the problems per field otherwise. `rules`
 * are the server's rules with their settings (`TrainingOptions.rules`): the chosen rule's
 * settings are checked against their bounds and sent with it; `secure` are secure aggregation's
 * settings (`TrainingOptions.secure.settings`), checked and sent the same way when it is on, and
 * what secure aggregation refuses in the other settings is shown on their fields.
 */
export function buildTask(
  f: TaskForm,
  rules: Record<string, RuleSchema> = {},
  secure: readonly SettingField[] = [],
): { doc: Record<string, unknown> | null; errors: FieldErrors } {
  const c = checker(f);
  const e = c.errors;
  if (!f.id.trim()) e.id = "Give the task an id (used in links), e.g. hospital-xrays.";
  else if (!TASK_ID.test(f.id.trim())) {
    e.id = "Use 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit.";
  }
  if (!f.title.trim()) e.title = "Give the task a title people will recognise.";
  if (f.summary.length > 5000) e.summary = "Keep the summary under 5000 characters.";

  const labels = formLabels(f);
  if (labels.length < 2) e.labels = "List at least two answers (classes), e.g. healthy, sick.";
  else if (new Set(labels).size !== labels.length) e.labels = "Each answer must appear only once.";

  let h = 0;
  let w = 0;
  const columns: Record<string, unknown>[] = [];
  if (f.data_type === "image") {
    h = c.int("image_height", 1, 4096, "Height");
    w = c.int("image_width", 1, 4096, "Width");
  } else {
    const names = f.columns.map((col) => col.name.trim());
    if (!f.columns.length || names.every((n) => !n)) e.columns = "Add at least one input column.";
    f.columns.forEach((col, i) => {
      const name = col.name.trim();
      if (!name) e[`columns.${i}.name`] = "Name the column as in the CSV header.";
      else if (names.indexOf(name) !== i) e[`columns.${i}.name`] = "This column is listed twice.";
      else if (name === f.output_column.trim()) {
        e[`columns.${i}.name`] = "The answer column cannot also be an input.";
      } else if (f.table && !f.table.header.includes(name)) {
        e[`columns.${i}.name`] = `${f.table.file} has no column named “${name}”. Check the spelling, or remove this column.`;
      }
      const cats = list(col.categories);
      // a text column is given as its values' positions in the list: as they are unless told
      const text = cats.length > 0;
      const blankMean = isBlank(col.mean);
      const blankStd = isBlank(col.std);
      const mean = text && blankMean ? 0 : num(col.mean);
      const std = text && blankStd ? 1 : num(col.std);
      if (blankMean && !text) {
        e[`columns.${i}.mean`] = "Enter the typical value, or pick the CSV file above to measure it.";
      } else if (!Number.isFinite(mean)) e[`columns.${i}.mean`] = "The typical value must be a number.";
      if (blankStd && !text) {
        e[`columns.${i}.std`] = "Enter the spread, or pick the CSV file above to measure it.";
      } else if (!Number.isFinite(std) || std <= 0) e[`columns.${i}.std`] = "The spread must be a number above 0.";
      const fill = col.fill.trim() === "" ? null : parseNumber(col.fill.trim());
      if (col.fill.trim() !== "" && fill === null) {
        e[`columns.${i}.fill`] = "The value for empty cells must be a number (or left empty).";
      }
      columns.push({
        name,
        fill,
        mean,
        std,
        categories: cats.length ? cats : null,
      });
    });
    const answer = f.output_column.trim();
    if (!answer) {
      e.output_column = f.table
        ? "Choose the column holding the answer in the list."
        : "Name the column holding the answer, as in the CSV header.";
    } else if (f.table && !f.table.header.includes(answer)) {
      e.output_column = `${f.table.file} has no column named “${answer}”. Choose one in the list.`;
    }
  }

  let model: ModelDoc | Record<string, unknown> | null = null;
  const classes = labels.length;
  if (f.model_source === "upload") {
    if (!f.uploaded_model) e.model = "Choose a model file (JSON in the disco.model/1 format).";
    else {
      const checked = checkModelFile(f.uploaded_model, modelFit(f));
      if (checked.problems.length) e.model = checked.problems.join("\n");
      else model = checked.model;
    }
  } else {
    const needs = f.architecture === "mnist_cnn" ? 12 : f.architecture === "lus_covid_cnn" ? 10 : 1;
    if (f.data_type === "image" && (f.architecture === "dense" || h < needs || w < needs)) {
      e.model =
        f.architecture === "dense"
          ? "Pick an image network for an image task."
          : `This network needs images of at least ${needs}×${needs} pixels.`;
    } else if (f.data_type === "tabular" && f.architecture !== "dense") {
      e.model = "Pick the dense network for a table task.";
    } else if (classes >= 2) {
      model = buildArchitecture(
        f.architecture,
        { height: h, width: w, channels: f.channels, columns: columns.length },
        classes,
      );
    }
  }

  const epochs = c.int("epochs", 1, 100_000, "Epochs");
  const perRound = c.int("epochs_per_round", 1, 100_000, "Epochs per round");
  if (!e.epochs && !e.epochs_per_round && perRound > epochs) {
    e.epochs_per_round = "Epochs per round cannot be more than the total epochs.";
  }
  const perEpoch = c.int("rounds_per_epoch", 1, 1000, "Rounds per epoch");
  if (!e.epochs_per_round && !e.rounds_per_epoch && perEpoch > 1 && perRound > 1) {
    e.rounds_per_epoch = "Rounds per epoch cuts each epoch into rounds: set epochs per round to 1, or this to 1.";
  }
  const batch = c.int("batch_size", 1, 65_536, "Batch size");
  const lr = c.real("learning_rate", 0, 10, "Learning rate", true);
  const vsplit = c.real("validation_split", 0, 0.9, "Validation share");
  const minP = c.int("min_participants", 1, 10_000, "Minimum participants");
  const deadline = c.real("round_deadline_s", 0, 86_400, "Round deadline", true);
  const wait = c.real("wait_for_others_s", 0, 86_400, "Waiting time", true);
  if (!e.round_deadline_s && !e.wait_for_others_s && wait < deadline) {
    e.wait_for_others_s = `Wait at least as long as the round deadline (${deadline} seconds): otherwise people stop waiting before a round can close.`;
  }
  let privacy: Record<string, number> | null = null;
  if (f.privacy) {
    const radius = c.real("clipping_radius", 0, Number.POSITIVE_INFINITY, "Clipping radius", true);
    const noise = c.real("noise_multiplier", 0, 1000, "Noise multiplier");
    privacy = { clipping_radius: radius, noise_multiplier: noise };
  }
  const aggregation = aggregationDoc(f, rules, e);
  const secureAggregation = secureDoc(f, secure, e);
  secureConflicts(f, secureAggregation, aggregation, minP, e);

  if (Object.keys(e).length) return { doc: null, errors: e };
  const training: Record<string, unknown> = {
    data_type: f.data_type,
    scheme: f.scheme,
    aggregation,
    epochs,
    epochs_per_round: perRound,
    rounds_per_epoch: perEpoch,
    batch_size: batch,
    validation_split: vsplit,
    learning_rate: lr,
    labels,
    min_participants: minP,
    round_deadline_s: deadline,
    wait_for_others_s: wait,
    privacy,
    secure_aggregation: secureAggregation,
  };
  if (f.data_type === "image") {
    Object.assign(training, { image_height: h, image_width: w, channels: f.channels });
  } else {
    Object.assign(training, { input_columns: columns, output_column: f.output_column.trim() });
  }
  const description =
    f.model_source === "upload"
      ? `Uploaded model (${f.uploaded_model_name}).`
      : ((model as ModelDoc | null)?.description ?? "");
  return {
    doc: {
      id: f.id.trim(),
      display: {
        title: f.title.trim(),
        summary: f.summary.trim(),
        data_format: f.data_format.trim(),
        model_description: description,
      },
      training,
      model,
    },
    errors: {},
  };
}

/** What the task, as filled in so far, expects of its model (parts not yet valid are left out). */
export function modelFit(f: TaskForm): ModelFit {
  const fit: ModelFit = {};
  const whole = (v: number | string): number | null => {
    const n = num(v);
    return Number.isInteger(n) && n >= 1 ? n : null;
  };
  if (f.data_type === "image") {
    const h = whole(f.image_height);
    const w = whole(f.image_width);
    if (h !== null && w !== null) fit.inputShape = [h, w, f.channels];
  } else if (f.columns.length) {
    fit.inputShape = [f.columns.length];
  }
  const labels = new Set(formLabels(f)).size;
  if (labels >= 2) fit.labels = labels;
  return fit;
}

/** An uploaded model file's text checked in the browser: the document, or its problems. */
export function checkModelFile(
  text: string,
  fit: ModelFit = {},
): { model: Record<string, unknown> | null; problems: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (error) {
    const where = error instanceof Error ? error.message.replace(/^JSON\.parse: /, "") : "";
    return { model: null, problems: [`This file is not valid JSON${where ? ` (${where})` : ""}.`] };
  }
  const problems = checkModel(parsed, fit);
  return { model: problems.length ? null : (parsed as Record<string, unknown>), problems };
}

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
