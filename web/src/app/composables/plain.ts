// Plain-language descriptions of a task for people who are not machine-learning experts.
import { epsilon, noiseStd } from "../../core/privacy";
import { rounds as plannedRounds } from "../../core/schedule";
import type { Task } from "../../core/task";
import { peerRefusal } from "../../core/decentralized/rules";

/** What kind of data the task uses, in words. */
export function dataTypeText(task: Task): string {
  const t = task.training;
  if (t.data_type === "image") {
    const colour = t.channels === 3 ? "colour" : "greyscale";
    return `Images (${colour}, ${t.image_width}×${t.image_height} pixels)`;
  }
  if (t.data_type === "tabular") return `Table (CSV file, ${t.input_columns.length} columns used)`;
  return "Text (plain-text .txt files, UTF-8)";
}

/** Short label of the data type, with the picture size or the number of columns. */
export function dataTypeShort(task: Task): string {
  const t = task.training;
  if (t.data_type === "image") {
    return `Images, ${t.image_width}×${t.image_height} ${t.channels === 3 ? "colour" : "grey"}`;
  }
  if (t.data_type === "tabular") {
    const n = t.input_columns.length;
    return `Table (CSV), ${n} column${n === 1 ? "" : "s"}`;
  }
  return "Text (.txt files)";
}

/** How participants collaborate, in words. */
export function schemeText(task: Task): string {
  switch (task.training.scheme) {
    case "federated":
      return "Together, through the server: it combines everyone's model updates";
    case "decentralized":
      return "Together, directly between participants: each one's browser (or disco train) sends its updates straight to the others and combines theirs; the server only introduces them";
    default:
      return "Alone: nothing is shared";
  }
}

/** What the task page says of a decentralized task's models. */
export const DIRECT_NOTE =
  "The server keeps no model of this task after the initial one: models go directly between participants.";

/**
 * Whether this browser can train `task` together with others (federated, with or without secure
 * aggregation, or between peers with the mean rule).
 */
export function canTrainTogether(task: Task): boolean {
  const t = task.training;
  return t.scheme === "federated" || (t.scheme === "decentralized" && peerRefusal(t.aggregation) === null);
}

/** Why this browser cannot train `task` with others, as a sentence; null when it can (or it trains alone by design). */
export function togetherRefusal(task: Task): string | null {
  if (task.training.scheme !== "decentralized") return null;
  const why = peerRefusal(task.training.aggregation);
  return why === null ? null : `${why.charAt(0).toUpperCase()}${why.slice(1)}.`;
}

/** Short label of the scheme (the task header's and the task list's badge). */
export function schemeShort(task: Task): string {
  return {
    federated: "Together, through the server",
    decentralized: "Together, directly between participants",
    local: "Alone",
  }[task.training.scheme];
}

/**
 * What to know of how the task is trained, beyond its scheme: for a decentralized task, that the
 * server keeps no model after the initial one — or, when it combines updates with a rule the
 * browser cannot run yet, that this browser can only train it alone. Null otherwise.
 */
export function schemeNote(task: Task): string | null {
  if (task.training.scheme !== "decentralized") return null;
  const refusal = togetherRefusal(task);
  return refusal === null ? DIRECT_NOTE : `${refusal} Here you can only train alone for now.`;
}

/** What protects a participant's updates, in one plain sentence. */
export function privacyText(task: Task): string {
  const p = task.training.privacy;
  if (task.training.secure_aggregation) {
    const noise = p ? (p.noise_multiplier > 0 ? " They are also clipped and blurred with noise." : " They are also clipped.") : "";
    const who = task.training.scheme === "decentralized" ? "Each participant adds" : "The server adds";
    return `${who} up everyone's updates without seeing any one of them: it learns only the total.${noise}`;
  }
  if (!p) return "Your data stays on your device; no extra privacy protection on the shared updates.";
  if (p.noise_multiplier > 0) {
    return "Your updates are clipped and blurred with noise before they leave your device.";
  }
  return "Your updates are clipped (their size is limited) before they leave your device.";
}

/** The privacy setting explained, with its numbers, for the task description. */
export function privacyDetails(task: Task): string {
  const p = task.training.privacy;
  if (!p) {
    return "Only model updates are shared, never your files. No clipping or noise is added to them, so a very determined server could learn something about your data from them.";
  }
  const clipped = `Each update is scaled down so its size is at most ${p.clipping_radius}.`;
  if (!(p.noise_multiplier > 0)) {
    return `${clipped} No noise is added: this limits how much any one participant can change the model, but gives no formal privacy guarantee.`;
  }
  const rounds = roundsOf(task);
  const eps = epsilon(p, rounds);
  const strength = eps <= 1 ? "strong" : eps <= 10 ? "moderate" : "weak";
  return (
    `${clipped} Then random noise (standard deviation ${noiseStd(p).toPrecision(3)}) is added to it. ` +
    `Over the task's ${rounds} round${rounds === 1 ? "" : "s"}, everything you share is ` +
    `differentially private with ε = ${eps.toPrecision(3)} (δ = 10⁻⁵) for all of your data together: ` +
    `a ${strength} guarantee (smaller ε is more private; below 1 is strong). ` +
    "With this protection your browser sends no scores or sample counts, only the protected update. " +
    "The figure is for one run: training again on the same data adds to it."
  );
}

/** Short label of the privacy setting, after "Privacy: " (badges of the list and the header). */
export function privacyShort(task: Task): string {
  const p = task.training.privacy;
  const base = !p ? "files stay on your device" : p.noise_multiplier > 0 ? "updates clipped and noised" : "updates clipped";
  return task.training.secure_aggregation ? `${p ? base : "updates"} added up unseen` : base;
}

/**
 * What one participant's training takes, for the task list: "5 rounds of sharing each time
 * you take part" (the shared model itself goes on across everyone's sessions), or the epochs
 * of training alone.
 */
export function planText(task: Task): string {
  const t = task.training;
  if (t.scheme === "local") return `${t.epochs} epoch${t.epochs === 1 ? "" : "s"} on your own data`;
  const n = roundsOf(task);
  return `${n} round${n === 1 ? "" : "s"} of sharing each time you take part`;
}

/** How far the shared model has come on the server: "Not trained yet", "Trained for 31 rounds so far". */
export function sharedModelText(round: number): string {
  return round === 0 ? "Not trained yet" : `Trained for ${round} round${round === 1 ? "" : "s"} so far`;
}

/** Communication rounds: epochs / epochs per round rounded up, times rounds per epoch. */
export function roundsOf(task: Task): number {
  return plannedRounds(task.training);
}

/** The input column names, shortened when there are many ("a, b, … z (30 columns)"). */
export function columnsText(task: Task): string {
  const names = task.training.input_columns.map((c) => c.name);
  if (names.length <= 6) return names.join(", ");
  return `${names.slice(0, 3).join(", ")}, … ${names.at(-1)} (${names.length} columns)`;
}

/** A long message cut to about `max` characters, for lists. */
export function shorten(text: string, max = 160): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

/** What a participant must connect, in words. */
export function dataNeeded(task: Task): string {
  const t = task.training;
  if (t.data_type === "image") {
    return `Pictures of ${t.labels.length} kinds: ${t.labels.join(", ")}. You tell which pictures show which kind.`;
  }
  if (t.data_type === "tabular") {
    return `A CSV file (a spreadsheet saved as CSV) with the columns ${columnsText(task)} and the answer column ${t.output_column}.`;
  }
  return "Text files.";
}

/** A byte count for people ("1.2 MB"). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A fraction as a percentage ("93.1%"), or a dash. */
export function percent(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "—" : `${(100 * x).toFixed(1)}%`;
}
