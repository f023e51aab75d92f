// The code-free task form's state: its fields and a fresh form, its columns read from a CSV file
// kept in this browser, and the task id suggested from a title. Checking it into a task document
// is taskFormBuild.ts's; the server's field errors are put back on it by taskFormErrors.ts.
import { markRaw } from "vue";
import { TRAINING_DEFAULTS } from "../../core/task";
import type { ArchitectureId } from "./architectures";
import { type TableSource, answersIn, guessAnswer, inputColumns, measure, trainingRows } from "./csvColumns";

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

/** A task id suggested from a title ("Hospital X-rays" → "hospital-x-rays"). */
export function slug(title: string): string {
  return title
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}
