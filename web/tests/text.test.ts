/**
 * Text data in the browser against tests/vectors/text_windows.json (written from Python's
 * `disco.data.text` by tests/vectors/text.py): the same bytes read as the same text, the same
 * token ids cut into the same windows, the same files into the same documents, training and
 * validation windows — or refused with the same words.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataError } from "../src/core/data/dataset";
import {
  MAX_FILE_BYTES,
  MAX_TOTAL_BYTES,
  byCodePoint,
  decodeText,
  iterTexts,
  loadText,
  makeWindows,
  type TextWindows,
} from "../src/core/data/text";
import { Tokenizer } from "../src/core/text/tokenizer";

interface Settings {
  context: number;
  stride?: number | null;
  validation_split?: number;
  max_file_bytes?: number;
  max_total_bytes?: number;
}
interface Result {
  train?: number[][];
  validation?: number[][];
  error?: string;
}
interface Vectors {
  tokenizer: string;
  eot_id: number;
  reading: { name: string; hex: string; text?: string; error?: string }[];
  rule: ({ name: string; documents: number[][]; context: number; stride: number | null; validation_split: number } & Result)[];
  files: ({ name: string; files: { name: string; hex: string }[]; settings: Settings; documents?: string[] } & Result)[];
}

const VECTORS = new URL("../../tests/vectors/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("text_windows.json", VECTORS), "utf8")) as Vectors;
const tokenizer = await Tokenizer.fromBytes(new Uint8Array(readFileSync(new URL(vectors.tokenizer, VECTORS))));

const fromHex = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));

/** Windows back to back as rows of `context + 1` ids, as the vectors write them. */
function rows(flat: Int32Array, context: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += context + 1) out.push(Array.from(flat.subarray(i, i + context + 1)));
  return out;
}

function expectWindows(made: TextWindows, expected: Result): void {
  expect(rows(made.train, made.context)).toEqual(expected.train);
  expect(rows(made.validation, made.context)).toEqual(expected.validation);
}

describe("reading a file's bytes", () => {
  it.each(vectors.reading.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const bytes = fromHex(c.hex);
    if (c.error === undefined) expect(decodeText(bytes, "f.txt")).toBe(c.text);
    else expect(() => decodeText(bytes, "f.txt")).toThrow(new DataError(c.error));
  });
});

describe("the window rule", () => {
  it.each(vectors.rule.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const options = { context: c.context, stride: c.stride, validationSplit: c.validation_split };
    if (c.error !== undefined) {
      expect(() => makeWindows(c.documents, vectors.eot_id, options)).toThrow(new DataError(c.error));
      return;
    }
    const made = makeWindows(c.documents, vectors.eot_id, options);
    expectWindows(made, c);
    expect(made.context).toBe(c.context);
  });
});

describe("text files", () => {
  it.each(vectors.files.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const files = c.files.map((f) => new File([fromHex(f.hex) as Uint8Array<ArrayBuffer>], f.name));
    const s = c.settings;
    const options = {
      context: s.context,
      stride: s.stride,
      validationSplit: s.validation_split,
      maxFileBytes: s.max_file_bytes,
      maxTotalBytes: s.max_total_bytes,
    };
    if (c.error !== undefined) {
      await expect(loadText(files, tokenizer, options)).rejects.toThrow(new DataError(c.error));
      return;
    }
    const made = await loadText(files, tokenizer, options);
    expect(made.documents).toEqual(c.documents);
    expectWindows(made, c);
  });

  it("are the .txt files of a folder, hidden ones left out, by their path in the folder", async () => {
    const inFolder = (path: string, text: string): File => {
      const file = new File([text], path.split("/").pop() as string);
      Object.defineProperty(file, "webkitRelativePath", { value: path });
      return file;
    };
    const files = [
      inFolder("plays/b.txt", "Second play, a few words long."),
      inFolder("plays/notes.md", "not text data"),
      inFolder("plays/.hidden.txt", "never read"),
      inFolder("plays/acts/a.txt", "First play, a few words long."),
      new File(["picked alone, any suffix"], "extra.text"),
    ];
    const read = [];
    for await (const { name } of iterTexts(files)) read.push(name);
    expect(read).toEqual(["extra.text", "plays/acts/a.txt", "plays/b.txt"]);
    const made = await loadText(files, tokenizer, { context: 4 });
    expect(made.documents).toEqual(read);
  });

  it("refuse a file over the limit before reading it, with its size in MiB", async () => {
    const big = new File([new Uint8Array(MAX_FILE_BYTES + 1)], "big.txt");
    await expect(loadText([big], tokenizer, { context: 4 })).rejects.toThrow(
      "big.txt is 16.1 MiB; a text file may hold at most 16.0 MiB: split it into smaller files",
    );
    const many = Array.from({ length: 5 }, (_, i) => new File([new Uint8Array(MAX_TOTAL_BYTES / 4)], `${i}.txt`));
    await expect(loadText(many, tokenizer, { context: 4 })).rejects.toThrow(
      "the text files hold 80.0 MiB in all; at most 64.0 MiB can be used: connect fewer files",
    );
  });

  it("give windows whose inputs and targets are one token apart", async () => {
    const made = await loadText([new File(["Shall I compare thee to a summer's day?"], "s.txt")], tokenizer, {
      context: 3,
      validationSplit: 0,
    });
    const ids = tokenizer.encode("Shall I compare thee to a summer's day?");
    const stream = [...ids, tokenizer.eotId];
    const windows = rows(made.train, 3);
    windows.forEach((w, k) => expect(w).toEqual(stream.slice(3 * k, 3 * k + 4)));
    expect(windows.length).toBe(Math.floor((stream.length - 4) / 3) + 1);
  });
});

describe("names in code-point order", () => {
  it("put a character above U+FFFF after one below it, as Python does", () => {
    expect(["😀", "ｚ", "z", "é"].sort(byCodePoint)).toEqual(["z", "é", "ｚ", "😀"]);
    expect(["ab", "a", "b"].sort(byCodePoint)).toEqual(["a", "ab", "b"]);
  });
});
