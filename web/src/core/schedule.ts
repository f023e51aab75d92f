/**
 * The round schedule: what a participant trains in each of its rounds (Python's
 * `disco.schedule`; tests/vectors/epoch_schedule.json pins both).
 *
 * A round trains `epochs_per_round` whole epochs (the last planned round: what is left of
 * `epochs`), or, with `rounds_per_epoch` P > 1, one part of an epoch: round k trains part
 * `(k - 1) % P + 1` of the participant's epoch `(k - 1) / P + 1` (rounded down). The parts of an
 * epoch share one shuffled order; part j of an epoch of B batches is batches `(j - 1) * B / P` up
 * to `j * B / P` (rounded down, at least one batch), and it is evaluated on every P-th validation
 * sample from the `(j - 1)`-th (fewer samples than parts: sample `(j - 1) % M`). Rounds count
 * from 1 and are the participant's own.
 */
import type { TrainingInfo } from "./task";

/** The fields of a task's training settings the schedule reads. */
export type Plan = Pick<TrainingInfo, "epochs" | "epochs_per_round"> & Partial<Pick<TrainingInfo, "rounds_per_epoch">>;

/** Part `index` of `count` of the participant's epoch number `epoch` (all counted from 1). */
export interface EpochPart {
  epoch: number;
  index: number;
  count: number;
}

function checkRound(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`rounds are counted from 1, got ${k}`);
}

/** Number of communication rounds: epochs / epochs_per_round rounded up, times rounds_per_epoch. */
export function rounds(plan: Plan): number {
  return Math.ceil(plan.epochs / plan.epochs_per_round) * (plan.rounds_per_epoch ?? 1);
}

/**
 * Whole local epochs of a participant's `k`-th round: `epochs_per_round`, except in the last
 * planned round, which trains what is left of `epochs` (10 epochs, 3 per round → 3, 3, 3, 1);
 * rounds beyond the plan train `epochs_per_round`; a round that trains part of an epoch, 1.
 */
export function epochsInRound(plan: Plan, k: number): number {
  checkRound(k);
  if ((plan.rounds_per_epoch ?? 1) > 1) return 1;
  const per = plan.epochs_per_round;
  if (k > rounds(plan)) return per;
  return Math.min(per, plan.epochs - (k - 1) * per);
}

/** The part of an epoch a participant's `k`-th round trains, or null when it trains whole epochs. */
export function epochPart(plan: Plan, k: number): EpochPart | null {
  checkRound(k);
  const count = plan.rounds_per_epoch ?? 1;
  if (count <= 1) return null;
  return { epoch: Math.floor((k - 1) / count) + 1, index: ((k - 1) % count) + 1, count };
}

/** The batches `[start, stop)` of `part`, of an epoch of `batches` batches (at least one). */
export function partBatches(part: EpochPart, batches: number): [number, number] {
  if (!Number.isInteger(batches) || batches < 1) throw new RangeError(`an epoch has at least one batch, got ${batches}`);
  const start = Math.floor(((part.index - 1) * batches) / part.count);
  return [start, Math.max(Math.floor((part.index * batches) / part.count), start + 1)];
}

/** Indices of the validation samples `part` is evaluated on, of `n` (none if n is 0). */
export function partValidation(part: EpochPart, n: number): number[] {
  if (n <= 0) return [];
  if (n < part.count) return [(part.index - 1) % n];
  const out: number[] = [];
  for (let i = part.index - 1; i < n; i += part.count) out.push(i);
  return out;
}

/** What a participant's `k`-th round trains, in words: "2 epochs", "part 3 of 8 of epoch 1". */
export function roundWork(plan: Plan, k: number): string {
  const part = epochPart(plan, k);
  if (part !== null) return `part ${part.index} of ${part.count} of epoch ${part.epoch}`;
  const epochs = epochsInRound(plan, k);
  return `${epochs} epoch${epochs === 1 ? "" : "s"}`;
}
