"""From an unmasked sum to the round's model: the weighted mean change, checked and applied.

Whoever unmasks a round — the federated server, or every peer of a decentralized one — ends it the
same way (docs/secure_aggregation.md §3.4, docs/protocol.md §19): Σ w and Σ w·x are decoded from
the sum's words, Σ w is checked against what the survivors may send (each weight is at least 1 and
at most the weight cap), and the new model is G + Σ w·x / Σ w, computed in float64 and rounded
once to float32. The browser does the same (web/src/core/secure/mean.ts), and
tests/vectors/secure_round.json pins the result bit for bit, so every peer of a round, Python or
browser, ends it with the same model.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from disco.errors import SecureAggregationError
from disco.secure.quantize import decode
from disco.secure.stream import Words
from disco.weights import Weights

__all__ = ["add_change", "mean_change", "secure_mean"]


def mean_change(
    summed: Words, bits: int, survivors: int, weight_cap: int
) -> tuple[int, npt.NDArray[np.float64]]:
    """(Σ w, Σ w·x / Σ w) of an unmasked sum over `survivors` members; `SecureAggregationError`
    when Σ w lies outside [survivors, survivors × weight_cap] (a member sent a weight it may not,
    or the sum is not what was masked)."""
    weight, values = decode(summed, bits)
    most = survivors * weight_cap
    if not survivors <= weight <= most:
        raise SecureAggregationError(
            f"the weights add up to {weight}, outside [{survivors}, {most}]: a participant sent "
            "a weight it may not; the round is not used"
        )
    return weight, values / weight


def add_change(weights: Weights, change: npt.NDArray[np.float64]) -> Weights:
    """`weights` plus the flat float64 `change` (in the model's order), rounded to float32;
    `SecureAggregationError` if the result is not finite or the sizes differ."""
    if change.size != weights.size:
        raise SecureAggregationError(
            f"the change has {change.size} values, the model {weights.size}"
        )
    out, offset = [], 0
    for name, array in weights.items():
        part = change[offset : offset + array.size].reshape(array.shape)
        out.append((name, (array.astype(np.float64) + part).astype(np.float32)))
        offset += array.size
    result = Weights(out)
    if not all(np.isfinite(a).all() for a in result.values()):
        raise SecureAggregationError("the combined model is not finite")
    return result


def secure_mean(
    weights: Weights, summed: Words, bits: int, survivors: int, weight_cap: int
) -> tuple[Weights, int]:
    """The round's new model from the round's model `weights` and the unmasked sum, and Σ w."""
    total, change = mean_change(summed, bits, survivors, weight_cap)
    return add_change(weights, change), total
