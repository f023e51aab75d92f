"""FedAvg: updates averaged by the samples each participant claims, no one's share above a cap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.rules import capped_shares, weighted_sum
from disco.errors import AggregationError
from disco.weights import Weights

__all__ = ["MeanAggregator"]


class MeanAggregator(Aggregator):
    """FedAvg over deltas, each participant's share capped at `max_share` (None: no cap)."""

    rule = "mean"

    def __init__(self, max_share: float | None = None) -> None:
        if max_share is not None and not 0 < max_share <= 1:
            raise AggregationError(f"max_share must be in (0, 1], got {max_share}")
        self.max_share = max_share

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        counts = [u.num_samples for u in updates]
        plain = capped_shares(counts)
        shares = capped_shares(counts, self.max_share)
        delta = weighted_sum([u.delta for u in updates], shares)
        reports = [
            ParticipantReport(u.participant, share, clipped=share < fair * (1 - 1e-9))
            for u, share, fair in zip(updates, shares, plain, strict=True)
        ]
        return delta, reports

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "max_share": self.max_share}
