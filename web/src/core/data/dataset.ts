/**
 * A tiny in-memory dataset: flat channels-last float32 samples with their labels, and the
 * seeded shuffle / validation split training needs (mirrors Python's `disco.data.Dataset`).
 *
 * `x` holds `n` samples of `sampleShape` back to back (row-major, channels-last for images);
 * `y` holds class ids (Int32Array) for classification or float targets (Float32Array).
 */
import { DiscoError } from "../errors";

/** Data cannot be read or does not match the task (mirrors Python's `DataError`). */
export class DataError extends DiscoError {
  override name = "DataError";
}

/** Labelled samples kept in memory, ready to be turned into tensors. */
export interface Dataset {
  /** `n * prod(sampleShape)` values, sample after sample. */
  readonly x: Float32Array;
  /** One label per sample: class ids (Int32Array) or regression targets (Float32Array). */
  readonly y: Float32Array | Int32Array;
  /** Number of samples. */
  readonly n: number;
  /** Shape of one sample: `[F]` or `[H, W, C]`. */
  readonly sampleShape: readonly number[];
  /** Where each sample came from (a file name, `file.csv:12`), when known. */
  readonly sources?: readonly string[];
}

/** Number of values in one sample of `shape`. */
export function sampleSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A dataset after checking that `x`, `y` and `sources` agree with `n` and `sampleShape`. */
export function makeDataset(
  x: Float32Array,
  y: Float32Array | Int32Array,
  sampleShape: readonly number[],
  sources?: readonly string[],
): Dataset {
  const size = sampleSize(sampleShape);
  const n = y.length;
  if (x.length !== n * size) {
    throw new DataError(
      `x has ${x.length} values but ${n} samples of shape [${sampleShape.join(", ")}] need ${n * size}`,
    );
  }
  if (sources !== undefined && sources.length !== n) {
    throw new DataError(`${sources.length} sources for ${n} samples`);
  }
  return sources === undefined ? { x, y, n, sampleShape } : { x, y, n, sampleShape, sources };
}

/**
 * A seeded pseudo-random generator (mulberry32): uniform floats in [0, 1).
 * Deterministic across browsers and Node; not for cryptography.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random permutation of `0 .. n-1` fixed by `seed` (Fisher-Yates). */
export function permutation(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = out[i] as number;
    out[i] = out[j] as number;
    out[j] = tmp;
  }
  return out;
}

/** The samples at `indices`, in that order. */
export function subset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const size = sampleSize(data.sampleShape);
  const x = new Float32Array(indices.length * size);
  const y = data.y instanceof Int32Array ? new Int32Array(indices.length) : new Float32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k] as number;
    if (!(i >= 0 && i < data.n)) throw new DataError(`index ${i} out of range for ${data.n} samples`);
    x.set(data.x.subarray(i * size, (i + 1) * size), k * size);
    y[k] = data.y[i] as number;
  }
  const sources = data.sources ? Array.from(indices, (i) => data.sources?.[i] ?? "") : undefined;
  return makeDataset(x, y, data.sampleShape, sources);
}

/** The same samples in a random order fixed by `seed`. */
export function shuffle(data: Dataset, seed: number): Dataset {
  return subset(data, permutation(data.n, seed));
}

/** How many of `n` samples go to validation: rounded, at least one, never all. */
export function validationCount(n: number, fraction: number): number {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new DataError(`validation fraction must be in [0, 1), got ${fraction}`);
  }
  if (fraction === 0 || n < 2) return 0;
  return Math.min(Math.max(1, Math.round(n * fraction)), n - 1);
}

/**
 * Shuffle and split into `[train, validation]` with `fraction` of the samples held out.
 *
 * Class ids (Int32Array labels) are stratified like Python's `Dataset.split`: each class gives
 * its share of the held-out part (largest remainder, so the total is exact) and keeps at least
 * one training sample. Regression targets are a plain shuffled cut. Deterministic in `seed`.
 */
export function split(data: Dataset, fraction: number, seed: number): [Dataset, Dataset] {
  const nVal = validationCount(data.n, fraction);
  const order = permutation(data.n, seed);
  if (nVal === 0) return [subset(data, order), subset(data, [])];
  if (!(data.y instanceof Int32Array)) {
    return [subset(data, order.subarray(nVal)), subset(data, order.subarray(0, nVal))];
  }
  const byClass = new Map<number, number[]>();
  for (const i of order) {
    const label = data.y[i] as number;
    const members = byClass.get(label) ?? [];
    members.push(i);
    byClass.set(label, members);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const counts = classes.map((c) => byClass.get(c)?.length ?? 0);
  const ideal = counts.map((count) => Math.min((count * nVal) / data.n, count - 1));
  const take = ideal.map(Math.floor);
  const byRemainder = classes
    .map((_, k) => k)
    .sort((a, b) => (ideal[b] as number) - (take[b] as number) - ((ideal[a] as number) - (take[a] as number)));
  let total = take.reduce((a, b) => a + b, 0);
  for (const k of byRemainder) {
    if (total >= nVal) break;
    if ((take[k] as number) < (counts[k] as number) - 1) {
      take[k] = (take[k] as number) + 1;
      total++;
    }
  }
  const kept: number[] = [];
  const held: number[] = [];
  classes.forEach((c, k) => {
    const members = byClass.get(c) ?? [];
    held.push(...members.slice(0, take[k]));
    kept.push(...members.slice(take[k]));
  });
  const random = permutation(Math.max(kept.length, held.length), seed + 1);
  const reorder = (idx: number[]): number[] =>
    Array.from(random.filter((r) => r < idx.length), (r) => idx[r] as number);
  return [subset(data, reorder(kept)), subset(data, reorder(held))];
}
