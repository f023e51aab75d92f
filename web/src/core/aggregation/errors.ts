/** Why a round's updates cannot be combined, as Python's `disco.errors.AggregationError`. */

import { DiscoError } from "../errors";

/**
 * What was refused (tests/vectors/aggregation_mean.json names the same kinds):
 *
 * - `max_share`: the cap is not from 0.01 to 1
 * - `shape`: an update's tensors are not the model's names and shapes
 * - `count`: a sample count is not an integer ≥ 1
 * - `no_updates`: nothing to combine
 * - `duplicate`: two updates from one participant
 * - `not_finite`: a change (trained − model) is NaN or infinite, or the result is
 * - `out_of_range`: a change of 256 or more in absolute value (`MAX_CHANGE`)
 * - `round_full`: the counts total 2^31 or more (`COUNT_ROOM`), past what the sums hold exactly
 */
export type AggregationErrorKind =
  | "max_share"
  | "shape"
  | "count"
  | "no_updates"
  | "duplicate"
  | "not_finite"
  | "out_of_range"
  | "round_full";

/** Updates cannot be aggregated; `kind` says why. */
export class AggregationError extends DiscoError {
  override name = "AggregationError";
  readonly kind: AggregationErrorKind;

  constructor(kind: AggregationErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}
