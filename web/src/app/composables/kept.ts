// What a kept model is and how it came to be, in plain words: for the board, the finish step and
// the model library.
import type { TrainMode } from "./board";

/** Which model a session holds after training, and how it does on the validation samples. */
export interface KeptModel {
  /**
   * `final`: training ran to the end; `global`: the last shared model (the server's, or the one
   * combined with the peers of a decentralized task) before training was stopped or failed;
   * `local`: trained on this device only (alone, or stopped before any update was combined).
   */
  kind: "final" | "global" | "local";
  mode: TrainMode;
  /** Why training ended: it ran to the end, was stopped, too few others came in time, or it failed. */
  ended: "done" | "stopped" | "wait_expired" | "unreachable" | "failed";
  /** This browser's rounds behind the model (combined by the server for `global`), all runs together. */
  rounds: number;
  /** Together: rounds the shared model had been trained for in all (by everyone); null alone. */
  sharedRounds: number | null;
  /** The run continued a model trained before: one the server combined (`shared`) or this browser's own. */
  continued: "shared" | "own" | null;
  /** Accuracy (null for regression) and loss of this model on the validation samples. */
  accuracy: number | null;
  loss: number | null;
  /** Validation samples it was checked on (0: none were kept aside). */
  validationSamples: number;
}

/** "1 round", "3 rounds". */
export const roundsText = (n: number): string => `${n} round${n === 1 ? "" : "s"}`;

/** How the kept model was trained, in words (for the library and the finish step). */
export function howTrained(k: KeptModel): string {
  const thenAlone = k.mode === "alone" && k.continued === "shared" ? "with others, then alone" : null;
  if (k.kind === "final") return thenAlone ?? (k.mode === "together" ? "with others" : "alone");
  if (k.kind === "global") {
    return k.ended === "wait_expired"
      ? `with others (ended after ${roundsText(k.rounds)}: too few others came in time)`
      : `with others (stopped after ${roundsText(k.rounds)})`;
  }
  if (k.mode === "together") {
    return k.ended === "wait_expired"
      ? "alone (too few others came in time to combine updates)"
      : "alone (stopped before the updates were combined)";
  }
  return `${thenAlone ?? "alone"} (stopped early)`;
}

/** "(the shared model has been trained for 31 rounds in all)" when others trained it before. */
function sharedNote(k: KeptModel): string {
  return k.sharedRounds !== null && k.sharedRounds > k.rounds
    ? ` (the shared model has been trained for ${roundsText(k.sharedRounds)} in all, by everyone)`
    : "";
}

/**
 * Which model is kept after training ended early, in one or two sentences; `direct`: trained
 * directly with peers (a decentralized task), whose models never come from the server.
 */
export function keptText(k: KeptModel | null, total: number, direct = false): string {
  if (k === null) {
    return "The model had not learned anything yet, so there is no model to test or save. Start again when you are ready.";
  }
  if (k.kind === "global" && k.rounds === 0) {
    const from = direct ? "as your browser last received it from the other participants" : "as the server last sent it";
    return `You keep the shared model ${from} (trained for ${roundsText(k.sharedRounds ?? 0)} by others): your own update was not combined into it.`;
  }
  if (k.kind === "global") {
    const which = direct ? "the last model your browser combined with the other participants" : "the last model the server sent";
    return `You keep ${which}: everyone's updates combined over ${k.rounds} of ${roundsText(total)}${sharedNote(k)}.`;
  }
  if (k.mode === "together") {
    const none = direct ? "No updates had been combined yet" : "The server had not combined any updates yet";
    return `${none}: you keep the model your browser trained on your data alone.`;
  }
  return "You keep the model as it was when training stopped.";
}

