/**
 * The arithmetic of a round's end: the model a peer combines from the updates the server listed
 * (`combineRound`: the mean rule all to all, Metropolis–Hastings mixing in a sparse round), and
 * the check that the mean can take an update at all (`largestChange`).
 */

import { combineMean } from "../aggregation/mean";
import type { Combine, PeerUpdate, RoundPlan } from "../protocol";
import type { Weights } from "../weights";
import { sortedIds } from "./notify";

/**
 * The model this peer ends an all-to-all or sparse round with (Python's `PeerClient._combine`):
 * `received` holds the neighbours' valid updates, `own` this peer's (as sent). All to all: the
 * mean rule over exactly the updates `combine` lists that are held (sorted ids), from `base`
 * (unchanged when there are none). Sparse: own weight × own update + Σ neighbour weight ×
 * neighbour update, in float64, own first, then the chosen neighbours in `plan.peers` order, the
 * own weight being 1 − the sum of the chosen neighbours' weights; then rounded to float32.
 */
export function combineRound(
  plan: Pick<RoundPlan, "topology" | "peers">,
  base: Weights,
  me: string,
  own: Pick<PeerUpdate, "weights" | "num_samples">,
  combine: Pick<Combine, "peers">,
  received: ReadonlyMap<string, Pick<PeerUpdate, "weights" | "num_samples">>,
  maxShare: number | null,
): Weights {
  const all = new Map(received);
  all.set(me, own);
  const chosen = sortedIds(combine.peers).filter((p) => all.has(p));
  if (plan.topology === "all_to_all") {
    if (chosen.length === 0) return base;
    const updates = chosen.map((p) => {
      const update = all.get(p) as Pick<PeerUpdate, "weights" | "num_samples">;
      return { participant: p, weights: update.weights, numSamples: update.num_samples };
    });
    return combineMean(base, updates, maxShare);
  }
  const picked = new Set(chosen);
  const weights = plan.peers.filter((p) => picked.has(p.id)).map((p) => ({ id: p.id, weight: p.weight }));
  const ownWeight = 1.0 - weights.reduce((sum, p) => sum + p.weight, 0);
  return own.weights.map((values, name) => {
    const mixed = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) mixed[i] = ownWeight * (values[i] as number);
    for (const { id, weight } of weights) {
      const theirs = (all.get(id) as Pick<PeerUpdate, "weights">).weights.get(name);
      for (let i = 0; i < mixed.length; i++) mixed[i] = (mixed[i] as number) + weight * (theirs[i] as number);
    }
    return Float32Array.from(mixed); // round to nearest, ties to even: numpy's astype(float32)
  });
}

/** The largest |trained − base| over every value (float32 differences, as numpy's), 0 when there are none. */
export function largestChange(base: Weights, trained: Weights): number {
  let largest = 0;
  trained.names.forEach((name, t) => {
    const values = trained.values[t] as Float32Array;
    const from = base.get(name);
    for (let i = 0; i < values.length; i++) {
      const change = Math.abs(Math.fround((values[i] as number) - (from[i] as number)));
      if (!(change <= largest)) largest = change; // NaN wins, as numpy's max
    }
  });
  return largest;
}

/** A number as Python's `format(x, "g")` writes it (6 significant digits). */
export function formatG(x: number): string {
  if (!Number.isFinite(x)) return String(x).toLowerCase().replace("infinity", "inf");
  const exponent = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, power] = x.toExponential(5).split("e") as [string, string];
    const trimmed = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const sign = power.startsWith("-") ? "-" : "+";
    return `${trimmed}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return String(Number(x.toPrecision(6)));
}
