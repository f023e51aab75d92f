/**
 * How a task's updates are combined (Python's `AggregationConfig`): the server's aggregation
 * rules, each rule's settings and their defaults, and a task's `aggregation` parsed with every
 * setting filled in. The lists and defaults mirror Python's (tests/vectors/shared_lists.json).
 */
import { check, isObject } from "./taskError";

/** How updates are combined (the server's aggregation rules). */
export const AGGREGATIONS = ["mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clipping", "cosine_trust"] as const;
/** One of `AGGREGATIONS`. */
export type Aggregation = (typeof AGGREGATIONS)[number];
/**
 * How a task's updates are combined (Python's `AggregationConfig`): FedAvg with no one's share
 * above `max_share`, or a robust rule — the coordinate-wise median, the mean without the `beta`
 * fraction of extremes, Krum / multi-Krum (the update(s) closest to the others, resisting `f`
 * dishonest participants; `m` null: all but `f` updates averaged), centered clipping (`tau`,
 * `iterations`, `momentum`), or cosine trust (the mean of the updates that point the way the
 * model has been moving — its last rounds' changes, kept with `momentum`; those whose cosine is
 * not above `min_cosine` left out; the median when fewer than half point that way). Every robust
 * rule but cosine trust first mixes updates in random groups of `bucket_size` (1: no mixing). A
 * rule name alone in a document stands for that rule with its defaults.
 */
export type AggregationConfig =
  | { rule: "mean"; max_share: number }
  | { rule: "median"; bucket_size: number }
  | { rule: "trimmed_mean"; beta: number; bucket_size: number }
  | { rule: "krum"; f: number; bucket_size: number }
  | { rule: "multi_krum"; f: number; m: number | null; bucket_size: number }
  | { rule: "centered_clipping"; tau: number | null; iterations: number; momentum: number; bucket_size: number }
  | { rule: "cosine_trust"; min_cosine: number; momentum: number };
/**
 * Each rule's settings when a document leaves them out (as in Python; tests/vectors/
 * shared_lists.json pins them for both).
 */
export const AGGREGATION_DEFAULTS: { [R in Aggregation]: Extract<AggregationConfig, { rule: R }> } = {
  mean: { rule: "mean", max_share: 0.5 },
  median: { rule: "median", bucket_size: 1 },
  trimmed_mean: { rule: "trimmed_mean", beta: 0.1, bucket_size: 1 },
  krum: { rule: "krum", f: 1, bucket_size: 1 },
  multi_krum: { rule: "multi_krum", f: 1, m: null, bucket_size: 1 },
  centered_clipping: { rule: "centered_clipping", tau: null, iterations: 1, momentum: 0.5, bucket_size: 1 },
  cosine_trust: { rule: "cosine_trust", min_cosine: 0, momentum: 0.9 },
};

/** A task's `aggregation` (a rule name, or a rule with settings) with every setting filled in. */
export function aggregationOf(value: unknown): AggregationConfig {
  const rule = typeof value === "string" ? value : isObject(value) ? value["rule"] : undefined;
  check(
    typeof rule === "string" && (AGGREGATIONS as readonly string[]).includes(rule),
    `training.aggregation: unknown rule ${JSON.stringify(rule)}`,
  );
  return { ...AGGREGATION_DEFAULTS[rule as Aggregation], ...(isObject(value) ? value : {}) } as AggregationConfig;
}
