"""Krum and multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS 2017).

Each update's *score* is the sum of the squared L2 distances (over all tensors, in float64) to its
n − f − 2 nearest other updates, where f is the number of participants that may be dishonest:
an update inside the crowd of honest ones scores low, one far from it scores high. Krum keeps
the update of lowest score as it is; multi-Krum averages the m lowest (m = n − f by default),
everyone counting equally. The guarantee needs n > 2f + 2 updates: with fewer, a round is refused
with `AggregationError`.

    scores[i] = Σ_{j ∈ nearest n−f−2 of i} ‖Δ_i − Δ_j‖²
    selected  = the m lowest (score, participant id)  → mean of their deltas, share 1/m each

Ties are broken by participant id, and every sum is taken in a canonical order, so the result is
bit-identical whatever the order in which updates arrived. Sample counts are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.rules import weighted_sum
from disco.errors import AggregationError
from disco.task import krum_min_updates
from disco.weights import Weights

__all__ = ["KrumAggregator", "MultiKrumAggregator", "krum_scores", "pairwise_distances"]

_BLOCK_VALUES = 1 << 20  # values per block of the Gram matrix computation (n × block ≤ 8 MB)


def pairwise_distances(deltas: Sequence[Weights]) -> np.ndarray:
    """The n × n squared L2 distances between `deltas` (float64, over all tensors).

    Computed as ‖a‖² + ‖b‖² − 2·a·b from one Gram matrix, a block of coordinates at a time:
    the memory is n × block, not n copies of the model, and the products run in BLAS.
    """
    n = len(deltas)
    gram = np.zeros((n, n), dtype=np.float64)
    block = max(1, _BLOCK_VALUES // max(n, 1))
    for name in deltas[0]:
        flat = [d[name].reshape(-1) for d in deltas]
        for start in range(0, flat[0].size, block):
            x = np.stack([f[start : start + block] for f in flat]).astype(np.float64)  # (n, b)
            gram += x @ x.T
    sq = np.diag(gram)
    dist = sq[:, None] + sq[None, :] - 2 * gram
    np.fill_diagonal(dist, 0.0)
    return np.maximum(dist, 0.0)  # rounding can leave -1e-17 for equal updates


def krum_scores(dist: np.ndarray, f: int) -> list[float]:
    """Each update's Krum score from the squared distances `dist`: the sum of its distances to
    its n − f − 2 nearest others. Needs n > 2f + 2 (checked by the aggregators, in their words).
    """
    n = dist.shape[0]
    k = n - f - 2
    if f < 0 or k < 1:
        need = krum_min_updates(f)
        raise AggregationError(f"Krum with f={f} needs at least {need} updates, got {n}")
    return [float(np.sort(np.delete(dist[i], i))[:k].sum()) for i in range(n)]


class KrumAggregator(Aggregator):
    """Krum: the update closest to its n − f − 2 nearest others, used as it is."""

    rule = "krum"

    def __init__(self, f: int = 1) -> None:
        if f < 0:
            raise AggregationError(f"f (participants that may be dishonest) must be ≥ 0, got {f}")
        self.f = f

    @property
    def min_updates(self) -> int:
        """The fewest updates a round needs: 2f + 3 (more than 2f + 2)."""
        return krum_min_updates(self.f)

    def count(self, n: int) -> int:
        """How many of `n` updates are selected (Krum: one)."""
        return 1

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        n = len(updates)
        if n < self.min_updates:
            raise AggregationError(
                f"{self.rule} with f={self.f} (participants that may be dishonest) needs at least "
                f"{self.min_updates} updates in a round (more than 2f + 2), got {n}"
            )
        m = self.count(n)
        ranked = sorted(updates, key=lambda u: u.participant)  # canonical order
        scores = dict(
            zip(
                (u.participant for u in ranked),
                krum_scores(pairwise_distances([u.delta for u in ranked]), self.f),
                strict=True,
            )
        )
        chosen = sorted(ranked, key=lambda u: (scores[u.participant], u.participant))[:m]
        if m == 1:
            delta = chosen[0].delta
        else:
            delta = weighted_sum([u.delta for u in chosen], [1 / m] * m)
        picked = {u.participant for u in chosen}
        reports = [
            ParticipantReport(
                u.participant,
                1 / m if u.participant in picked else 0.0,
                selected=u.participant in picked,
                score=scores[u.participant],
            )
            for u in updates
        ]
        return delta, reports

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "f": self.f}


class MultiKrumAggregator(KrumAggregator):
    """Multi-Krum: the mean of the `m` updates of lowest Krum score (default m = n − f)."""

    rule = "multi_krum"

    def __init__(self, f: int = 1, m: int | None = None) -> None:
        super().__init__(f)
        if m is not None and m < 1:
            raise AggregationError(f"m (updates averaged) must be ≥ 1, got {m}")
        self.m = m

    def count(self, n: int) -> int:
        """How many of `n` updates are averaged: `m`, or n − f when it is not set."""
        if self.m is None:
            return n - self.f
        if self.m > n:
            raise AggregationError(
                f"multi_krum averages m={self.m} updates but the round has only {n}"
            )
        return self.m

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "f": self.f, "m": self.m}
