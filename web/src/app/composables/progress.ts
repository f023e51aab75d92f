// Reading the training curves for people: were they still improving when training ended, how
// long until a wait gives up, how many participants are missing. Pure functions (no Vue, no
// TF.js), unit-tested in web/tests/progress.test.ts.

/** The figures of one epoch the rule looks at (an `EpochPoint` of the board fits). */
export interface EpochFigures {
  train_loss: number;
  train_accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
}

/** Epochs the rule looks back on. */
export const IMPROVING_WINDOW = 5;
/** Accuracy must be climbing by at least this much (2 points) over the window's trend. */
export const MIN_ACCURACY_GAIN = 0.02;
/** Or the loss falling by at least this fraction (5%) of its level over the window's trend. */
export const MIN_LOSS_DROP = 0.05;
/** Past this accuracy there is nothing left to gain worth more training. */
export const ACCURACY_CEILING = 0.99;

/** Least-squares slope of `ys` against 0, 1, 2, … */
function slope(ys: number[]): number {
  const n = ys.length;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, i) => {
    num += (i - mx) * (y - my);
    den += (i - mx) ** 2;
  });
  return den === 0 ? 0 : num / den;
}

/**
 * Whether the curves were still improving at the end of training, so more rounds would likely
 * give a better model. The rule looks at the last `IMPROVING_WINDOW` epochs (at least 3 are
 * needed) of the validation figures (the training ones when no samples were kept aside) and
 * fits a straight line through each:
 *
 * - accuracy (classification): already at 99% or more → not improving; otherwise improving when
 *   the line climbs by at least 2 points across the window;
 * - loss: improving when the line falls by at least 5% of the loss's mean level across the window.
 *
 * One rising epoch among noisy ones does not count: the trend over the window does.
 */
export function stillImproving(history: readonly EpochFigures[], window = IMPROVING_WINDOW): boolean {
  const recent = history.slice(-window);
  if (recent.length < 3) return false;
  const useVal = recent.every((h) => h.val_loss !== null && Number.isFinite(h.val_loss));
  const losses = recent.map((h) => (useVal ? (h.val_loss as number) : h.train_loss));
  const accs = recent.map((h) => (useVal ? h.val_accuracy : h.train_accuracy));
  const span = recent.length - 1;
  if (accs.every((a): a is number => a !== null && Number.isFinite(a))) {
    if ((accs.at(-1) as number) >= ACCURACY_CEILING) return false;
    if (slope(accs) * span >= MIN_ACCURACY_GAIN) return true;
  }
  if (!losses.every(Number.isFinite)) return false;
  const level = Math.abs(losses.reduce((a, b) => a + b, 0) / losses.length);
  return level > 0 && (-slope(losses) * span) / level >= MIN_LOSS_DROP;
}

/** "Waiting for 1 more participant — 1 of 2 here" (null when nobody is missing). */
export function waitingText(participants: number | null, needed: number): string | null {
  if (participants === null || participants >= needed) return null;
  const missing = needed - participants;
  return `Waiting for ${missing} more participant${missing === 1 ? "" : "s"} — ${participants} of ${needed} here`;
}

/** Time left as people read it: "9:05", "1:02:03"; never negative. */
export function clockText(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** A duration in words, rounded to what matters: "10 minutes", "45 seconds", "1 hour". */
export function durationText(seconds: number): string {
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? "" : "s"}`;
  if (seconds < 90) return plural(Math.max(1, Math.round(seconds)), "second");
  if (seconds < 90 * 60) return plural(Math.round(seconds / 60), "minute");
  return plural(Math.round(seconds / 3600), "hour");
}
