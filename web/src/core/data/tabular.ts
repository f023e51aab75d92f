/**
 * Tabular data: CSV text turned into model inputs with the task's fixed preprocessing.
 *
 * Mirrors Python's `disco.data.tabular` (`read_csv`, `load_csv`) value for value and message for
 * message: UTF-8 text with an optional BOM, `,` or `;` separated (whichever splits the header
 * line into more fields), quoted fields as Python's `csv` module reads them, blank lines
 * skipped. Each input cell is a number (or the index of its text among the column's
 * `categories`), an empty cell takes the column's `fill`, and the value becomes
 * `(value - mean) / std` computed in float64, then rounded to float32. Messages name the file,
 * the row as a spreadsheet shows it (the header is row 1) and the column.
 *
 * Bad rows follow one rule, the Python loader's word for word: a data row with a bad cell (a
 * non-number in a numeric column, an empty cell in a column without `fill`, an unknown category,
 * an unknown or missing label) or with another number of cells than the header is skipped and
 * reported (`skipped`, `problems`); the file is refused only when it cannot be read, when its
 * header lacks a needed column, or when no usable row remains. tests/data/fixtures/csv_rows.json
 * pins the rule for both loaders.
 *
 * Files picked in the browser go through `csvText` first, so that a picture or a spreadsheet
 * given as CSV is named as such instead of being parsed as text; a file with a header and no
 * rows is refused by `loadCsv` ("no data rows").
 */
import { DataError } from "./dataset";
import type { ColumnSpec, TrainingInfo } from "../task";

/** One data row of a CSV file: its spreadsheet row number and its cells. */
export interface CsvRow {
  readonly row: number;
  readonly cells: string[];
  /** Set when the row has another number of cells than the header: the message. */
  readonly problem?: string;
}

/** A parsed CSV file: its header (trimmed) and its non-blank data rows. */
export interface CsvTable {
  readonly file: string;
  readonly header: string[];
  readonly delimiter: "," | ";";
  readonly rows: CsvRow[];
}

/** A data row left out by `loadCsv`, and why (Python's `SkippedRow`). */
export interface SkippedRow {
  /** Its row number as a spreadsheet shows it (the header is row 1). */
  readonly row: number;
  /** The column of the bad cell; null when the row has a wrong number of cells. */
  readonly column: string | null;
  /** The bad cell's text (trimmed); null when `column` is null. */
  readonly value: string | null;
  /** What is wrong, without the file name: `row 4, column 'Age': 'abc' is not a number`. */
  readonly message: string;
}

/** What `loadCsv` returns: the usable rows, and the rows it skipped. */
export interface TabularData {
  /** `n * input_columns.length` standardised float32 values, row after row. */
  readonly x: Float32Array;
  /** Class ids (task with labels) or float targets; empty when loaded unlabelled. */
  readonly y: Float32Array | Int32Array;
  readonly n: number;
  /** Spreadsheet row number of each loaded sample. */
  readonly rows: number[];
  /** The rows left out for a bad cell, in file order. */
  readonly skipped: SkippedRow[];
  /** One message per skipped row, starting with the file name. */
  readonly problems: string[];
}

/** Options of `loadCsv`. */
export interface LoadCsvOptions {
  /** File name used in messages (default `"data.csv"`). */
  file?: string;
  /** Read the output column too (default true); false loads inputs for prediction. */
  labelled?: boolean;
}

/** Bytes that contain a NUL in their first 8 KiB are binary (a picture, a spreadsheet, UTF-16). */
const SNIFF_BYTES = 8192;

/**
 * The text of a CSV file's bytes: UTF-8, with or without a BOM. A binary file (a NUL byte
 * near its start: a picture, an .xlsx, UTF-16 text) is "not a CSV text file"; other bytes that
 * are not UTF-8 get the message Python's `read_csv` gives.
 */
export function csvText(bytes: Uint8Array, file = "data.csv"): string {
  if (bytes.subarray(0, SNIFF_BYTES).includes(0)) throw new DataError(`${file}: not a CSV text file`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DataError(`${file}: not UTF-8 text; save the file as UTF-8 CSV`);
  }
}

/** Python's `repr()` of a string: single quotes unless the text holds one and no double quote. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\" || ch === quote) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return quote + out + quote;
}

function reprList(items: readonly string[]): string {
  return items.map(pyRepr).join(", ");
}

/** Physical lines with their terminators, split as Python's `io.StringIO(newline="")` does. */
function physicalLines(text: string): string[] {
  return text.match(/[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$/g) ?? [];
}

type State = "record" | "field" | "in" | "quoted" | "quote" | "eol";

/**
 * Records of `text` as Python's `csv.reader` (excel dialect, non-strict) yields them, each with
 * the number of physical lines consumed once it is complete (`reader.line_num`). A blank line
 * is an empty record.
 */
function* records(text: string, delimiter: string): Generator<{ line: number; cells: string[] }> {
  const lines = physicalLines(text);
  let cells: string[] = [];
  let field = "";
  let state: State = "record";
  const save = (): void => {
    cells.push(field);
    field = "";
  };
  // one character, or null for the end of a physical line (Python's '\0' sentinel)
  const step = (c: string | null): void => {
    const eol = c === null;
    const newline = c === "\n" || c === "\r";
    switch (state) {
      case "record":
        if (eol) return;
        if (newline) {
          state = "eol";
          return;
        }
        state = "field";
      // falls through
      case "field":
        if (eol || newline) {
          save();
          state = eol ? "record" : "eol";
        } else if (c === '"') state = "quoted";
        else if (c === delimiter) save();
        else {
          field += c;
          state = "in";
        }
        return;
      case "in":
        if (eol || newline) {
          save();
          state = eol ? "record" : "eol";
        } else if (c === delimiter) {
          save();
          state = "field";
        } else field += c;
        return;
      case "quoted":
        if (c === '"') state = "quote";
        else if (!eol) field += c;
        return;
      case "quote":
        if (c === '"') {
          field += c;
          state = "quoted";
        } else if (c === delimiter) {
          save();
          state = "field";
        } else if (eol || newline) {
          save();
          state = eol ? "record" : "eol";
        } else {
          field += c;
          state = "in";
        }
        return;
      case "eol":
        if (eol) state = "record";
        return;
    }
  };
  for (let i = 0; i < lines.length; i++) {
    for (const c of lines[i] as string) step(c);
    step(null);
    if (state === "record") {
      yield { line: i + 1, cells };
      cells = [];
    }
  }
  if ((state as State) === "quoted" || field !== "") {
    save(); // data ends inside a quoted field: Python (non-strict) keeps what it read
    yield { line: lines.length, cells };
  }
}

function cellCountProblem(row: number, cells: number, header: number): string {
  return `row ${row} has ${cells} cells but the header has ${header} (is a value containing the separator unquoted?)`;
}

function guessDelimiter(firstLine: string): "," | ";" {
  const count = (d: string): number => records(firstLine, d).next().value?.cells.length ?? 0;
  return count(";") > count(",") ? ";" : ",";
}

/**
 * Parse CSV text with a header row (Python's `read_csv`): BOM dropped, `,` or `;` sniffed,
 * blank rows skipped. A row with a wrong cell count carries a `problem` message.
 */
export function parseCsv(text: string, file = "data.csv"): CsvTable {
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  const first = body.split("\n").find((line) => trimCell(line) !== "");
  if (first === undefined) throw new DataError(`${file}: the file is empty; a header row is required`);
  const delimiter = guessDelimiter(first);
  let header: string[] | null = null;
  const rows: CsvRow[] = [];
  for (const { line, cells } of records(body, delimiter)) {
    if (header === null) {
      if (cells.length === 0) continue;
      header = cells.map((h) => trimCell(h));
      const empty = header.flatMap((h, i) => (h === "" ? [i + 1] : []));
      if (empty.length > 0) {
        throw new DataError(
          `${file}: header row has empty column name(s) at position(s) [${empty.join(", ")}]`,
        );
      }
      continue;
    }
    if (cells.length === 0 || cells.every((c) => trimCell(c) === "")) continue;
    if (cells.length !== header.length) {
      rows.push({ row: line, cells, problem: `${file}: ${cellCountProblem(line, cells.length, header.length)}` });
      continue;
    }
    rows.push({ row: line, cells });
  }
  if (header === null) throw new DataError(`${file}: the file is empty; a header row is required`);
  return { file, header, delimiter, rows };
}

/** Column positions of `names` in `table`; a DataError lists the missing ones and what exists. */
export function columnIndex(table: CsvTable, names: readonly string[]): number[] {
  const missing = names.filter((n) => !table.header.includes(n));
  if (missing.length > 0) {
    throw new DataError(
      `${table.file}: missing column(s) ${reprList(missing)}; the file has ${reprList(table.header)}`,
    );
  }
  const twice = names.filter((n) => table.header.filter((h) => h === n).length > 1);
  if (twice.length > 0) {
    throw new DataError(`${table.file}: column(s) [${reprList(twice)}] appear more than once in the header`);
  }
  return names.map((n) => table.header.indexOf(n));
}

/** What is trimmed around a cell: the same set as Python's `disco.data.tabular.BLANK`. */
const BLANK = /^[ \t\n\r\v\f\u00a0\ufeff]+|[ \t\n\r\v\f\u00a0\ufeff]+$/g;

/** A cell without the blanks around it (`BLANK`). */
export function trimCell(text: string): string {
  return text.replace(BLANK, "");
}

const NUMBER = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;

/** A finite number as Python's `float()` reads it, or null. */
export function parseNumber(text: string): number | null {
  if (!NUMBER.test(text)) return null;
  const value = Number(text.replace(/_/g, ""));
  return Number.isFinite(value) ? value : null;
}

/** A bad cell: its row is skipped (internal to `loadCsv`). */
class BadCell extends Error {
  constructor(readonly skipped: SkippedRow) {
    super(skipped.message);
  }
}

function bad(row: number, column: string | null, value: string | null, message: string): BadCell {
  return new BadCell({ row, column, value, message });
}

function cellValue(row: number, spec: ColumnSpec, cell: string): number {
  const text = trimCell(cell);
  const where = `row ${row}, column ${pyRepr(spec.name)}`;
  if (text === "") {
    if (spec.fill === null || spec.fill === undefined) {
      throw bad(row, spec.name, text, `${where} is empty and the column has no fill value`);
    }
    return spec.fill;
  }
  if (spec.categories) {
    const index = spec.categories.indexOf(text);
    if (index < 0) {
      throw bad(row, spec.name, text, `${where}: unknown value ${pyRepr(text)}; allowed: ${reprList(spec.categories)}`);
    }
    return index;
  }
  const value = parseNumber(text);
  if (value === null) throw bad(row, spec.name, text, `${where}: ${pyRepr(text)} is not a number`);
  return value;
}

function labelValue(row: number, training: TrainingInfo, column: string, cell: string): number {
  const text = trimCell(cell);
  const where = `row ${row}, column ${pyRepr(column)}`;
  if (text === "") throw bad(row, column, text, `${where} is empty; every row needs a label`);
  const labels = training.labels;
  if (labels.length > 0) {
    const index = labels.indexOf(text);
    if (index >= 0) return index;
    const value = parseNumber(text);
    if (value !== null && Number.isInteger(value) && value >= 0 && value < labels.length) return value;
    throw bad(
      row,
      column,
      text,
      `${where}: unknown label ${pyRepr(text)}; use one of ${reprList(labels)} or its index 0..${labels.length - 1}`,
    );
  }
  const value = parseNumber(text);
  if (value === null) throw bad(row, column, text, `${where}: ${pyRepr(text)} is not a number`);
  return value;
}

/** The message refusing `file` when every data row has a bad cell (`skipped`, not empty). */
export function refusal(file: string, skipped: readonly SkippedRow[]): string {
  const n = skipped.length;
  const which = n === 1 ? "the only data row has" : `all ${n} data rows have`;
  return `${file}: no usable rows: ${which} a bad cell; the first: ${skipped[0]?.message ?? ""}`;
}

/**
 * Load CSV text for a tabular task (Python's `load_csv`, or `load_csv_unlabelled` with
 * `labelled: false`). The header must name every input column (and the output column when
 * labelled); other columns are ignored. With `training.labels` the output cell is a label name
 * or its index (y: Int32Array); without, a number (y: Float32Array).
 *
 * A row with a bad cell is left out and described in `skipped` and `problems`; the good rows
 * still count. A `DataError` when no usable row remains (or the header lacks a column).
 */
export function loadCsv(text: string, training: TrainingInfo, options: LoadCsvOptions = {}): TabularData {
  const { file = "data.csv", labelled = true } = options;
  const output = training.output_column;
  if (training.data_type !== "tabular" || !output) {
    throw new DataError("CSV files can only be loaded for a tabular task");
  }
  const specs = training.input_columns;
  const table = parseCsv(text, file);
  const positions = columnIndex(table, specs.map((c) => c.name));
  const outPos = labelled ? columnIndex(table, [output])[0] : undefined;
  if (!table.rows.length) throw new DataError(`${file}: no data rows`);
  const skipped: SkippedRow[] = [];
  const raw: number[] = [];
  const targets: number[] = [];
  const rows: number[] = [];
  for (const { row, cells, problem } of table.rows) {
    try {
      if (problem !== undefined) throw bad(row, null, null, cellCountProblem(row, cells.length, table.header.length));
      const values = specs.map((spec, k) => cellValue(row, spec, cells[positions[k] as number] ?? ""));
      const target = outPos === undefined ? 0 : labelValue(row, training, output, cells[outPos] ?? "");
      raw.push(...values);
      if (outPos !== undefined) targets.push(target);
      rows.push(row);
    } catch (error) {
      if (!(error instanceof BadCell)) throw error;
      skipped.push(error.skipped);
    }
  }
  if (!rows.length) throw new DataError(refusal(file, skipped));
  const width = specs.length;
  const x = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const spec = specs[i % width] as ColumnSpec;
    x[i] = ((raw[i] as number) - (spec.mean ?? 0)) / (spec.std ?? 1); // float64, then float32
  }
  const y = training.labels.length > 0 ? Int32Array.from(targets) : Float32Array.from(targets);
  const problems = skipped.map((s) => `${file}: ${s.message}`);
  return { x, y, n: rows.length, rows, skipped, problems };
}
