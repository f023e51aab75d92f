/** Why a secure-aggregation step failed (docs/secure_aggregation.md). */

import { DiscoError } from "../errors";

/**
 * What was refused:
 *
 * - `scale`: n × weight cap × clip leaves less than 8 fraction bits in the 32-bit ring (§3.1)
 * - `value`: a value to quantise, a weight, a draw or a word count is out of its range (§3)
 * - `key`: a public key or private scalar is malformed (§2, §4)
 * - `shares`: Shamir shares that cannot give the secret: too few, duplicate or bad x, bad bytes (§5)
 * - `decrypt`: an encrypted share that fails to decrypt or has the wrong length (§7)
 * - `roster`: positions that are not distinct integers ≥ 1, or a participant both unmasked ways (§6, §8);
 *   a round's roster that a member or the aggregator must refuse (§6)
 * - `round`: a step of a round refused (§10): input from a non-member, twice, at the wrong phase,
 *   for a split of survivors and dropped that could expose a member's update
 * - `aborted`: too few members are left to go on (`RoundAborted`, §10)
 */
export type SecureAggregationErrorKind = "scale" | "value" | "key" | "shares" | "decrypt" | "roster" | "round" | "aborted";

/** A secure-aggregation primitive refused its input; `kind` says why. */
export class SecureAggregationError extends DiscoError {
  override name = "SecureAggregationError";
  readonly kind: SecureAggregationErrorKind;

  constructor(kind: SecureAggregationErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/**
 * Too few members are left to go on (docs/secure_aggregation.md §10): the round ends with nothing
 * revealed. Python's `disco.secure.aggregator.RoundAborted`.
 */
export class RoundAborted extends SecureAggregationError {
  override name = "RoundAborted";

  constructor(message: string) {
    super("aborted", message);
  }
}
