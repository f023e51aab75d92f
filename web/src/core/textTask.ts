/**
 * A text task's settings (Python's `TrainingInfo` for `data_type: "text"`, docs/text.md): the
 * bounds of its context and vocabulary, the form of its tokenizer's digest, and the check
 * `parseTask` runs on a text task. The bounds mirror Python's (tests/vectors/shared_lists.json).
 */
import type { ModelSpec, TrainingInfo } from "./task";
import { check } from "./taskError";

/** Longest context a text task may have, in tokens. */
export const MAX_SEQUENCE_LENGTH = 4096;
/** Smallest vocabulary of a text task: a token per byte and the end-of-text token. */
export const MIN_VOCAB_SIZE = 257;
/** Largest vocabulary of a text task. */
export const MAX_VOCAB_SIZE = 65_536;
/** A text task's `tokenizer_digest`: the SHA-256 of its tokenizer.json, lowercase hex. */
export const TOKENIZER_DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/**
 * A text task names its context, vocabulary and tokenizer (Python's `Task._check_text`), within
 * Python's bounds, and its model reads the context.
 */
export function checkText(t: TrainingInfo, model: ModelSpec): void {
  const within = (v: unknown, low: number, high: number): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= low && v <= high;
  const context = t.max_sequence_length;
  check(
    within(context, 1, MAX_SEQUENCE_LENGTH),
    `training.max_sequence_length: a text task needs its context, 1 to ${MAX_SEQUENCE_LENGTH} tokens`,
  );
  check(
    within(t.vocab_size, MIN_VOCAB_SIZE, MAX_VOCAB_SIZE),
    `training.vocab_size: a text task needs its vocabulary size, ${MIN_VOCAB_SIZE} to ${MAX_VOCAB_SIZE}`,
  );
  check(
    typeof t.tokenizer_digest === "string" && TOKENIZER_DIGEST_PATTERN.test(t.tokenizer_digest),
    "training.tokenizer_digest: a text task needs the SHA-256 of its tokenizer.json",
  );
  check(
    model.input_shape.length === 1 && model.input_shape[0] === context,
    `model.input_shape: the model must read the task's context of ${context} tokens`,
  );
  const first = model.layers[0] as { type?: unknown; vocab_size?: unknown } | undefined;
  check(
    first?.type !== "token_embedding" || first.vocab_size === t.vocab_size,
    `model.layers.0.vocab_size: the model's token_embedding has ${String(first?.vocab_size)} tokens but the task's tokenizer has ${String(t.vocab_size)}: they must be equal`,
  );
}
