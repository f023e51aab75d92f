"""The aggregator seam: how a round's updates become the next global model.

Whoever aggregates — the federated server's session today, decentralized peers later — calls
only `Aggregator.aggregate`. An aggregator receives the round's global model and each
participant's update as a *delta* from it, with the participant's stable identity in the session
and the sample count it claims; it may keep state across rounds (momentum, previous aggregate) in
itself; it returns the new global model and a `ParticipantReport` per participant (weight used,
selected or not, clipped or not, score), which the server records in the round's history.

    Aggregator.aggregate(global, updates) ──► checks (shapes, finite, distinct ids)
                                          ──► combine(global, updates) → (delta, reports)
                                          ──► global + delta, checked finite
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

__all__ = ["AggregationResult", "Aggregator", "ParticipantReport", "Update"]


@dataclass(frozen=True)
class Update:
    """One participant's contribution to a round: its change to the global model."""

    participant: str
    """Stable identity of the participant within the session."""
    delta: Weights
    """Trained weights minus the round's global model."""
    num_samples: int = 1
    """Samples it claims to have trained on (self-reported: rules must not trust it blindly)."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise AggregationError(f"num_samples must be ≥ 1, got {self.num_samples}")


@dataclass(frozen=True)
class ParticipantReport:
    """What the rule did with one participant's update."""

    participant: str
    weight: float
    """Its share of the combined update (0 when not selected; the shares of a round sum to 1)."""
    selected: bool = True
    clipped: bool = False
    score: float | None = None
    """A rule-specific score (e.g. Krum's distance score), None when the rule has none."""


@dataclass(frozen=True)
class AggregationResult:
    """The new global model and the report of every participant, in the updates' order."""

    weights: Weights
    reports: tuple[ParticipantReport, ...]


class Aggregator(ABC):
    """A rule that combines a round's updates; may keep state across rounds."""

    rule: ClassVar[str]
    """The rule's name, as in a task's ``aggregation``."""

    def aggregate(self, global_weights: Weights, updates: Sequence[Update]) -> AggregationResult:
        """Check the updates, combine them and apply the result to `global_weights`."""
        if not updates:
            raise AggregationError("nothing to aggregate: no updates")
        ids = [u.participant for u in updates]
        if len(set(ids)) != len(ids):
            raise AggregationError(f"one update per participant, got {sorted(ids)}")
        for u in updates:
            try:
                u.delta.check_like(global_weights, f"the update of {u.participant!r}")
            except WeightsError as exc:
                raise AggregationError(str(exc)) from exc
            if not u.delta.is_finite():
                raise AggregationError(f"the update of {u.participant!r} is not finite")
        delta, reports = self.combine(global_weights, updates)
        weights = global_weights + delta
        if not weights.is_finite():
            raise AggregationError(f"rule {self.rule!r} produced NaN or infinite values")
        if [r.participant for r in reports] != ids:
            raise AggregationError(f"rule {self.rule!r} reported on other participants")
        return AggregationResult(weights, tuple(reports))

    @abstractmethod
    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, Sequence[ParticipantReport]]:
        """The combined delta and a report per update (same order); inputs are checked."""

    def describe(self) -> dict[str, Any]:
        """The rule and its settings, for round histories and logs."""
        return {"rule": self.rule}
