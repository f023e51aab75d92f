"""Pure aggregation functions over `Weights`: weighted sums, capped shares, median, trimmed mean.

The rules a task names are the `Aggregator`s of `strategies.py`, built on these functions.

Each rule takes a non-empty sequence of `Contribution` (weights + the number of samples behind
them), checks that every contribution has the same names and shapes as the first, and returns new
`Weights`. Accumulation is done in float64 so the result does not depend on float32 rounding of
partial sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

__all__ = [
    "Contribution",
    "capped_shares",
    "median",
    "trimmed_mean",
    "weighted_sum",
]


@dataclass(frozen=True)
class Contribution:
    """One participant's weights and the number of training samples behind them."""

    weights: Weights
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise AggregationError(f"num_samples must be ≥ 1, got {self.num_samples}")


def _checked(contributions: Sequence[Contribution]) -> Weights:
    if not contributions:
        raise AggregationError("nothing to aggregate: no contributions")
    first = contributions[0].weights
    for i, c in enumerate(contributions[1:], start=1):
        try:
            c.weights.check_like(first, f"contribution {i}")
        except WeightsError as exc:
            raise AggregationError(str(exc)) from exc
    return first


def weighted_sum(weights: Sequence[Weights], coeffs: Sequence[float] | np.ndarray) -> Weights:
    """Σ coeff_i · weights_i in float64, bit-identical whatever the order of the pairs."""
    if len(weights) != len(coeffs) or not weights:
        raise AggregationError(f"{len(weights)} weights for {len(coeffs)} coefficients")
    pairs = sorted(zip(coeffs, weights, strict=True), key=lambda p: (float(p[0]), p[1].digest()))
    first = weights[0]
    out = []
    for name in first:
        acc = np.zeros(first[name].shape, dtype=np.float64)
        for coeff, w in pairs:
            acc += float(coeff) * w[name]
        out.append((name, acc))
    return Weights(out)


def capped_shares(counts: Sequence[int], max_share: float | None = None) -> list[float]:
    """Each count's share of the total, none above `max_share` (the excess is spread over the
    others in proportion to their counts: "water-filling").

    The cap can never go below an equal split: with n counts it is at least 1/n.
    """
    if not counts:
        return []
    total = sum(counts)
    shares = [c / total for c in counts]
    if max_share is None:
        return shares
    if not 0 < max_share <= 1:
        raise AggregationError(f"max_share must be in (0, 1], got {max_share}")
    cap = max(max_share, 1 / len(counts))
    capped: set[int] = set()
    while True:
        free = [i for i in range(len(counts)) if i not in capped]
        left = 1.0 - cap * len(capped)
        free_total = sum(counts[i] for i in free)
        for i in free:
            shares[i] = left * counts[i] / free_total
        over = [i for i in free if shares[i] > cap * (1 + 1e-12)]
        if not over:
            break
        for i in over:
            shares[i] = cap
            capped.add(i)
    return shares


def median(contributions: Sequence[Contribution]) -> Weights:
    """Coordinate-wise median (robust to a minority of arbitrary updates; ignores counts)."""
    first = _checked(contributions)
    return Weights(
        (n, np.median(np.stack([c.weights[n] for c in contributions]), axis=0)) for n in first
    )


def trimmed_mean(contributions: Sequence[Contribution], trim: float = 0.1) -> Weights:
    """Coordinate-wise mean after dropping the `trim` fraction of largest and smallest values."""
    if not 0 <= trim < 0.5:
        raise AggregationError(f"trim must be in [0, 0.5), got {trim}")
    first = _checked(contributions)
    k = int(trim * len(contributions))
    out = []
    for n in first:
        stacked = np.sort(np.stack([c.weights[n] for c in contributions]), axis=0)
        kept = stacked[k : len(contributions) - k]
        out.append((n, kept.mean(axis=0, dtype=np.float64)))
    return Weights(out)
