/**
 * Secure aggregation as a task setting (Python's `SecureAggregationConfig` and the rules of
 * `TrainingInfo` that tie it to the other settings; docs/secure_aggregation.md): its settings,
 * their defaults and bounds, why a task cannot use it, and a task's `secure_aggregation` parsed
 * with every setting filled in and checked against its bounds.
 */

import { scaleBits } from "./secure/quantize";
import type { TrainingInfo } from "./task";
import { check, isObject } from "./taskError";

/**
 * Secure aggregation's settings (Python's `SecureAggregationConfig`): every value of an update's
 * change is clamped to [−`clip`, `clip`] before quantisation, a participant's sample count counts
 * at most `weight_cap`, and `threshold` participants of a round must stay for its sum to be
 * unmasked (null: automatic, a strict majority of each round).
 */
export interface SecureAggregationConfig {
  clip: number;
  weight_cap: number;
  threshold: number | null;
}
/** Secure aggregation's settings when a document leaves them out (as in Python). */
export const SECURE_AGGREGATION_DEFAULTS: SecureAggregationConfig = { clip: 1, weight_cap: 1024, threshold: null };
/** One setting's JSON type, whether it may be null, and its bounds (JSON Schema's names). */
export interface SettingBounds {
  readonly type: "number" | "integer";
  readonly nullable: boolean;
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly maximum?: number;
  readonly exclusiveMaximum?: number;
}
/** Each secure aggregation setting's bounds, as Python's (tests/vectors/shared_lists.json pins them). */
export const SECURE_AGGREGATION_BOUNDS: { readonly [K in keyof SecureAggregationConfig]: SettingBounds } = {
  clip: { type: "number", nullable: false, exclusiveMinimum: 0, maximum: 1_000_000 },
  weight_cap: { type: "integer", nullable: false, minimum: 1, maximum: 65_536 },
  threshold: { type: "integer", nullable: true, minimum: 3, maximum: 10_000 },
};
/** The fewest participants of a round with secure aggregation: with two, each could read the other's update. */
export const SECURE_MIN_PARTICIPANTS = 3;
/**
 * The most peers of a secure decentralized round (Python's `SECURE_MAX_PEERS`): every peer opens a
 * channel to every other and receives every masked input (docs/protocol.md §19.1); later peers
 * wait for a later round.
 */
export const SECURE_MAX_PEERS = 64;

/**
 * Why a task cannot use its secure aggregation, in Python's words and order (`TrainingInfo`
 * refuses the first): a rule other than the mean, a local task, rounds of fewer than 3, a
 * decentralized task of more than `SECURE_MAX_PEERS` a round, a threshold above
 * `min_participants`, a ring too small for the smallest round. [] when
 * it is off or fine. The task form checks it before publishing; `parseTask` leaves it to the
 * server, as it does the other rules that tie settings together.
 */
export function secureAggregationProblems(
  training: Pick<TrainingInfo, "scheme" | "aggregation" | "min_participants" | "secure_aggregation">,
): string[] {
  const secure = training.secure_aggregation;
  if (!secure) return [];
  const problems: string[] = [];
  const rule = training.aggregation.rule;
  if (rule !== "mean") {
    problems.push(
      "secure aggregation shows the server only the sum of the updates; " +
        `'${rule}' needs each participant's own update — use 'mean' or turn secure aggregation off`,
    );
  }
  if (training.scheme === "local") {
    problems.push(
      "secure aggregation makes no sense in a local task: nothing is shared, so there is no sum to protect — " +
        "turn secure aggregation off or use the federated scheme",
    );
  }
  const n = training.min_participants;
  const least = SECURE_MIN_PARTICIPANTS;
  if (n < least) {
    problems.push(
      `secure aggregation needs at least ${least} participants in a round (with ${least - 1}, each could ` +
        `subtract its own update from the sum and read the other's): set min_participants to at least ${least} (it is ${n})`,
    );
    return problems;
  }
  if (training.scheme === "decentralized" && n > SECURE_MAX_PEERS) {
    problems.push(
      `a secure decentralized round takes at most ${SECURE_MAX_PEERS} peers (each opens a channel to every other ` +
        `and receives every masked input): set min_participants to at most ${SECURE_MAX_PEERS} (it is ${n}), ` +
        "or use the federated scheme",
    );
  }
  if (secure.threshold !== null && secure.threshold > n) {
    problems.push(
      `secure aggregation's threshold (${secure.threshold}) cannot be more than min_participants (${n}): ` +
        `a round of ${n} could never unmask its sum and would always abort; lower the threshold or raise min_participants`,
    );
  }
  try {
    scaleBits(n, secure.weight_cap, secure.clip);
  } catch (error) {
    problems.push(
      `secure aggregation's clip range and weight cap do not fit a round of ${n} participants: ${(error as Error).message}`,
    );
  }
  return problems;
}

/** Why a number is not within `bounds`, in Python's words ("" when it is). */
function outOf(value: unknown, bounds: SettingBounds): string {
  if (value === null && bounds.nullable) return "";
  if (typeof value !== "number") return bounds.type === "integer" ? "should be a whole number" : "should be a number";
  if (!Number.isFinite(value)) return "should be a finite number";
  if (bounds.type === "integer" && !Number.isInteger(value)) return "should be a whole number";
  const { minimum, exclusiveMinimum, maximum, exclusiveMaximum } = bounds;
  if (exclusiveMinimum !== undefined && !(value > exclusiveMinimum)) return `must be greater than ${exclusiveMinimum}`;
  if (minimum !== undefined && value < minimum) return `must be at least ${minimum}`;
  if (exclusiveMaximum !== undefined && !(value < exclusiveMaximum)) return `must be less than ${exclusiveMaximum}`;
  if (maximum !== undefined && value > maximum) return `must be at most ${maximum}`;
  return "";
}

/**
 * A task's `secure_aggregation` with every setting filled in, null when it is off; each setting
 * checked against Python's bounds (`TaskError` naming the setting, in Python's words).
 */
export function secureAggregationOf(value: unknown): SecureAggregationConfig | null {
  if (value === null || value === undefined) return null;
  check(isObject(value), "training.secure_aggregation: should be an object, { ... }");
  const names = Object.keys(SECURE_AGGREGATION_DEFAULTS);
  for (const key of Object.keys(value)) {
    check(
      names.includes(key),
      `training.secure_aggregation.${key}: is not a setting of secure aggregation (its settings: ${names.join(", ")})`,
    );
  }
  const filled = { ...SECURE_AGGREGATION_DEFAULTS, ...value } as SecureAggregationConfig;
  for (const key of names as (keyof SecureAggregationConfig)[]) {
    const problem = outOf(filled[key], SECURE_AGGREGATION_BOUNDS[key]);
    check(!problem, `training.secure_aggregation.${key}: ${problem}`);
  }
  return filled;
}
