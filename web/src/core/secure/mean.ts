/**
 * From an unmasked sum to the round's model: the weighted mean change, checked and applied.
 * Python's `disco.secure.mean`, bit for bit.
 *
 * Whoever unmasks a round — the federated server, or every peer of a decentralized one — ends it
 * the same way (docs/secure_aggregation.md §3.4, docs/protocol.md §19): Σ w and Σ w·x are decoded
 * from the sum's words, Σ w is checked against what the survivors may send (each weight is at
 * least 1 and at most the weight cap), and the new model is G + Σ w·x / Σ w, computed in float64
 * and rounded once to float32. tests/vectors/secure_round.json pins the result bit for bit, so
 * every peer of a round, Python or browser, ends it with the same model.
 */

import { Weights } from "../weights";
import { SecureAggregationError } from "./errors";
import { decode } from "./quantize";

/** Σ w and the weighted mean change Σ w·x / Σ w (float64, in the model's order). */
export interface MeanChange {
  readonly weightSum: number;
  readonly change: Float64Array<ArrayBuffer>;
}

/** The round's new model and Σ w. */
export interface SecureMean {
  readonly weights: Weights;
  readonly weightSum: number;
}

/**
 * (Σ w, Σ w·x / Σ w) of an unmasked sum over `survivors` members; a `SecureAggregationError`
 * (kind `value`) when Σ w lies outside [survivors, survivors × weightCap] (a member sent a weight
 * it may not, or the sum is not what was masked).
 */
export function meanChange(summed: Uint32Array, bits: number, survivors: number, weightCap: number): MeanChange {
  const { weightSum, values } = decode(summed, bits);
  const most = survivors * weightCap;
  if (!(survivors <= weightSum && weightSum <= most)) {
    throw new SecureAggregationError(
      "value",
      `the weights add up to ${weightSum}, outside [${survivors}, ${most}]: a participant sent ` +
        "a weight it may not; the round is not used",
    );
  }
  for (let i = 0; i < values.length; i++) values[i] = (values[i] as number) / weightSum;
  return { weightSum, change: values };
}

/**
 * `weights` plus the flat float64 `change` (in the model's order), rounded to float32; a
 * `SecureAggregationError` (kind `value`) if the result is not finite or the sizes differ.
 */
export function addChange(weights: Weights, change: Float64Array): Weights {
  if (change.length !== weights.size) {
    throw new SecureAggregationError("value", `the change has ${change.length} values, the model ${weights.size}`);
  }
  let offset = 0;
  const values = weights.values.map((array) => {
    const out = new Float32Array(array.length); // each sum rounded once to float32
    for (let i = 0; i < array.length; i++) out[i] = (array[i] as number) + (change[offset + i] as number);
    offset += array.length;
    return out;
  });
  const result = new Weights(weights.names, weights.shapes, values);
  if (!result.isFinite()) throw new SecureAggregationError("value", "the combined model is not finite");
  return result;
}

/** The round's new model from the round's model `weights` and the unmasked sum, and Σ w. */
export function secureMean(weights: Weights, summed: Uint32Array, bits: number, survivors: number, weightCap: number): SecureMean {
  const { weightSum, change } = meanChange(summed, bits, survivors, weightCap);
  return { weights: addChange(weights, change), weightSum };
}
