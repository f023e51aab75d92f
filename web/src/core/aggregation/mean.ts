/**
 * FedAvg ("mean") in the browser, bit for bit the model a Python peer computes
 * (`disco.decentralized.peer.PeerClient._combine` → `MeanAggregator.aggregate`).
 *
 * Peers of a decentralized session each combine the round's updates themselves and must all end
 * with the same model, so every float operation of Python's `disco.aggregation.mean` is repeated
 * here in the same order and precision (tests/vectors/aggregation_mean.json pins both sides):
 *
 * 1. Each update's change is `trained − model` in float32 (`Math.fround(a − b)` on float32 values:
 *    the float64 difference rounded to float32 is the float32 difference, as 53 ≥ 2·24 + 2).
 * 2. Its count n is the claimed sample count, at most `COUNT_LIMIT` (2^17). Each change Δ adds the
 *    integer term `t = rint(Δ · n · 2^24)` (ties to even) to a sum S: Δ · (n · 2^24) is exact in
 *    float64 (a 24-bit significand times an integer of at most 18 bits), so rint is the only
 *    rounding. The sum of integers is exact, so S does not depend on the updates' order.
 * 3. Shares: n over the total, none above `maxShare` (`cappedShares`); the capped participants'
 *    terms are left out of S and their changes added back at their share, in participant order.
 * 4. Per value: `change = float64(S) · free_factor`, then `change += float64(Δ_c) · s_c` for each
 *    capped c, rounded once to float32; the new value is `model + change` in float32.
 *
 * ## Exact sums without BigInt
 *
 * Python keeps S in int64. Here S is held as two float64 numbers, S = H + L, both exact integers,
 * with no allocation per value (a BigInt per value and update would dominate the time):
 *
 * - |Δ| < 256 and n ≤ 2^17, so |t| ≤ n · (2^32 − 2^8) < n · 2^32 < 2^49; the round is refused once
 *   the counts total 2^31 (`COUNT_ROOM`, as Python), so Σ|t| < 2^63 over at most 2^31 updates.
 * - **Plain sums** when the counts summed total at most 2^21 (e.g. 16 updates of 2^17): every
 *   partial sum is an integer below 2^21 · 2^32 = 2^53 in magnitude, exactly representable, so
 *   float64 addition is exact; L = 0.
 * - **Split sums** otherwise: each term is split as t = h + l, h the nearest multiple of 2^21
 *   (so |l| ≤ 2^20). H = Σh: multiples of 2^21 below 2^63 + 2^31 · 2^20 < 2^64 in magnitude,
 *   i.e. 2^21 times an integer below 2^43 < 2^53: every partial sum is representable, the
 *   additions exact. L = Σl: below 2^31 · 2^20 = 2^51 in magnitude: exact too.
 * - float64(S) = fl(H + L): IEEE addition rounds the exact sum of its operands once, to nearest,
 *   ties to even, which is what numpy's int64 → float64 conversion does.
 *
 * rint(x) for |x| < 2^51 is `(x + 1.5·2^52) − 1.5·2^52` (the sum lies in [2^52, 2^53), where the
 * float64 step is 1, so the first addition rounds x to an integer, ties to even; the subtraction
 * is exact) — the compiled fold's own trick. Likewise with 1.5·2^73 for the split at 2^21.
 */

import { WeightsError } from "../errors";
import { Weights } from "../weights";
import { AggregationError } from "./errors";
import { cappedShares, comparePython } from "./shares";

/** Changes are summed in units of 2^-24 (float32's step at 1.0). */
export const FRACTION_BITS = 24;
/** 2^24: one unit of the sums. */
export const SCALE = 2 ** FRACTION_BITS;
/** A change of one value in one round must stay below this, in absolute value. */
export const MAX_CHANGE = 256;
/** Claimed sample counts above this (131,072) count as this many. */
export const COUNT_LIMIT = 2 ** 17;
/** The counts of a round total less than this (2^31): beyond, the sums would not be exact. */
export const COUNT_ROOM = 2 ** 31;
/** The smallest `maxShare` a task may set (the largest is 1). */
export const MIN_MAX_SHARE = 0.01;

/** Counts summed up to this (2^21) keep every partial sum below 2^53: plain float64 is exact. */
const PLAIN_COUNTS = 2 ** 21;
/** x + RINT − RINT rounds x (|x| < 2^51) to an integer, ties to even. */
const RINT = 1.5 * 2 ** 52;
/** x + SPLIT − SPLIT rounds x (|x| < 2^72) to a multiple of 2^21. */
const SPLIT = 1.5 * 2 ** 73;

/** One participant's contribution: the weights it trained from the round's model. */
export interface TrainedUpdate {
  /** Its stable id in the session (ids order the capped participants, as in Python). */
  participant: string;
  /** The trained weights (names and shapes of the round's model). */
  weights: Weights;
  /** The sample count it claims (an integer ≥ 1; above `COUNT_LIMIT` counts as `COUNT_LIMIT`). */
  numSamples: number;
}

/** Options for tests. */
export interface MeanOptions {
  /** How S is summed: "auto" (plain where exact, else split) or always "split". */
  sums?: "auto" | "split";
}

/**
 * The model a peer ends the round with: `base` plus the FedAvg of the changes `trained − base`,
 * no participant's share above `maxShare` (null: no cap) — the exact float32 bits of Python's
 * `MeanAggregator(maxShare).aggregate(base, [Update(p, trained − base, n) for p in sorted ids])`.
 *
 * Refuses (`AggregationError`, its `kind` says why) what Python refuses, first to last: a
 * `maxShare` outside [0.01, 1]; in participant order, an update not of the model's names and
 * shapes, or a count not an integer ≥ 1; no updates; two from one participant; a change that is
 * not finite (any update); then in participant order, counts reaching 2^31 or a change of 256 or
 * more. (A Python peer with no update to combine keeps `base`: that choice is the caller's.)
 */
export function combineMean(
  base: Weights,
  updates: readonly TrainedUpdate[],
  maxShare: number | null,
  options: MeanOptions = {},
): Weights {
  if (maxShare !== null && !(MIN_MAX_SHARE <= maxShare && maxShare <= 1)) {
    throw new AggregationError("max_share", `max_share must be from 0.01 to 1, got ${maxShare}`);
  }
  const sorted = [...updates].sort((a, b) => comparePython(a.participant, b.participant));
  for (const u of sorted) {
    try {
      u.weights.checkLike(base, `the update of ${quote(u.participant)}`);
    } catch (exc) {
      if (exc instanceof WeightsError) throw new AggregationError("shape", exc.message);
      throw exc;
    }
    if (!Number.isSafeInteger(u.numSamples) || u.numSamples < 1) {
      throw new AggregationError("count", `num_samples must be an integer ≥ 1, got ${u.numSamples}`);
    }
  }
  if (sorted.length === 0) throw new AggregationError("no_updates", "nothing to aggregate: no updates");
  for (let j = 1; j < sorted.length; j++) {
    if ((sorted[j] as TrainedUpdate).participant === (sorted[j - 1] as TrainedUpdate).participant) {
      const ids = sorted.map((u) => quote(u.participant)).join(", ");
      throw new AggregationError("duplicate", `one update per participant, got [${ids}]`);
    }
  }
  const scans = sorted.map((u) => scan(base, u.weights));
  sorted.forEach((u, j) => {
    if ((scans[j] as Scan).notFinite) {
      throw new AggregationError("not_finite", `the update of ${quote(u.participant)} is not finite`);
    }
  });
  const counts = sorted.map((u) => Math.min(u.numSamples, COUNT_LIMIT));
  let total = 0;
  sorted.forEach((u, j) => {
    const count = counts[j] as number;
    if (total + count >= COUNT_ROOM) {
      throw new AggregationError(
        "round_full",
        `round full: the update of ${quote(u.participant)} cannot be added exactly after ${j} others this round`,
      );
    }
    const far = (scans[j] as Scan).outOfRange;
    if (far !== null) {
      throw new AggregationError(
        "out_of_range",
        `the update of ${quote(u.participant)} changes ${quote(far)} by ${MAX_CHANGE} or more in one round; it is refused`,
      );
    }
    total += count;
  });

  // the shares, as MeanRound._finish: capped participants in id order (the sorted order here)
  const shares = cappedShares(counts, maxShare);
  const fair = cappedShares(counts);
  const capped: number[] = [];
  const free: number[] = [];
  counts.forEach((_, j) => {
    if ((shares[j] as number) < (fair[j] as number) * (1 - 1e-9)) capped.push(j);
    else free.push(j);
  });
  let freeCount = 0;
  for (const j of free) freeCount += counts[j] as number;
  // Python's sum() of the capped shares: left to right from 0, as CPython 3.11 adds floats.
  // (CPython 3.12+ compensates sum()'s rounding, which can move free_factor by one ulp: Python
  // peers on 3.11 and 3.12 could then differ in a rare last bit. This follows 3.11.)
  let cappedSum = 0;
  for (const j of capped) cappedSum += shares[j] as number;
  const freeFactor = (1.0 - cappedSum) / freeCount / SCALE;
  const split = options.sums === "split" || freeCount > PLAIN_COUNTS;

  const freeScales = free.map((j) => (counts[j] as number) * SCALE);
  const cappedShare = capped.map((j) => shares[j] as number);
  let finite = true;
  const out = base.values.map((model, k) => {
    const result = new Float32Array(model.length);
    const freeValues = free.map((j) => (sorted[j] as TrainedUpdate).weights.values[k] as Float32Array);
    const cappedValues = capped.map((j) => (sorted[j] as TrainedUpdate).weights.values[k] as Float32Array);
    if (!combineTensor(model, freeValues, freeScales, cappedValues, cappedShare, freeFactor, split, result)) {
      finite = false;
    }
    return result;
  });
  if (!finite) throw new AggregationError("not_finite", "rule 'mean' produced NaN or infinite values");
  return new Weights(base.names, base.shapes, out);
}

interface Scan {
  notFinite: boolean;
  /** The first tensor with a finite change of `MAX_CHANGE` or more, or null. */
  outOfRange: string | null;
}

/** Whether `trained − base` (float32) has a value not finite, or one of 256 or more. */
function scan(base: Weights, trained: Weights): Scan {
  let outOfRange: string | null = null;
  for (let k = 0; k < base.values.length; k++) {
    const b = base.values[k] as Float32Array;
    const w = trained.values[k] as Float32Array;
    for (let i = 0; i < b.length; i++) {
      const d = Math.fround((w[i] as number) - (b[i] as number));
      if (d - d !== 0) return { notFinite: true, outOfRange: null };
      if (!(Math.abs(d) < MAX_CHANGE) && outOfRange === null) outOfRange = base.names[k] as string;
    }
  }
  return { notFinite: false, outOfRange };
}

/**
 * One tensor of the new model into `out`: per value, S = Σ rint(Δ·n·2^24) over the free updates
 * (plain or split float64 sums, exact: see above), then
 * model + float32(float64(S)·freeFactor + Σ float64(Δ_c)·s_c) in float32, as `MeanRound._mean_of`
 * and `global + delta`. False when a value of the result is not finite.
 */
function combineTensor(
  model: Float32Array,
  free: Float32Array[],
  scales: number[],
  capped: Float32Array[],
  shares: number[],
  freeFactor: number,
  split: boolean,
  out: Float32Array,
): boolean {
  const m = free.length;
  const mc = capped.length;
  let finite = true;
  for (let i = 0; i < model.length; i++) {
    const b = model[i] as number;
    let sum: number;
    if (split) {
      let hi = 0;
      let lo = 0;
      for (let j = 0; j < m; j++) {
        const x = Math.fround(((free[j] as Float32Array)[i] as number) - b) * (scales[j] as number);
        const t = x + RINT - RINT;
        const h = t + SPLIT - SPLIT;
        hi += h;
        lo += t - h;
      }
      sum = hi + lo; // one rounding of the exact S, to nearest, ties to even
    } else {
      sum = 0;
      for (let j = 0; j < m; j++) {
        const x = Math.fround(((free[j] as Float32Array)[i] as number) - b) * (scales[j] as number);
        sum += x + RINT - RINT;
      }
    }
    let change = sum * freeFactor;
    for (let c = 0; c < mc; c++) {
      change += Math.fround(((capped[c] as Float32Array)[i] as number) - b) * (shares[c] as number);
    }
    const value = Math.fround(b + Math.fround(change));
    if (value - value !== 0) finite = false;
    out[i] = value;
  }
  return finite;
}

function quote(s: string): string {
  return `'${s}'`;
}
