/**
 * Text generation in the browser: a trained language model continues a prompt, token by token,
 * as a stream of pieces of text — Python's `disco.text.generate`, rule for rule (docs/text.md,
 * "Generation"):
 *
 * - the prompt is encoded after the end-of-text token (a prompt starts a new text, as every
 *   document does in the training windows); the model sees the last `context` tokens;
 * - `temperature` 0 (or `topK` 1) takes the likeliest token (ties: the lowest id); otherwise the
 *   scores are divided by the temperature, all but the `topK` highest dropped (0 or null: none;
 *   ties at the cut kept) and a token drawn with a generator seeded by `seed`;
 * - it stops after `maxTokens` tokens, at the end-of-text token (not shown), before the first
 *   `stop` string in the generated text, or when `shouldStop` says so;
 * - a piece is given as soon as it is certain: a character split across tokens waits for its
 *   last byte, and text that may be the start of a stop string waits until it is not.
 *
 * Greedy decoding gives the ids Python gives with the same weights (tests/vectors/
 * text_generation.json pins both). Sampled text is reproducible within each language with the
 * same seed, but the two languages draw from different generators, so it differs between them.
 */
import * as tf from "@tensorflow/tfjs";
import { DataError, seededRandom } from "../data/dataset";
import type { Tokenizer } from "./tokenizer";

/** Token ids (at most the context) → one score per vocabulary token for the next token. */
export type LogitsFn = (ids: readonly number[]) => Promise<ArrayLike<number>>;

/** How a continuation is made (Python's keyword arguments, in camel case). */
export interface GenerateOptions {
  /** Tokens the model reads at once: the task's `max_sequence_length`. */
  context: number;
  maxTokens?: number;
  temperature?: number;
  topK?: number | null;
  stop?: readonly string[];
  seed?: number;
  /** Checked before each token: true ends the text there (a Stop button). */
  shouldStop?: () => boolean;
}

const REPLACEMENT = "\ufffd";

/** The logits function of a language model built by `buildModel` (ids → the last position's logits). */
export function modelLogits(model: tf.LayersModel): LogitsFn {
  return async (ids) => {
    const last = tf.tidy(() => {
      const x = tf.tensor2d(Int32Array.from(ids), [1, ids.length], "int32");
      const out = model.apply(x, { training: false }) as tf.Tensor; // (1, T, V)
      const v = out.shape[2] as number;
      return out.slice([0, ids.length - 1, 0], [1, 1, v]).reshape([v]);
    });
    try {
      return (await last.data()) as Float32Array;
    } finally {
      last.dispose();
    }
  };
}

function check(maxTokens: number, temperature: number, topK: number | null, context: number, stop: readonly string[]): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new DataError(`max_tokens must be a whole number, at least 0; got ${maxTokens}`);
  }
  if (!(temperature >= 0 && Number.isFinite(temperature))) {
    throw new DataError(`temperature must be 0 (always the likeliest token) or more; got ${temperature}`);
  }
  if (topK !== null && (!Number.isInteger(topK) || topK < 0)) {
    throw new DataError(`top_k must be a whole number (0: no limit); got ${topK}`);
  }
  if (!Number.isInteger(context) || context < 1) throw new DataError(`the context must be at least 1 token; got ${context}`);
  if (stop.some((s) => !s)) throw new DataError("a stop string cannot be empty");
}

/** The next token id from the scores (the module's rule); `random` draws uniform floats in [0, 1). */
export function chooseToken(
  scores: ArrayLike<number>,
  temperature: number,
  topK: number | null,
  random: () => number,
): number {
  const n = scores.length;
  let best = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i] as number;
    if (!Number.isFinite(s)) throw new DataError("the model gave scores that are not finite numbers");
    if (s > (scores[best] as number)) best = i;
  }
  if (temperature === 0 || topK === 1) return best;
  const scaled = Float64Array.from(scores, (s) => s / temperature);
  if (topK && topK < n) {
    const cut = Float64Array.from(scaled).sort()[n - topK] as number;
    for (let i = 0; i < n; i++) if ((scaled[i] as number) < cut) scaled[i] = -Infinity;
  }
  const top = scaled[best] as number;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    scaled[i] = Math.exp((scaled[i] as number) - top);
    sum += scaled[i] as number;
  }
  let r = random() * sum;
  for (let i = 0; i < n; i++) {
    r -= scaled[i] as number;
    if (r < 0) return i;
  }
  return best; // rounding left a sliver at the end: the likeliest token
}

/**
 * How many UTF-16 units at the end of `text` must wait: the start of a stop string, or a
 * character whose bytes are not all there yet (U+FFFD at the end).
 */
export function heldBack(text: string, stop: readonly string[]): number {
  let hold = 0;
  for (const s of stop) {
    const points = [...s];
    for (let n = points.length - 1; n > 0; n--) {
      const prefix = points.slice(0, n).join("");
      if (prefix.length <= hold) break;
      if (text.endsWith(prefix)) {
        hold = prefix.length;
        break;
      }
    }
  }
  let replaced = 0;
  while (replaced < text.length && text[text.length - 1 - replaced] === REPLACEMENT) replaced++;
  return Math.max(hold, replaced);
}

/** The ids a continuation starts from: the end-of-text token, then the prompt's. */
export function promptIds(tokenizer: Tokenizer, prompt: string): number[] {
  return [tokenizer.eotId, ...tokenizer.encode(prompt)];
}

/**
 * Continue `prompt` with the model `logits` (`modelLogits(model)`), yielding the new text piece
 * by piece (the module's rules); the pieces joined are the whole continuation. `onToken`, when
 * given, sees each id chosen (the end-of-text token included).
 */
export async function* generate(
  logits: LogitsFn,
  tokenizer: Tokenizer,
  prompt: string,
  options: GenerateOptions,
  onToken: (id: number) => void = () => {},
): AsyncGenerator<string> {
  const { context, maxTokens = 200, temperature = 0.8, seed = 0, shouldStop = () => false } = options;
  const topK = options.topK === undefined ? 40 : options.topK;
  const stop = options.stop ?? [];
  check(maxTokens, temperature, topK, context, stop);
  const ids = promptIds(tokenizer, prompt);
  const random = seededRandom(seed);
  const made: number[] = [];
  let sent = 0; // UTF-16 units of the generated text already yielded
  let text = "";
  for (let k = 0; k < maxTokens && !shouldStop(); k++) {
    const next = chooseToken(await logits(ids.slice(-context)), temperature, topK, random);
    if (next < 0 || next >= tokenizer.vocabSize) throw new DataError(`the model chose token ${next}, outside the vocabulary`);
    onToken(next);
    if (next === tokenizer.eotId) break;
    ids.push(next);
    made.push(next);
    text = tokenizer.decode(made);
    const hits = stop
      .map((s) => text.indexOf(s, Math.max(0, sent - s.length)))
      .filter((i) => i >= 0);
    if (hits.length) {
      const end = Math.min(...hits);
      if (end > sent) yield text.slice(sent, end);
      return;
    }
    const ready = text.length - heldBack(text, stop);
    if (ready > sent) {
      yield text.slice(sent, ready);
      sent = ready;
    }
  }
  if (text.length > sent) yield text.slice(sent); // what waited is final (a half character stays U+FFFD)
}
