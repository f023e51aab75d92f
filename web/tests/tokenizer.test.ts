/**
 * The browser's tokenizer against tests/vectors/tokenizer.json (written from the Python side by
 * tests/vectors/text.py): the same tokenizer.json gives the same ids in `@huggingface/tokenizers`
 * as in Python's `tokenizers`, decodes them back to the text, and is refused with Python's words
 * when it has another shape.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataError } from "../src/core/data/dataset";
import { type Task, parseTask } from "../src/core/task";
import { TaskError } from "../src/core/taskError";
import { EOT, Tokenizer, checkShape, tokenizerForTask } from "../src/core/text/tokenizer";
import { sha256Hex } from "../src/core/weights";

interface Vectors {
  tokenizer: string;
  digest: string;
  vocab_size: number;
  eot_id: number;
  encode: { name: string; text: string; ids: number[] }[];
  random: { text: string; ids: number[] }[];
  decode: { name: string; ids: number[]; text: string }[];
  refused_text: { name: string; code_units: number[]; error: string }[];
  refused_ids: { ids: number[]; error: string }[];
  refused_tokenizers: { name: string; changes: { path: string[]; value: unknown }[]; error: string }[];
}

const VECTORS = new URL("../../tests/vectors/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("tokenizer.json", VECTORS), "utf8")) as Vectors;
const bytes = new Uint8Array(readFileSync(new URL(vectors.tokenizer, VECTORS)));
const tokenizer = await Tokenizer.fromBytes(bytes);

/** What Python's message says before the value it quotes (JSON is spelt differently in each). */
const stem = (message: string): string => message.split(" (it is")[0] as string;

describe("the tokenizer file", () => {
  it("loads offline from its bytes, with Python's digest, vocabulary size and end-of-text id", async () => {
    expect(tokenizer.digest).toBe(vectors.digest);
    expect(await sha256Hex(bytes)).toBe(vectors.digest);
    expect(tokenizer.vocabSize).toBe(vectors.vocab_size);
    expect(tokenizer.eotId).toBe(vectors.eot_id);
    expect(checkShape(JSON.parse(new TextDecoder().decode(bytes)))).toBe(vectors.vocab_size);
    const fromText = await Tokenizer.fromBytes(new TextDecoder().decode(bytes));
    expect(fromText.digest).toBe(vectors.digest);
  });

  it.each(vectors.refused_tokenizers.map((c) => [c.name, c] as const))("refuses one with %s", async (_, c) => {
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    for (const { path, value } of c.changes) {
      let parent = doc;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
      const last = path[path.length - 1] as string;
      if (value === null) delete parent[last];
      else parent[last] = value;
    }
    await expect(Tokenizer.fromBytes(JSON.stringify(doc))).rejects.toThrow(TaskError);
    await expect(Tokenizer.fromBytes(JSON.stringify(doc))).rejects.toThrow(stem(c.error));
  });

  it("refuses bytes that are not JSON text", async () => {
    await expect(Tokenizer.fromBytes(Uint8Array.of(0xff, 0x7b))).rejects.toThrow("tokenizer.json is not JSON text");
    await expect(Tokenizer.fromBytes("{not json")).rejects.toThrow("tokenizer.json is not JSON text");
    await expect(Tokenizer.fromBytes("[]")).rejects.toThrow("tokenizer.json: expected a JSON object");
  });
});

describe("encoding", () => {
  it.each(vectors.encode.map((c) => [c.name, c] as const))("%s: Python's ids, and back to the text", (_, c) => {
    expect(tokenizer.encode(c.text)).toEqual(c.ids);
    expect(tokenizer.decode(c.ids)).toBe(c.text);
  });

  it("gives Python's ids for every seeded random string", () => {
    const wrong = vectors.random.filter((c) => JSON.stringify(tokenizer.encode(c.text)) !== JSON.stringify(c.ids));
    expect(wrong.map((c) => c.text)).toEqual([]);
    for (const c of vectors.random) expect(tokenizer.decode(c.ids)).toBe(c.text);
    expect(vectors.random.length).toBeGreaterThanOrEqual(100);
  });

  it("reads the end-of-text token's text as the token, as Python does", () => {
    expect(tokenizer.encode(EOT)).toEqual([vectors.eot_id]);
  });

  it.each(vectors.refused_text.map((c) => [c.name, c] as const))("refuses text with %s", (_, c) => {
    const text = String.fromCharCode(...c.code_units);
    expect(() => tokenizer.encode(text)).toThrow(DataError);
    expect(() => tokenizer.encode(text)).toThrow(c.error);
  });
});

describe("decoding", () => {
  it.each(vectors.decode.map((c) => [c.name, c] as const))("%s: Python's text", (_, c) => {
    expect(tokenizer.decode(c.ids)).toBe(c.text);
    expect(tokenizer.decode(Int32Array.from(c.ids))).toBe(c.text);
  });

  it.each(vectors.refused_ids.map((c) => [JSON.stringify(c.ids), c] as const))("refuses %s", (_, c) => {
    expect(() => tokenizer.decode(c.ids)).toThrow(DataError);
    expect(() => tokenizer.decode(c.ids)).toThrow(c.error);
  });

  it("decodes nothing to the empty text and refuses ids that are not whole numbers", () => {
    expect(tokenizer.decode([])).toBe("");
    expect(() => tokenizer.decode([1.5])).toThrow("token id 1.5 is not in the vocabulary");
  });
});

describe("a task's tokenizer", () => {
  const task = (training: Record<string, unknown>): Task =>
    parseTask({
      id: "poems",
      display: { title: "Poems" },
      training: { data_type: "text", max_sequence_length: 8, ...training },
      model: { input_shape: [8], layers: [{ type: "dense", units: 2 }], loss: "mse" },
    });

  it("is the tokenizer.json whose digest and vocabulary the task names", async () => {
    const named = task({ vocab_size: vectors.vocab_size, tokenizer_digest: vectors.digest });
    expect((await tokenizerForTask(named, bytes)).digest).toBe(vectors.digest);
  });

  it("refuses other bytes, and a vocabulary that is not the task's", async () => {
    const other = task({ vocab_size: vectors.vocab_size, tokenizer_digest: "0".repeat(64) });
    await expect(tokenizerForTask(other, bytes)).rejects.toThrow("this tokenizer.json is not task 'poems''s");
    const edited = task({ vocab_size: vectors.vocab_size + 1, tokenizer_digest: vectors.digest });
    await expect(tokenizerForTask(edited, bytes)).rejects.toThrow(
      `task 'poems' says vocab_size ${vectors.vocab_size + 1} but its tokenizer has ${vectors.vocab_size} tokens`,
    );
  });
});
