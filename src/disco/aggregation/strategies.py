"""The aggregation rules behind the `Aggregator` interface, and how a task picks one.

* `MeanAggregator` — FedAvg: deltas weighted by the samples each participant claims, no share
  above `max_share` (water-filling, `rules.capped_shares`): a participant that claims 2^40
  samples gets at most that share of the round.
* `MedianAggregator` — coordinate-wise median of the deltas; counts are ignored.
* `TrimmedMeanAggregator` — coordinate-wise mean after dropping the `beta` fraction of largest and
  smallest values; counts are ignored.
* `KrumAggregator`, `MultiKrumAggregator` — the update(s) closest to the others
  (`disco.aggregation.krum`).
* `CenteredClippingAggregator` — per-participant momentum clipped around the previous combined
  update (`disco.aggregation.clipping`).
* `CosineTrustAggregator` — the mean of the updates pointing the way of the model's recent
  steps (`disco.aggregation.trust`).

The robust rules but cosine trust take a `bucket_size`: with s > 1 they combine the means of
random buckets of at most s updates (`disco.aggregation.bucketing`).

Every result is bit-identical whatever the order in which updates arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.bucketing import Bucketing
from disco.aggregation.clipping import CenteredClippingAggregator
from disco.aggregation.krum import KrumAggregator, MultiKrumAggregator
from disco.aggregation.mean import MeanAggregator
from disco.aggregation.rules import Contribution, median, trimmed_mean
from disco.aggregation.trust import CosineTrustAggregator
from disco.errors import AggregationError
from disco.task import (
    CenteredClippingRule,
    CosineTrustRule,
    KrumRule,
    MeanRule,
    MedianRule,
    MultiKrumRule,
    TrainingInfo,
    TrimmedMeanRule,
)
from disco.weights import Weights

__all__ = [
    "RULES",
    "MedianAggregator",
    "TrimmedMeanAggregator",
    "build_aggregator",
]


class MedianAggregator(Aggregator):
    """Coordinate-wise median of the deltas."""

    rule = "median"

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        delta = median([Contribution(u.delta) for u in updates])
        return delta, [ParticipantReport(u.participant, 1 / len(updates)) for u in updates]


class TrimmedMeanAggregator(Aggregator):
    """Coordinate-wise mean without the `beta` fraction of extremes at each end."""

    rule = "trimmed_mean"

    def __init__(self, beta: float = 0.1) -> None:
        if not 0 <= beta < 0.5:
            raise AggregationError(f"beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        delta = trimmed_mean([Contribution(u.delta) for u in updates], self.beta)
        return delta, [ParticipantReport(u.participant, 1 / len(updates)) for u in updates]

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "beta": self.beta}


RULES: dict[str, type[Aggregator]] = {
    cls.rule: cls
    for cls in (
        MeanAggregator,
        MedianAggregator,
        TrimmedMeanAggregator,
        KrumAggregator,
        MultiKrumAggregator,
        CenteredClippingAggregator,
        CosineTrustAggregator,
    )
}
"""The rules a task can name (`TrainingInfo.aggregation.rule`), by name."""


def build_aggregator(training: TrainingInfo, *, secret: str | None = None) -> Aggregator:
    """The aggregator a task's training settings ask for (one per session: it keeps state).

    `secret` seeds the bucketing shuffle (default: a random one, unforeseeable by participants);
    peers of a decentralized session share one so that they all form the same buckets."""
    config = training.aggregation
    inner: Aggregator
    if isinstance(config, MeanRule):
        return MeanAggregator(config.max_share)
    if isinstance(config, CenteredClippingRule):  # buckets after each participant's momentum
        return CenteredClippingAggregator(
            config.tau, config.iterations, config.momentum, config.bucket_size, secret=secret
        )
    if isinstance(config, CosineTrustRule):  # no buckets: mixing would hide who points away
        return CosineTrustAggregator(config.min_cosine, config.momentum)
    if isinstance(config, MedianRule):
        inner = MedianAggregator()
    elif isinstance(config, TrimmedMeanRule):
        inner = TrimmedMeanAggregator(config.beta)
    elif isinstance(config, MultiKrumRule):
        inner = MultiKrumAggregator(config.f, config.m)
    elif isinstance(config, KrumRule):
        inner = KrumAggregator(config.f)
    else:
        raise AggregationError(f"unknown aggregation {config!r}")
    return inner if config.bucket_size == 1 else Bucketing(inner, config.bucket_size, secret)
