/**
 * A text task's tokenizer in the browser: the task's tokenizer.json (byte-level BPE, trained in
 * Python by `disco.text.train_tokenizer`), loaded with `@huggingface/tokenizers` from its bytes —
 * never fetched from a model hub. It gives the ids Python's `disco.text.Tokenizer` gives
 * (tests/vectors/tokenizer.json pins both) and refuses, with Python's words, a tokenizer.json of
 * another shape (`checkShape`), text that is not valid Unicode, and ids outside the vocabulary.
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { DataError } from "../data/dataset";
import type { Task } from "../task";
import { TaskError } from "../taskError";
import { MAX_VOCAB_SIZE, MIN_VOCAB_SIZE } from "../textTask";
import { sha256Hex } from "../weights";

/** The end-of-text token: it ends every piece of text in the training windows (docs/text.md). */
export const EOT = "<|endoftext|>";
/** Tokens every tokenizer has besides its merges: one per byte. */
const BYTES = 256;

/** (field path, the only values accepted): what makes a tokenizer.json one disco can use. */
const SHAPE: readonly (readonly [string, readonly (string | boolean | null)[]])[] = [
  ["model.type", ["BPE"]],
  ["model.dropout", [null]],
  ["model.unk_token", [null]],
  ["model.continuing_subword_prefix", [null]],
  ["model.end_of_word_suffix", [null]],
  ["model.byte_fallback", [false]],
  ["model.ignore_merges", [false]],
  ["normalizer", [null]],
  ["pre_tokenizer.type", ["ByteLevel"]],
  ["pre_tokenizer.add_prefix_space", [false]],
  ["pre_tokenizer.use_regex", [true]],
  ["post_processor", [null]],
  ["decoder.type", ["ByteLevel"]],
  ["truncation", [null]],
  ["padding", [null]],
];

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function at(doc: unknown, path: string): unknown {
  let value = doc;
  for (const key of path.split(".")) value = isObject(value) ? value[key] : undefined;
  return value === undefined ? null : value; // a missing key reads as null, as in Python
}

/** GPT-2's byte-level alphabet: the character that stands for each byte. */
function byteAlphabet(): string[] {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < BYTES; b++) {
    const kept = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCodePoint(kept ? b : 256 + extra++));
  }
  return chars;
}

/**
 * Refuse (`TaskError`) a decoded tokenizer.json that is not byte-level BPE as disco trains it;
 * return its vocabulary size. Python's `check_shape` applies the same rules.
 */
export function checkShape(doc: unknown): number {
  if (!isObject(doc)) throw new TaskError("tokenizer.json: expected a JSON object");
  for (const [path, allowed] of SHAPE) {
    const value = at(doc, path);
    if (!allowed.includes(value as string | boolean | null)) {
      const want = allowed.map((a) => JSON.stringify(a)).join(" or ");
      throw new TaskError(
        `tokenizer.json: ${path} must be ${want} (it is ${JSON.stringify(value)}); disco reads ` +
          "byte-level BPE tokenizers as disco.text.train_tokenizer makes them",
      );
    }
  }
  const vocab = at(doc, "model.vocab");
  if (!isObject(vocab) || !Object.values(vocab).every((i) => Number.isInteger(i))) {
    throw new TaskError("tokenizer.json: model.vocab must map tokens to whole numbers");
  }
  const ids = (Object.values(vocab) as number[]).sort((a, b) => a - b);
  const n = ids.length;
  if (!ids.every((id, i) => id === i)) {
    throw new TaskError(`tokenizer.json: the vocabulary's ids must be 0 to ${n - 1}, each once`);
  }
  if (n < MIN_VOCAB_SIZE || n > MAX_VOCAB_SIZE) {
    throw new TaskError(
      `tokenizer.json: its vocabulary holds ${n} tokens; a text task's holds ${MIN_VOCAB_SIZE} to ${MAX_VOCAB_SIZE}`,
    );
  }
  const missing = byteAlphabet().filter((c) => !(c in vocab)).length;
  if (missing) throw new TaskError(`tokenizer.json: ${missing} of the ${BYTES} bytes have no token`);
  const added = doc["added_tokens"];
  const eot = Array.isArray(added) ? added.filter((t) => isObject(t) && t["content"] === EOT && t["special"]) : [];
  if (eot.length !== 1 || (eot[0] as Json)["id"] !== vocab[EOT]) {
    throw new TaskError(`tokenizer.json: it needs the special token ${EOT} in its vocabulary`);
  }
  return n;
}

/** Refuse (`DataError`) text that is not valid Unicode: a lone surrogate has no UTF-8 bytes. */
export function checkText(text: string): void {
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(text);
  if (lone === null) return;
  const character = [...text.slice(0, lone.index)].length; // counted in code points, as Python does
  const code = lone[0].charCodeAt(0).toString(16).toUpperCase();
  throw new DataError(`the text is not valid Unicode: a lone surrogate (U+${code}) at character ${character}`);
}

/** A byte-level BPE tokenizer read from the exact bytes of its tokenizer.json. */
export class Tokenizer {
  private constructor(
    private readonly hf: HfTokenizer,
    /** The tokenizer.json bytes, exactly as read. */
    readonly bytes: Uint8Array,
    /** SHA-256 of `bytes`, lowercase hex: the task's `tokenizer_digest`. */
    readonly digest: string,
    /** Tokens in the vocabulary: ids are 0 to `vocabSize - 1`. */
    readonly vocabSize: number,
    /** The id of `EOT`. */
    readonly eotId: number,
  ) {}

  /** Check and load a tokenizer.json from its bytes (or text); `TaskError` if unusable. */
  static async fromBytes(data: Uint8Array | string): Promise<Tokenizer> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data.slice(); // ours to keep
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (error) {
      throw new TaskError(`tokenizer.json is not JSON text: ${(error as Error).message}`);
    }
    const vocabSize = checkShape(doc);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(doc as object, { clean_up_tokenization_spaces: false });
    } catch (error) {
      throw new TaskError(`tokenizer.json cannot be loaded: ${(error as Error).message}`);
    }
    const eotId = hf.token_to_id(EOT) as number; // checkShape found it
    return new Tokenizer(hf, bytes, await sha256Hex(bytes), vocabSize, eotId);
  }

  /** Token ids of `text`, as is (no normalisation). The text `<|endoftext|>` is `EOT`. */
  encode(text: string): number[] {
    checkText(text);
    return text === "" ? [] : this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** The text of `ids`; bytes that are not UTF-8 read as U+FFFD, `EOT` as its text. */
  decode(ids: ArrayLike<number>): string {
    const plain = Array.from(ids);
    for (const i of plain) {
      if (!Number.isInteger(i) || i < 0 || i >= this.vocabSize) {
        throw new DataError(`token id ${i} is not in the vocabulary (0 to ${this.vocabSize - 1})`);
      }
    }
    if (!plain.length) return "";
    return this.hf.decode(plain, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/**
 * `task`'s tokenizer from the bytes of its tokenizer.json (the server will serve them): refused
 * (`TaskError`) unless they are the bytes the task names and hold its vocabulary.
 */
export async function tokenizerForTask(task: Task, data: Uint8Array | string): Promise<Tokenizer> {
  const tokenizer = await Tokenizer.fromBytes(data);
  const t = task.training;
  if (t.tokenizer_digest !== tokenizer.digest) {
    throw new TaskError(
      `this tokenizer.json is not task '${task.id}''s: its SHA-256 is ${tokenizer.digest.slice(0, 12)}…, ` +
        `the task names ${(t.tokenizer_digest ?? "none").slice(0, 12)}…`,
    );
  }
  if (t.vocab_size !== tokenizer.vocabSize) {
    throw new TaskError(
      `task '${task.id}' says vocab_size ${t.vocab_size} but its tokenizer has ${tokenizer.vocabSize} tokens`,
    );
  }
  return tokenizer;
}
