// "Try the model" for a text task: the person's settings checked and said back in words, and a
// continuation written piece by piece (`core/text/generate.ts`) with why it ended.
import type * as tf from "@tensorflow/tfjs";
import { type GenerateOptions, generate, modelLogits } from "../../core/text/generate";
import type { Tokenizer } from "../../core/text/tokenizer";

/** What the person typed in the settings fields (numbers may come as "" when a field is empty). */
export interface TrySettings {
  temperature: number | string;
  topK: number | string;
  maxTokens: number | string;
  /** Text to stop at ("" for none); `\n` stands for a new line. */
  stop: string;
}

export const DEFAULT_SETTINGS: TrySettings = { temperature: 0.8, topK: 40, maxTokens: 200, stop: "" };
/** Most tokens one continuation may have (a phone writes some tens of tokens a second). */
export const MAX_TOKENS = 1000;

/** Why a continuation ended. */
export type EndReason = "max_tokens" | "end_of_text" | "stop_string" | "stopped";

/** The checked settings as generation options, or the problem of each field in words. */
export function checkSettings(
  s: TrySettings,
  context: number,
): { options: GenerateOptions | null; errors: Partial<Record<keyof TrySettings, string>> } {
  const errors: Partial<Record<keyof TrySettings, string>> = {};
  const temperature = Number(s.temperature);
  const topK = Number(s.topK);
  const maxTokens = Number(s.maxTokens);
  if (s.temperature === "" || !Number.isFinite(temperature) || temperature < 0 || temperature > 5) {
    errors.temperature = "A number from 0 (always the likeliest word) to 5.";
  }
  if (s.topK === "" || !Number.isInteger(topK) || topK < 0) errors.topK = "A whole number; 0 means no limit.";
  if (s.maxTokens === "" || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_TOKENS) {
    errors.maxTokens = `A whole number from 1 to ${MAX_TOKENS}.`;
  }
  if (Object.keys(errors).length) return { options: null, errors };
  const stop = s.stop.replace(/\\n/g, "\n");
  return { options: { context, temperature, topK, maxTokens, stop: stop ? [stop] : [] }, errors };
}

/** Greedy (always the likeliest token), as the settings say. */
export function isGreedy(o: GenerateOptions): boolean {
  return o.temperature === 0 || o.topK === 1;
}

/** "Done: 200 tokens, the most you asked for." */
export function endText(reason: EndReason, tokens: number): string {
  const n = `${tokens} token${tokens === 1 ? "" : "s"}`;
  switch (reason) {
    case "max_tokens":
      return `Done: ${n}, the most you asked for.`;
    case "end_of_text":
      return `Done: the model ended the text after ${n}.`;
    case "stop_string":
      return `Done: it reached your stop text after ${n}.`;
    case "stopped":
      return `Stopped after ${n}.`;
  }
}

/**
 * Continue `prompt` with `model`, handing each piece of text to `onPiece` as soon as it is
 * certain; `shouldStop` is checked before each token. Resolves with the tokens made and why it
 * ended.
 */
export async function writeText(
  model: tf.LayersModel,
  tokenizer: Tokenizer,
  prompt: string,
  options: GenerateOptions,
  onPiece: (piece: string, tokens: number) => void,
  shouldStop: () => boolean,
): Promise<{ tokens: number; reason: EndReason }> {
  let tokens = 0;
  let ended = false;
  for await (const piece of generate(modelLogits(model), tokenizer, prompt, { ...options, shouldStop }, (id) => {
    if (id === tokenizer.eotId) ended = true;
    else tokens += 1;
  })) {
    onPiece(piece, tokens);
  }
  // only a stop string ends a continuation early otherwise
  const reason: EndReason = ended
    ? "end_of_text"
    : shouldStop()
      ? "stopped"
      : tokens < (options.maxTokens ?? 200)
        ? "stop_string"
        : "max_tokens";
  return { tokens, reason };
}
