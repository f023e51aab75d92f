// Plain-language descriptions of a task for people who are not machine-learning experts.
import type { Task } from "../../core/task";

/** What kind of data the task uses, in words. */
export function dataTypeText(task: Task): string {
  const t = task.training;
  if (t.data_type === "image") {
    const colour = t.channels === 3 ? "colour" : "greyscale";
    return `Images (${colour}, ${t.image_width}×${t.image_height} pixels)`;
  }
  if (t.data_type === "tabular") return `Table (CSV file, ${t.input_columns.length} columns used)`;
  return "Text";
}

/** Short label of the data type. */
export function dataTypeShort(task: Task): string {
  return { image: "Images", tabular: "Table (CSV)", text: "Text" }[task.training.data_type];
}

/** How participants collaborate, in words. */
export function schemeText(task: Task): string {
  switch (task.training.scheme) {
    case "federated":
      return "Together via the server: the server averages everyone's model updates";
    case "decentralized":
      return "Together, directly between participants (peer to peer)";
    default:
      return "Alone: nothing is shared";
  }
}

/** Short label of the scheme. */
export function schemeShort(task: Task): string {
  return { federated: "Federated", decentralized: "Peer to peer", local: "Alone" }[
    task.training.scheme
  ];
}

/** What protects a participant's updates, in one plain sentence. */
export function privacyText(task: Task): string {
  const p = task.training.privacy;
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
  const noise =
    p.noise_multiplier > 0
      ? ` Then random noise (standard deviation ${(p.noise_multiplier * p.clipping_radius).toPrecision(3)}) is added, which hides the contribution of any single record.`
      : " No noise is added.";
  return `Each update is scaled down so its size is at most ${p.clipping_radius}.${noise}`;
}

/** Short label of the privacy setting. */
export function privacyShort(task: Task): string {
  const p = task.training.privacy;
  if (!p) return "Standard";
  return p.noise_multiplier > 0 ? "Clipped + noise" : "Clipped";
}

/** Communication rounds: epochs / epochs per round, rounded up. */
export function roundsOf(task: Task): number {
  return Math.ceil(task.training.epochs / task.training.epochs_per_round);
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
