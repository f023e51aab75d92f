/**
 * Sample-count shares with a cap, and participant ids in Python's order: the two pieces of
 * `disco.aggregation` that decide *which* floats FedAvg multiplies and adds, and in what order.
 *
 * Every float operation here is the one Python does, in the same order and in float64 (a JS
 * number), so the shares are the same bits on both sides.
 */

import { AggregationError } from "./errors";

/**
 * Each count's share of the total, none above `maxShare` (the excess is spread over the others
 * in proportion to their counts: "water-filling"); `disco.aggregation.rules.capped_shares`,
 * operation for operation. The cap never goes below an equal split (1/n).
 *
 * Counts are integers below 2^31 in total here, so sums of them are exact and `c / total` is
 * Python's correctly rounded `int / int`.
 */
export function cappedShares(counts: readonly number[], maxShare: number | null = null): number[] {
  if (counts.length === 0) return [];
  let total = 0;
  for (const c of counts) total += c;
  const shares = counts.map((c) => c / total);
  if (maxShare === null) return shares;
  if (!(0 < maxShare && maxShare <= 1)) {
    throw new AggregationError("max_share", `max_share must be in (0, 1], got ${maxShare}`);
  }
  const cap = Math.max(maxShare, 1 / counts.length);
  const capped = new Set<number>();
  for (;;) {
    const free = counts.map((_, i) => i).filter((i) => !capped.has(i));
    const left = 1.0 - cap * capped.size;
    let freeTotal = 0;
    for (const i of free) freeTotal += counts[i] as number;
    for (const i of free) shares[i] = (left * (counts[i] as number)) / freeTotal;
    const over = free.filter((i) => (shares[i] as number) > cap * (1 + 1e-12));
    if (over.length === 0) break;
    for (const i of over) {
      shares[i] = cap;
      capped.add(i);
    }
  }
  return shares;
}

/**
 * Python's `str` order: by Unicode code point. (JavaScript's `<` on strings compares UTF-16 code
 * units, which puts U+10000 and above before U+E000–U+FFFF; Python puts them after.)
 */
export function comparePython(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++; // both hold the same surrogate pair here: skip its second half
  }
  return a.length - b.length;
}
