/**
 * The web app's text data step (`composables/textData.ts`) and the "Try the model" settings
 * (`composables/tryText.ts`): bad files listed with their reason and the others kept, a file
 * picked twice kept once, the size limits, the windows cut from every connected document as
 * `loadText` cuts them, and the summary in words.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadText } from "../src/core/data/text";
import type { Task } from "../src/core/task";
import { Tokenizer } from "../src/core/text/tokenizer";
import { type Connection, add, newConnection, sampleCount } from "../src/app/composables/connect";
import { readTextFiles, textDocuments, textSummary, textSummaryText, textWindowsOf } from "../src/app/composables/textData";
import { checkSettings, endText, isGreedy } from "../src/app/composables/tryText";

const VECTORS = new URL("../../tests/vectors/", import.meta.url);
let tokenizer: Tokenizer;

beforeAll(async () => {
  tokenizer = await Tokenizer.fromBytes(new Uint8Array(readFileSync(new URL("text_tokenizer.json", VECTORS))));
});

function inFolder(path: string, content: string | Uint8Array): File {
  const file = new File([content as BlobPart], path.split("/").pop() as string);
  Object.defineProperty(file, "webkitRelativePath", { value: path });
  return file;
}

/** What the text step reads of a task: its context and validation split. */
function textTask(context = 4): Task {
  return { id: "t", training: { data_type: "text", max_sequence_length: context, validation_split: 0.2 } } as unknown as Task;
}

const SONNET = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n";

describe("reading text files", () => {
  it("keeps the good files and lists each bad one with its reason", async () => {
    const files = [
      inFolder("plays/b.txt", SONNET),
      inFolder("plays/a.txt", "Rough winds do shake the darling buds of May,\r\n"),
      inFolder("plays/empty.txt", ""),
      inFolder("plays/latin1.txt", Uint8Array.of(0x63, 0x61, 0x66, 0xe9)),
      inFolder("plays/picture.txt", Uint8Array.of(0x89, 0x50, 0x00, 0x47)),
      inFolder("plays/cover.png", "not read"),
    ];
    const found = await readTextFiles(files, tokenizer);
    expect(found.text?.documents.map((d) => d.name)).toEqual(["plays/a.txt", "plays/b.txt"]);
    expect(found.text?.documents[0]?.ids).toEqual(Int32Array.from(tokenizer.encode("Rough winds do shake the darling buds of May,\n")));
    expect(found.problems).toEqual([
      "plays/empty.txt is empty",
      "plays/latin1.txt is not UTF-8 text (byte 3 is 0xe9): save it as UTF-8",
      "plays/picture.txt is not a plain-text file (a NUL byte at byte 2): connect UTF-8 text",
    ]);
    expect(found.notes).toContain("Not read, not .txt files: plays/cover.png");
    expect(found.text?.tokens).toBe(found.text!.documents.reduce((n, d) => n + d.ids.length, 0));
  });

  it("leaves out a file connected already, and files past the size limits", async () => {
    const again = await readTextFiles([inFolder("p/a.txt", SONNET)], tokenizer, new Set(["p/a.txt"]));
    expect(again.text).toBeNull();
    expect(again.notes).toContain("Not read, connected already: p/a.txt");
    const limits = { maxFileBytes: 50, maxTotalBytes: 100 };
    const sized = await readTextFiles(
      [inFolder("p/big.txt", "x".repeat(60)), inFolder("p/c.txt", "y".repeat(40)), inFolder("p/d.txt", "z".repeat(40))],
      tokenizer,
      new Set(),
      30,
      limits,
    );
    expect(sized.text?.documents.map((d) => d.name)).toEqual(["p/c.txt"]);
    expect(sized.problems).toEqual([
      "p/big.txt is 60 bytes; a text file may hold at most 50 bytes: split it into smaller files",
      "p/d.txt: the text files would hold 110 bytes in all; at most 100 bytes can be used: connect fewer files",
    ]);
  });

  it("says so when nothing is text", async () => {
    const found = await readTextFiles([], tokenizer);
    expect(found.problems).toEqual(["no text files: connect .txt files (UTF-8 plain text)"]);
  });
});

describe("windows of the connected text", () => {
  async function connect(c: Connection, files: File[]): Promise<void> {
    const found = await readTextFiles(files, tokenizer, new Set(textDocuments(c).map((d) => d.name)));
    add(c, "pick", files, found);
  }

  it("cuts the windows of every pick together, in name order, as loadText does", async () => {
    const c = newConnection();
    const task = textTask(4);
    const b = inFolder("plays/b.txt", SONNET.repeat(3));
    const a = inFolder("plays/a.txt", SONNET.toUpperCase().repeat(2));
    await connect(c, [b]);
    await connect(c, [a]);
    expect(sampleCount(c)).toBe(2);
    const w = textWindowsOf(c, task);
    const direct = await loadText([b, a], tokenizer, { context: 4, validationSplit: 0.2 });
    expect(w.documents).toEqual(["plays/a.txt", "plays/b.txt"]);
    expect(w.train).toEqual(direct.train);
    expect(w.validation).toEqual(direct.validation);
    const s = textSummary(c, task);
    expect(s).toMatchObject({ documents: 2, trainWindows: w.train.length / 5, validationWindows: w.validation.length / 5, problem: null });
    expect(textSummaryText(s, 4)).toMatch(
      new RegExp(`^connected: ${s.tokens} tokens \\(1 kB of text\\): ${s.trainWindows} training windows of 4 tokens, and ${s.validationWindows} kept aside to check progress\\.$`),
    );
  });

  it("says when there is too little text for one window", async () => {
    const c = newConnection();
    await connect(c, [inFolder("p/a.txt", "Hi")]);
    const s = textSummary(c, textTask(64));
    expect(s.trainWindows).toBe(0);
    expect(s.problem).toMatch(/^the text gives \d+ training tokens; a training window needs 65: connect more text$/);
    expect(textSummaryText(s, 64)).toMatch(/^connected: \d+ tokens \(1 kB of text\)\.$/);
  });

  it("refuses to cut windows with nothing connected", () => {
    expect(() => textWindowsOf(newConnection(), textTask())).toThrow("no text connected: connect .txt files first");
  });
});

describe("try settings", () => {
  it("turns the fields into generation options", () => {
    const { options, errors } = checkSettings({ temperature: 0.8, topK: 40, maxTokens: 200, stop: "\\n\\n" }, 64);
    expect(errors).toEqual({});
    expect(options).toEqual({ context: 64, temperature: 0.8, topK: 40, maxTokens: 200, stop: ["\n\n"] });
    expect(isGreedy(options!)).toBe(false);
    expect(isGreedy(checkSettings({ temperature: 0, topK: 40, maxTokens: 5, stop: "" }, 8).options!)).toBe(true);
    expect(isGreedy(checkSettings({ temperature: 1, topK: 1, maxTokens: 5, stop: "" }, 8).options!)).toBe(true);
  });

  it("says what is wrong with each field", () => {
    const { options, errors } = checkSettings({ temperature: -1, topK: 2.5, maxTokens: 0, stop: "" }, 64);
    expect(options).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(["maxTokens", "temperature", "topK"]);
    expect(checkSettings({ temperature: "", topK: 1, maxTokens: 1001, stop: "" }, 64).errors.maxTokens).toBe("A whole number from 1 to 1000.");
  });

  it("says why the text ended", () => {
    expect(endText("max_tokens", 200)).toBe("Done: 200 tokens, the most you asked for.");
    expect(endText("end_of_text", 1)).toBe("Done: the model ended the text after 1 token.");
    expect(endText("stopped", 7)).toBe("Stopped after 7 tokens.");
  });
});
