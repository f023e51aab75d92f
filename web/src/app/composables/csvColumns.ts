// A CSV file read for the task form, in the browser: its header, the rows that would train, and
// each column measured (average, spread, empty cells, text values) for the task's preprocessing.
import { parseCsv, parseNumber, trimCell } from "../../core/data/tabular";

/** A CSV file as the form keeps it (never uploaded): its header and its well-formed rows. */
export interface TableSource {
  readonly file: string;
  readonly header: readonly string[];
  /** Rows with as many cells as the header, trimmed. */
  readonly rows: readonly (readonly string[])[];
  /** Rows left out because their number of cells differs from the header's. */
  readonly malformed: number;
}

/** What measuring one column in a file found; `about` says it in plain words. */
export interface ColumnStats {
  categories: string;
  fill: string;
  mean: number | string;
  std: number | string;
  about: string;
}

/** How many different answers a task's answer column may have before it looks wrong. */
export const MAX_ANSWERS = 20;
/** How many different text values a column keeps as its categories. */
export const MAX_CATEGORIES = 100;

/** Header names that usually hold the answer, tried in this order (lower case). */
const ANSWER_NAMES = ["label", "labels", "target", "class", "answer", "outcome", "diagnosis", "survived", "y"];

/** Read CSV text (an error when it has no header or a name twice); rows with a wrong cell count are counted, not kept. */
export function readTable(text: string, file: string): TableSource {
  const table = parseCsv(text, file);
  const twice = table.header.filter((h, i) => table.header.indexOf(h) !== i);
  if (twice.length) {
    throw new Error(`its header names the column “${twice[0]}” twice; give every column its own name`);
  }
  const rows = table.rows.filter((r) => r.problem === undefined).map((r) => r.cells.map((c) => trimCell(c)));
  return { file, header: table.header, rows, malformed: table.rows.length - rows.length };
}

/** The header column that is most likely the answer by its name, or "" when none looks like one. */
export function guessAnswer(header: readonly string[]): string {
  const lower = header.map((h) => h.toLowerCase());
  for (const name of ANSWER_NAMES) {
    const i = lower.indexOf(name);
    if (i >= 0) return header[i] as string;
  }
  return "";
}

/** The rows that train when `answer` is the answer column: those with an answer (all rows when ""). */
export function trainingRows(table: TableSource, answer: string): (readonly string[])[] {
  const k = table.header.indexOf(answer);
  return k < 0 ? [...table.rows] : table.rows.filter((r) => (r[k] ?? "") !== "");
}

/** 5 significant digits: enough for scaling, short enough to read. */
export function round(x: number): number {
  return Number(x.toPrecision(5));
}

/**
 * Measure column `name` over `rows`. Numbers: their average and their spread — the population
 * standard deviation, sqrt(Σ(v − average)² / n), n the number of non-empty cells — and, when
 * some cells are empty, the average as the value for them. Text: its different values.
 */
export function measure(file: string, header: readonly string[], rows: readonly (readonly string[])[], name: string): ColumnStats {
  const k = header.indexOf(name);
  const cells = rows.map((r) => r[k] ?? "");
  const present = cells.filter((s) => s !== "");
  const empty = cells.length - present.length;
  const numbers = present.map(parseNumber);
  if (!present.length) {
    return {
      categories: "",
      fill: "",
      mean: "",
      std: "",
      about: `Every cell of this column is empty in ${file}: it cannot be measured. Remove it, or enter its typical value and spread.`,
    };
  }
  if (numbers.every((v) => v !== null)) {
    const vals = numbers as number[];
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    const sd = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
    const fill = empty ? String(round(mean)) : "";
    const emptyText = empty ? ` ${empty} empty cell${empty === 1 ? "" : "s"} will get ${round(mean)}.` : "";
    if (!(sd > 0)) {
      return {
        categories: "",
        fill,
        mean: round(mean),
        std: 1,
        about: `Numbers, but ${round(mean)} in every row of ${file}: this column cannot help the model; you may remove it.${emptyText}`,
      };
    }
    return {
      categories: "",
      fill,
      mean: round(mean),
      std: round(sd),
      about: `Numbers, measured in ${file} (${vals.length} rows): typical value ${round(mean)}, spread ${round(sd)}.${emptyText}`,
    };
  }
  const values = [...new Set(present)];
  const kept = values.slice(0, MAX_CATEGORIES);
  const shown = kept.slice(0, 4).join(", ") + (kept.length > 4 ? ", …" : "");
  const cut =
    values.length > kept.length
      ? ` It has ${values.length} different values; only the first ${MAX_CATEGORIES} are kept, so rows with the others will be refused.`
      : "";
  const numeric = numbers.filter((v) => v !== null).length;
  const mixed = numeric ? ` ${numeric} of its cells are numbers, read as text too.` : "";
  const gaps = empty
    ? ` ${empty} cell${empty === 1 ? " is" : "s are"} empty: those rows will be left out of training.`
    : "";
  return {
    categories: kept.join(", "),
    fill: "",
    mean: 0,
    std: 1,
    about: `Text, ${kept.length} different value${kept.length === 1 ? "" : "s"} (${shown}), each given to the model as its position in the list.${cut}${mixed}${gaps}`,
  };
}

/** The task's answers (labels) read from the answer column; `count` of different values found. */
export function answersIn(table: TableSource, answer: string): { labels: string[]; count: number } {
  const k = table.header.indexOf(answer);
  if (k < 0) return { labels: [], count: 0 };
  const found = [...new Set(table.rows.map((r) => r[k] ?? "").filter((s) => s !== ""))].sort(
    (a, b) => (parseNumber(a) ?? 0) - (parseNumber(b) ?? 0) || a.localeCompare(b),
  );
  return { labels: found.length <= MAX_ANSWERS ? found : [], count: found.length };
}

/** Every column but the answer, measured on the rows that have an answer, in header order. */
export function inputColumns(table: TableSource, answer: string): ({ name: string } & ColumnStats)[] {
  const rows = trainingRows(table, answer);
  return table.header
    .filter((name) => name !== answer)
    .map((name) => ({ name, ...measure(table.file, table.header, rows, name) }));
}
