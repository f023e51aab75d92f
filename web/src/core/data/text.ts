/**
 * Text data in the browser: plain-text files read as documents, tokenised, and cut into training
 * windows — Python's `disco.data.text`, rule for rule and word for word
 * (tests/vectors/text_windows.json pins both; docs/text.md explains the rule):
 *
 * - reading: each file is one document, UTF-8 only; a leading byte-order mark is dropped and CRLF
 *   and lone CR become LF; an empty file, a NUL byte or bytes that are not UTF-8 are refused with
 *   the file's name and the byte's offset; at most `MAX_FILE_BYTES` a file, `MAX_TOTAL_BYTES` in all;
 * - order: documents by name (`relativePath`), code point by code point;
 * - split: the last `floor(n × validationSplit)` of a document's `n` tokens go to validation;
 * - streams: each part followed by the end-of-text token, parts joined in document order;
 * - windows: `context + 1` tokens every `stride` tokens (`stride = context` by default, always for
 *   validation), the incomplete tail dropped; windows may span documents.
 */
import { DataError } from "./dataset";
import { keepBySuffix, relativePath } from "./files";
import { encodeText } from "../text/encodeText";
import type { Tokenizer } from "../text/tokenizer";

/** Most bytes one text file may hold (16 MiB). */
export const MAX_FILE_BYTES = 16 * 2 ** 20;
/** Most bytes the text files of one participant may hold in all (64 MiB). */
export const MAX_TOTAL_BYTES = 64 * 2 ** 20;
/** Files read from a folder (a file picked alone is read whatever its suffix). */
export const TEXT_SUFFIXES = [".txt"] as const;

/** Training and validation windows of `context + 1` token ids each, back to back. */
export interface TextWindows {
  readonly train: Int32Array;
  readonly validation: Int32Array;
  /** Tokens the model reads at once: a window holds one more. */
  readonly context: number;
  /** The documents' names, in the order their tokens were taken. */
  readonly documents: readonly string[];
}

/** How windows are cut: `stride` defaults to `context`, `validationSplit` to 0.2. */
export interface WindowOptions {
  context: number;
  stride?: number | null;
  validationSplit?: number;
}

/** Window options and the reading limits. */
export interface TextOptions extends WindowOptions {
  maxFileBytes?: number;
  maxTotalBytes?: number;
}

/** Bytes in words, as Python says them: bytes, or MiB rounded up to a tenth. */
function size(n: number): string {
  return n >= 2 ** 20 ? `${(Math.ceil((n * 10) / 2 ** 20) / 10).toFixed(1)} MiB` : `${n} bytes`;
}

/** Offset of the first byte from `start` that does not begin a well-formed UTF-8 sequence, or -1. */
function firstInvalidUtf8(bytes: Uint8Array, start: number): number {
  let i = start;
  while (i < bytes.length) {
    const c = bytes[i] as number;
    if (c < 0x80) {
      i++;
      continue;
    }
    // the well-formed sequences (Unicode, table 3-7): extra bytes and the second byte's range
    let extra: number;
    let low = 0x80;
    let high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) extra = 1;
    else if (c === 0xe0) [extra, low] = [2, 0xa0];
    else if (c === 0xed) [extra, high] = [2, 0x9f];
    else if (c >= 0xe1 && c <= 0xef) extra = 2;
    else if (c === 0xf0) [extra, low] = [3, 0x90];
    else if (c === 0xf4) [extra, high] = [3, 0x8f];
    else if (c >= 0xf1 && c <= 0xf3) extra = 3;
    else return i;
    for (let k = 1; k <= extra; k++) {
      const d = bytes[i + k];
      if (d === undefined || d < (k === 1 ? low : 0x80) || d > (k === 1 ? high : 0xbf)) return i;
    }
    i += extra + 1;
  }
  return -1;
}

/** The text of one file's bytes under the reading rule, or `DataError` saying what is wrong. */
export function decodeText(bytes: Uint8Array, name: string): string {
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  if (bytes.length === start) throw new DataError(`${name} is empty`);
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new DataError(`${name} is not a plain-text file (a NUL byte at byte ${nul}): connect UTF-8 text`);
  const bad = firstInvalidUtf8(bytes, start);
  if (bad >= 0) {
    const hex = (bytes[bad] as number).toString(16).padStart(2, "0");
    throw new DataError(`${name} is not UTF-8 text (byte ${bad} is 0x${hex}): save it as UTF-8`);
  }
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes.subarray(start)).replace(/\r\n?/g, "\n");
}

/** Compare strings code point by code point (Python's order), not UTF-16 unit by unit. */
export function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i] as string).codePointAt(0)! - (y[i] as string).codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * `{ name, text }` of each document in order, read one file at a time (`decodeText`): the files
 * of a pick that Python's loader would read (`keepBySuffix`), sizes checked before any is read.
 */
export async function* iterTexts(
  files: readonly File[],
  limits: Pick<TextOptions, "maxFileBytes" | "maxTotalBytes"> = {},
): AsyncGenerator<{ name: string; text: string }> {
  const { maxFileBytes = MAX_FILE_BYTES, maxTotalBytes = MAX_TOTAL_BYTES } = limits;
  const named = keepBySuffix(files, TEXT_SUFFIXES)
    .kept.map((file) => ({ name: relativePath(file), file }))
    .sort((a, b) => byCodePoint(a.name, b.name));
  if (!named.length) throw new DataError("no text files: connect .txt files (UTF-8 plain text)");
  const total = named.reduce((sum, { file }) => sum + file.size, 0);
  if (total > maxTotalBytes) {
    throw new DataError(
      `the text files hold ${size(total)} in all; at most ${size(maxTotalBytes)} can be used: connect fewer files`,
    );
  }
  for (const { name, file } of named) {
    if (file.size > maxFileBytes) {
      throw new DataError(
        `${name} is ${size(file.size)}; a text file may hold at most ${size(maxFileBytes)}: split it into smaller files`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await file.arrayBuffer());
    } catch (error) {
      throw new DataError(`${name}: cannot be read (${(error as Error).message})`);
    }
    yield { name, text: decodeText(bytes, name) };
  }
}

/** Every `stream[i·stride .. i·stride + context]` that is whole, back to back. */
export function windows(stream: Int32Array, context: number, stride: number): Int32Array {
  const width = context + 1;
  if (stream.length < width) return new Int32Array(0);
  const count = Math.floor((stream.length - width) / stride) + 1;
  const out = new Int32Array(count * width);
  for (let k = 0; k < count; k++) out.set(stream.subarray(k * stride, k * stride + width), k * width);
  return out;
}

function checkSettings(context: number, stride: number, validationSplit: number): void {
  if (!Number.isInteger(context) || context < 1) {
    throw new DataError(`the context must be a whole number of tokens, at least 1; got ${context}`);
  }
  if (!Number.isInteger(stride) || stride < 1 || stride > context) {
    throw new DataError(`the stride must be a whole number from 1 to the context (${context}); got ${stride}`);
  }
  if (!(validationSplit >= 0 && validationSplit < 1)) {
    throw new DataError("validation_split must be at least 0 and less than 1");
  }
}

function concat(parts: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The training and validation windows of tokenised documents, in order (the module's rule). */
export function makeWindows(
  documents: readonly ArrayLike<number>[],
  eotId: number,
  options: WindowOptions,
  names: readonly string[] = [],
): TextWindows {
  const { context, validationSplit = 0.2 } = options;
  const stride = options.stride ?? context;
  checkSettings(context, stride, validationSplit);
  const eot = Int32Array.of(eotId);
  const head: Int32Array[] = [];
  const tail: Int32Array[] = [];
  for (const doc of documents) {
    const ids = Int32Array.from(doc);
    const held = Math.floor(ids.length * validationSplit);
    const cut = ids.length - held;
    if (cut) head.push(ids.subarray(0, cut), eot);
    if (held) tail.push(ids.subarray(cut), eot);
  }
  const trainStream = concat(head);
  const train = windows(trainStream, context, stride);
  if (!train.length) {
    throw new DataError(
      `the text gives ${trainStream.length} training tokens; a training window needs ${context + 1}: connect more text`,
    );
  }
  return { train, validation: windows(concat(tail), context, context), context, documents: [...names] };
}

/** Text files (picked alone or in folders) as training windows, with `tokenizer`. */
export async function loadText(files: readonly File[], tokenizer: Tokenizer, options: TextOptions): Promise<TextWindows> {
  checkSettings(options.context, options.stride ?? options.context, options.validationSplit ?? 0.2);
  const names: string[] = [];
  const documents: Int32Array[] = [];
  for await (const { name, text } of iterTexts(files, options)) {
    names.push(name); // text read from UTF-8 is valid Unicode: encoding cannot fail
    documents.push(await encodeText(tokenizer, text));
  }
  return makeWindows(documents, tokenizer.eotId, options, names);
}
