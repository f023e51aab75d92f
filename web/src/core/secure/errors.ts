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
 * - `roster`: positions that are not distinct integers ≥ 1, or a participant both unmasked ways (§6, §8)
 */
export type SecureAggregationErrorKind = "scale" | "value" | "key" | "shares" | "decrypt" | "roster";

/** A secure-aggregation primitive refused its input; `kind` says why. */
export class SecureAggregationError extends DiscoError {
  override name = "SecureAggregationError";
  readonly kind: SecureAggregationErrorKind;

  constructor(kind: SecureAggregationErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}
