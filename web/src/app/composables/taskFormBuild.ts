// The task form checked into the task document it produces (`buildTask`), with a problem in plain
// words on each field that is not right, and an uploaded model file checked against what the
// form expects of its model.
import { parseNumber } from "../../core/data/tabular";
import { type ModelFit, checkModel } from "../../core/models/validate";
import { type ModelDoc, buildArchitecture } from "./architectures";
import type { RuleSchema, SettingField } from "./ruleSettings";
import { type FieldErrors, TASK_ID, type TaskForm } from "./taskForm";
import { aggregationDoc, secureConflicts, secureDoc } from "./taskFormAggregation";

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
