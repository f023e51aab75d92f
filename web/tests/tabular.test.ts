/**
 * Tabular loading: the same numbers and the same messages as Python's `load_csv` (the expected
 * messages were checked against the Python loader on the same text; the bad-row rule is pinned
 * for both by tests/data/fixtures/csv_rows.json), plus the in-memory dataset helpers (seeded
 * shuffle, stratified split).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataError, makeDataset, permutation, shuffle, split, validationCount } from "../src/core/data/dataset";
import { type SkippedRow, csvText, loadCsv, parseCsv, parseNumber, pyRepr } from "../src/core/data/tabular";
import type { Task, TrainingInfo } from "../src/core/task";

const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as {
  task: Task;
}[];
const titanic = catalog.find((c) => c.task.id === "titanic")?.task.training as TrainingInfo;
const HEADER = "Survived,Pclass,Sex,Age,SibSp,Parch,Fare";

const FIXTURES = new URL("../../tests/data/fixtures/", import.meta.url);
const RULE = JSON.parse(readFileSync(new URL("csv_rows.json", FIXTURES), "utf8")) as {
  file: string;
  training: Pick<TrainingInfo, "data_type" | "input_columns" | "output_column" | "labels">;
  labelled: { rows: number[]; x: number[][]; y: number[]; skipped: SkippedRow[] };
  unlabelled: { rows: number[]; skipped_rows: number[] };
  refused: { text: string; message: string }[];
};

/** (v - mean) / std in float64, then float32: what Python computes. */
const std = (v: number, mean: number, sd: number): number => Math.fround((v - mean) / sd);

/** The message of the one row skipped from `text` (a good row is added so the file loads). */
function skippedMessage(text: string, options: { file?: string } = {}): string {
  const [header, ...rest] = text.split("\n");
  const data = loadCsv([header, "0,3,male,22,1,0,7.25", ...rest].join("\n"), titanic, options);
  expect(data.skipped.length).toBe(1);
  return data.problems[0] as string;
}

function error(text: string, options = {}): string {
  try {
    loadCsv(text, titanic, options);
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return (e as Error).message;
  }
  throw new Error("no error");
}

describe("loadCsv", () => {
  const GOOD =
    "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Fare\n" +
    '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,7.25\n' +
    "\n" +
    '2,1,1,"Cumings, Mrs. John ""Flo""\nThayer",female,,1,0,71.2833\n' +
    "3,1,3,Heikkinen,female,26,0,0,\n";

  it("applies the task's preprocessing exactly as Python does", () => {
    const data = loadCsv(GOOD, titanic);
    expect(data.n).toBe(3);
    expect(Array.from(data.y)).toEqual([0, 1, 1]);
    expect(data.y).toBeInstanceOf(Int32Array);
    const expected = [
      [std(3, 2.309, 0.836), 0, std(22, 29.699, 14.516), std(1, 0.523, 1.102), std(0, 0.382, 0.806), std(7.25, 32.204, 49.666)],
      // empty Age: the column's fill value (28)
      [std(1, 2.309, 0.836), 1, std(28, 29.699, 14.516), std(1, 0.523, 1.102), std(0, 0.382, 0.806), std(71.2833, 32.204, 49.666)],
      // empty Fare: fill 14.45
      [std(3, 2.309, 0.836), 1, std(26, 29.699, 14.516), std(0, 0.523, 1.102), std(0, 0.382, 0.806), std(14.45, 32.204, 49.666)],
    ].flat();
    expect(Array.from(data.x)).toEqual(expected);
    // the values Python's load_csv gives for the first row
    expect(data.x[0]).toBe(Math.fround(0.8265550136566162));
    expect(data.x[2]).toBe(Math.fround(-0.5303802490234375));
    expect(data.x[5]).toBe(Math.fround(-0.5024362802505493));
  });

  it("numbers rows as a spreadsheet does: header row 1, blank and multi-line rows counted", () => {
    expect(loadCsv(GOOD, titanic).rows).toEqual([2, 5, 6]);
    expect(parseCsv(GOOD).rows.map((r) => r.cells[3])).toEqual([
      "Braund, Mr. Owen Harris",
      'Cumings, Mrs. John "Flo"\nThayer',
      "Heikkinen",
    ]);
  });

  it("reads CRLF and CR line endings as Python's csv module does", () => {
    const crlf = `${HEADER}\r\n0,3,male,22,1,0,7.25\r\n\r\n1,1,female,38,1,0,71.3\r\n`;
    expect(loadCsv(crlf, titanic).rows).toEqual([2, 4]);
    expect(loadCsv(crlf.replace(/\r\n/g, "\r"), titanic).rows).toEqual([2, 4]);
    expect(loadCsv(`${HEADER}\n0,3,male,22,1,0,7.25`, titanic).n).toBe(1); // no final newline
  });

  it("accepts label names, label indices and Python number syntax", () => {
    const data = loadCsv(`${HEADER}\nsurvived,3,male,1_000,1,0,1e1\n1.0,3,male,22,1,0,7.25\n`, titanic);
    expect(Array.from(data.y)).toEqual([1, 1]);
    expect(data.x[2]).toBe(Math.fround(66.84355163574219));
    expect(data.x[5]).toBe(Math.fround(-0.44706639647483826));
    expect(parseNumber("inf")).toBeNull();
    expect(parseNumber("0x10")).toBeNull();
    expect(parseNumber("")).toBeNull();
    expect(parseNumber(".5")).toBe(0.5);
    expect(parseNumber("-3.")).toBe(-3);
  });

  it("sniffs ';' and drops a BOM", () => {
    const text = "\ufeffSurvived;Pclass;Sex;Age;SibSp;Parch;Fare\n1;2;female;30;0;0;10.5\n";
    const table = parseCsv(text);
    expect(table.delimiter).toBe(";");
    expect(table.header[0]).toBe("Survived");
    expect(loadCsv(text, titanic).n).toBe(1);
    // a decimal comma is not a number, as in Python
    expect(error("Survived;Pclass;Sex;Age;SibSp;Parch;Fare\n0;3;male;22;1;0;7,25\n")).toBe(
      "data.csv: no usable rows: the only data row has a bad cell; the first: row 2, column 'Fare': '7,25' is not a number",
    );
    expect(parseCsv("a,b;c\n1,2;3\n").delimiter).toBe(",");
  });

  it("names the file, row and column in every message, as Python does", () => {
    const row = (cells: string): string => `${HEADER}\n${cells}\n`;
    expect(skippedMessage(row("0,,male,22,1,0,7.25"), { file: "p.csv" })).toBe(
      "p.csv: row 3, column 'Pclass' is empty and the column has no fill value",
    );
    expect(skippedMessage(row("0,3,Male,22,1,0,7.25"))).toBe(
      "data.csv: row 3, column 'Sex': unknown value 'Male'; allowed: 'male', 'female'",
    );
    expect(skippedMessage(row("0,3,it's,22,1,0,7.25"))).toBe(
      `data.csv: row 3, column 'Sex': unknown value "it's"; allowed: 'male', 'female'`,
    );
    expect(skippedMessage(row("0,3,male,abc,1,0,7.25"))).toBe("data.csv: row 3, column 'Age': 'abc' is not a number");
    expect(skippedMessage(row("2,3,male,22,1,0,7.25"))).toBe(
      "data.csv: row 3, column 'Survived': unknown label '2'; use one of 'died', 'survived' or its index 0..1",
    );
    expect(skippedMessage(row(" ,3,male,22,1,0,7.25"))).toBe(
      "data.csv: row 3, column 'Survived' is empty; every row needs a label",
    );
    expect(skippedMessage(row("0,3,male,22,1,0,7.25,9"))).toBe(
      "data.csv: row 3 has 8 cells but the header has 7 (is a value containing the separator unquoted?)",
    );
    // a file whose only row is bad is refused, naming that row
    expect(error(row("0,3,male,abc,1,0,7.25"))).toBe(
      "data.csv: no usable rows: the only data row has a bad cell; the first: row 2, column 'Age': 'abc' is not a number",
    );
    expect(error("Survived,Pclass,Sex\n0,3,male\n")).toBe(
      "data.csv: missing column(s) 'Age', 'SibSp', 'Parch', 'Fare'; the file has 'Survived', 'Pclass', 'Sex'",
    );
    expect(error("Survived,,Sex\n")).toBe("data.csv: header row has empty column name(s) at position(s) [2]");
    expect(error("Survived,Pclass,Pclass,Sex,Age,SibSp,Parch,Fare\n")).toBe(
      "data.csv: column(s) ['Pclass'] appear more than once in the header",
    );
    expect(error("\n\n")).toBe("data.csv: the file is empty; a header row is required");
    expect(error(`${HEADER}\n\n \n`, { file: "file.csv" })).toBe("file.csv: no data rows");
  });

  it("refuses a file that is not CSV text before parsing it", () => {
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]);
    expect(() => csvText(png, "photo.png")).toThrow(new DataError("photo.png: not a CSV text file"));
    const utf16 = Uint8Array.from([0xff, 0xfe, 0x61, 0x00, 0x2c, 0x00]);
    expect(() => csvText(utf16, "excel.csv")).toThrow("excel.csv: not a CSV text file");
    const latin1 = Uint8Array.from([...new TextEncoder().encode("name\nJos"), 0xe9, 0x0a]);
    expect(() => csvText(latin1, "old.csv")).toThrow("old.csv: not UTF-8 text; save the file as UTF-8 CSV");
    const bom = Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(`${HEADER}\n0,3,male,22,1,0,7.25\n`)]);
    expect(loadCsv(csvText(bom), titanic).n).toBe(1);
  });

  it("skips bad rows, reports them and keeps the good ones", () => {
    const text = `${HEADER}\n0,3,male,22,1,0,7.25\n0,,male,22,1,0,7.25\n1,1,female,38,1,0\n1,1,female,38,1,0,71.3\n`;
    const data = loadCsv(text, titanic, { file: "t.csv" });
    expect(data.n).toBe(2);
    expect(data.rows).toEqual([2, 5]);
    expect(data.x.length).toBe(12);
    expect(data.problems).toEqual([
      "t.csv: row 3, column 'Pclass' is empty and the column has no fill value",
      "t.csv: row 4 has 6 cells but the header has 7 (is a value containing the separator unquoted?)",
    ]);
    expect(data.skipped.map((s) => [s.row, s.column, s.value])).toEqual([
      [3, "Pclass", ""],
      [4, null, null],
    ]);
  });

  it("follows the rule shared with Python (tests/data/fixtures/csv_rows.json)", () => {
    const training: TrainingInfo = { ...titanic, ...RULE.training };
    const text = readFileSync(new URL(RULE.file, FIXTURES), "utf8");
    const data = loadCsv(text, training, { file: RULE.file });
    expect(data.rows).toEqual(RULE.labelled.rows);
    expect(Array.from(data.x)).toEqual(RULE.labelled.x.flat());
    expect(Array.from(data.y)).toEqual(RULE.labelled.y);
    expect(data.skipped).toEqual(RULE.labelled.skipped);
    expect(data.problems).toEqual(RULE.labelled.skipped.map((s) => `${RULE.file}: ${s.message}`));

    const inputs = loadCsv(text, training, { file: RULE.file, labelled: false });
    expect(inputs.rows).toEqual(RULE.unlabelled.rows);
    expect(inputs.skipped.map((s) => s.row)).toEqual(RULE.unlabelled.skipped_rows);

    for (const { text: refusedText, message } of RULE.refused) {
      expect(() => loadCsv(refusedText, training, { file: "mine.csv" })).toThrow(
        new DataError(message.replace("FILE", "mine.csv")),
      );
    }
  });

  it("loads inputs only for prediction and regression targets as floats", () => {
    const inputs = loadCsv("Pclass,Sex,Age,SibSp,Parch,Fare\n3,male,22,1,0,7.25\n", titanic, { labelled: false });
    expect(inputs.n).toBe(1);
    expect(inputs.y.length).toBe(0);
    const regression: TrainingInfo = { ...titanic, labels: [] };
    const data = loadCsv(`${HEADER}\n0.5,3,male,22,1,0,7.25\n`, regression);
    expect(data.y).toBeInstanceOf(Float32Array);
    expect(Array.from(data.y)).toEqual([0.5]);
  });

  it("refuses a non-tabular task", () => {
    expect(() => loadCsv(HEADER, { ...titanic, data_type: "image" })).toThrow("only be loaded for a tabular task");
  });

  it("quotes like Python's repr", () => {
    expect(pyRepr("a")).toBe("'a'");
    expect(pyRepr("it's")).toBe(`"it's"`);
    expect(pyRepr(`both ' and "`)).toBe(`'both \\' and "'`);
    expect(pyRepr("tab\there")).toBe("'tab\\there'");
  });
});

describe("dataset helpers", () => {
  const data = makeDataset(
    Float32Array.from({ length: 20 }, (_, i) => i),
    Int32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1, 2]),
    [2],
  );

  it("shuffles deterministically by seed", () => {
    expect(Array.from(permutation(10, 1))).toEqual(Array.from(permutation(10, 1)));
    expect(Array.from(permutation(10, 1))).not.toEqual(Array.from(permutation(10, 2)));
    expect([...permutation(10, 3)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const s = shuffle(data, 5);
    for (let i = 0; i < s.n; i++) expect(s.x[2 * i + 1]).toBe((s.x[2 * i] as number) + 1); // rows stay whole
  });

  it("splits stratified, never emptying a class of training samples", () => {
    expect(validationCount(10, 0.2)).toBe(2);
    expect(validationCount(1, 0.5)).toBe(0);
    expect(validationCount(3, 0.9)).toBe(2);
    const [train, val] = split(data, 0.3, 0);
    expect(train.n + val.n).toBe(10);
    expect(val.n).toBe(3);
    const counts = (y: ArrayLike<number>, k: number): number => Array.from(y).filter((v) => v === k).length;
    expect(counts(val.y, 0)).toBe(2);
    expect(counts(val.y, 1)).toBe(1);
    expect(counts(train.y, 2)).toBe(1);
    expect(split(data, 0.3, 0)[1].x).toEqual(val.x);
    expect(split(data, 0, 0)[1].n).toBe(0);
    expect(() => split(data, 1, 0)).toThrow(DataError);
  });
});
