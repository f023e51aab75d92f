// Connecting text files to a text task: each pick of .txt files (or a folder of them) becomes one
// batch of documents, read with the rules of docs/text.md (`decodeText`: UTF-8, no NUL byte, not
// empty, a size limit) and tokenised in this browser (in a worker: `encodeText`) with the task's
// tokenizer, fetched from the server and checked against the task's `tokenizer_digest`. A bad
// file becomes a problem naming it and the others still count. The windows are cut from every
// connected document at once, in name order, as `loadText` does.
import { DataError } from "../../core/data/dataset";
import { ignoredNote, keepBySuffix, relativePath } from "../../core/data/files";
import {
  MAX_FILE_BYTES,
  MAX_TOTAL_BYTES,
  TEXT_SUFFIXES,
  type TextWindows,
  byCodePoint,
  decodeText,
  makeWindows,
} from "../../core/data/text";
import type { Task } from "../../core/task";
import { encodeText } from "../../core/text/encodeText";
import { type Tokenizer, tokenizerForTask } from "../../core/text/tokenizer";
import { getTokenizerBytes } from "./api";
import { type Connection, type TextPart, add, describePick, withBusy } from "./connect";

/** Loaded tokenizers, by task and digest (a task's tokenizer never changes under its digest). */
const tokenizers = new Map<string, Promise<Tokenizer>>();

/** The task's tokenizer, fetched from the server once per page and checked against the task. */
export function taskTokenizer(task: Task): Promise<Tokenizer> {
  const key = `${task.id}\u0000${task.training.tokenizer_digest ?? ""}`;
  let found = tokenizers.get(key);
  if (!found) {
    found = getTokenizerBytes(task.id).then((bytes) => tokenizerForTask(task, bytes));
    found.catch(() => tokenizers.delete(key)); // a failed fetch is tried again next time
    tokenizers.set(key, found);
  }
  return found;
}

/** Bytes in words, as the reading rule says them: bytes, or MiB rounded up to a tenth. */
export function sizeText(n: number): string {
  return n >= 2 ** 20 ? `${(Math.ceil((n * 10) / 2 ** 20) / 10).toFixed(1)} MiB` : `${n} bytes`;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Every connected document, in the order the windows take them (by name, code point by code point). */
export function textDocuments(c: Connection): { name: string; ids: Int32Array }[] {
  return c.batches
    .flatMap((b) => b.text?.documents ?? [])
    .sort((a, b) => byCodePoint(a.name, b.name));
}

/** Bytes of the text files connected so far. */
function bytesConnected(c: Connection): number {
  return c.batches.reduce((n, b) => n + (b.text?.bytes ?? 0), 0);
}

/** What was found in a pick of text files: its documents and the files left out, with why. */
export interface TextFound {
  text: TextPart | null;
  problems: string[];
  notes: (string | null)[];
}

/**
 * Read and tokenise `files` (picked alone or in folders) under the reading rule, one at a time:
 * a file that breaks a rule is a problem, the others are kept. `known` names the documents
 * connected already (a file picked again is left out once); `usedBytes` counts their bytes.
 */
export async function readTextFiles(
  files: readonly File[],
  tokenizer: Tokenizer,
  known: ReadonlySet<string> = new Set(),
  usedBytes = 0,
  limits = { maxFileBytes: MAX_FILE_BYTES, maxTotalBytes: MAX_TOTAL_BYTES },
): Promise<TextFound> {
  const { kept, ignored } = keepBySuffix(files, TEXT_SUFFIXES);
  const named = kept.map((file) => ({ name: relativePath(file), file })).sort((a, b) => byCodePoint(a.name, b.name));
  const problems: string[] = [];
  const notes: (string | null)[] = [ignoredNote(ignored, "not .txt files")];
  const documents: TextPart["documents"] = [];
  const again: string[] = [];
  let tokens = 0;
  let bytes = 0;
  for (const { name, file } of named) {
    if (known.has(name) || documents.some((d) => d.name === name)) {
      again.push(name);
      continue;
    }
    if (file.size > limits.maxFileBytes) {
      problems.push(`${name} is ${sizeText(file.size)}; a text file may hold at most ${sizeText(limits.maxFileBytes)}: split it into smaller files`);
      continue;
    }
    if (usedBytes + bytes + file.size > limits.maxTotalBytes) {
      problems.push(
        `${name}: the text files would hold ${sizeText(usedBytes + bytes + file.size)} in all; at most ${sizeText(limits.maxTotalBytes)} can be used: connect fewer files`,
      );
      continue;
    }
    try {
      const text = decodeText(new Uint8Array(await file.arrayBuffer()), name);
      const ids = await encodeText(tokenizer, text); // off the page's thread: it stays responsive
      documents.push({ name, ids });
      tokens += ids.length;
      bytes += file.size;
    } catch (e) {
      problems.push(e instanceof DataError ? e.message : `${name}: cannot be read (${message(e)})`);
    }
  }
  if (again.length) notes.push(ignoredNote(again, "connected already"));
  if (!named.length && !ignored.length) problems.push("no text files: connect .txt files (UTF-8 plain text)");
  return { text: documents.length ? { documents, tokens, bytes, eotId: tokenizer.eotId } : null, problems, notes };
}

/** Text files of a text task (or folders of them), as one batch. */
export async function addTextFiles(c: Connection, task: Task, files: readonly File[]): Promise<void> {
  await withBusy(c, async () => {
    const title = describePick(files);
    let tokenizer: Tokenizer;
    try {
      tokenizer = await taskTokenizer(task);
    } catch (e) {
      add(c, title, [], { problems: [`The task's tokenizer could not be loaded, so the text cannot be read: ${message(e)}`] });
      return;
    }
    const known = new Set(textDocuments(c).map((d) => d.name));
    const found = await readTextFiles(files, tokenizer, known, bytesConnected(c));
    const read = files.filter((f) => found.text?.documents.some((d) => d.name === relativePath(f)));
    add(c, title, read, found);
  });
}

/** The training and validation windows of every connected document (the rule of docs/text.md). */
export function textWindowsOf(c: Connection, task: Task): TextWindows {
  const docs = textDocuments(c);
  const first = c.batches.find((b) => b.text)?.text;
  if (!first || !docs.length) throw new DataError("no text connected: connect .txt files first");
  return makeWindows(
    docs.map((d) => d.ids),
    first.eotId,
    { context: task.training.max_sequence_length ?? 0, validationSplit: task.training.validation_split },
    docs.map((d) => d.name),
  );
}

/** What is connected to a text task, in numbers. */
export interface TextSummary {
  documents: number;
  tokens: number;
  bytes: number;
  trainWindows: number;
  validationWindows: number;
  /** Why no training windows can be cut (too little text), or null. */
  problem: string | null;
}

/** Documents, tokens and windows connected to a text task. */
export function textSummary(c: Connection, task: Task): TextSummary {
  const docs = textDocuments(c);
  const out: TextSummary = {
    documents: docs.length,
    tokens: docs.reduce((n, d) => n + d.ids.length, 0),
    bytes: bytesConnected(c),
    trainWindows: 0,
    validationWindows: 0,
    problem: null,
  };
  if (!docs.length) return out;
  try {
    const w = textWindowsOf(c, task);
    const width = w.context + 1;
    out.trainWindows = w.train.length / width;
    out.validationWindows = w.validation.length / width;
  } catch (e) {
    out.problem = message(e);
  }
  return out;
}

/**
 * What follows "3 text files": "connected: 12,345 tokens (40.2 kB): 150 training windows of 64
 * tokens, and 30 kept aside to check progress."
 */
export function textSummaryText(s: TextSummary, context: number): string {
  const size = s.bytes < 2 ** 20 ? `${Math.max(1, Math.round(s.bytes / 1024))} kB` : sizeText(s.bytes);
  const tokens = `connected: ${s.tokens.toLocaleString("en")} tokens (${size} of text)`;
  if (s.problem) return `${tokens}.`;
  const aside = s.validationWindows ? `, and ${s.validationWindows.toLocaleString("en")} kept aside to check progress` : "";
  return `${tokens}: ${s.trainWindows.toLocaleString("en")} training window${s.trainWindows === 1 ? "" : "s"} of ${context} tokens${aside}.`;
}
