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

A server receives a round's updates one by one, so it opens a `RoundCollector` per round
(`Aggregator.open_round`) and adds each update as it is accepted; `RoundCollector.result()` is the
round's `AggregationResult`. The default collector keeps every update until the round closes and
then calls `aggregate` (memory: one model per update). A rule that can combine as updates arrive
overrides `open_round`: FedAvg folds each update into one running sum (`disco.aggregation.mean`),
so a round's memory does not grow with the number of participants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from threading import Lock
from typing import Any, ClassVar

from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

__all__ = [
    "AggregationResult",
    "Aggregator",
    "BufferedRound",
    "ParticipantReport",
    "RoundCollector",
    "Update",
]


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

    current_round: int | None = None
    """The round `combine` is combining, as given to `aggregate` (None: not said). A rule with
    state across rounds (centered clipping) combines the same round again from the state before
    it, as when a server retries a round whose close failed."""

    def open_round(self, global_weights: Weights, round: int | None = None) -> RoundCollector:
        """A collector for round `round`'s updates on `global_weights` (default: keeps them
        all, then `aggregate`)."""
        return BufferedRound(self, global_weights, round)

    def aggregate(
        self, global_weights: Weights, updates: Sequence[Update], *, round: int | None = None
    ) -> AggregationResult:
        """Check the updates, combine them and apply the result to `global_weights`; `round`
        names the round (see `current_round`)."""
        if not updates:
            raise AggregationError("nothing to aggregate: no updates")
        ids = [u.participant for u in updates]
        if len(set(ids)) != len(ids):
            raise AggregationError(f"one update per participant, got {sorted(ids)}")
        for u in updates:
            check_update(global_weights, u.participant, u.delta)
        self.current_round = round
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


class RoundCollector(ABC):
    """One round's updates, added as they are accepted; thread-safe.

    `add` either records the whole update or raises `AggregationError` and records nothing.
    `result` can be called again (a round whose close failed is retried) and does not consume
    the updates.
    """

    def __init__(self, global_weights: Weights) -> None:
        self.global_weights = global_weights
        self._lock = Lock()
        self._participants: dict[str, int] = {}

    @property
    def participants(self) -> dict[str, int]:
        """The participants added so far and the sample counts they claim, in arrival order."""
        with self._lock:
            return dict(self._participants)

    def add(self, participant: str, weights: Weights, num_samples: int) -> None:
        """Record `participant`'s trained `weights` (made from this round's global model)."""
        check_update(self.global_weights, participant, weights, finite=False)  # _add: finite
        with self._reserved(participant, num_samples):
            self._add(participant, weights, num_samples)

    @contextmanager
    def _reserved(self, participant: str, num_samples: int) -> Iterator[None]:
        """One update per participant: reserve its place, give it back if adding fails."""
        if num_samples < 1:
            raise AggregationError(f"num_samples must be ≥ 1, got {num_samples}")
        with self._lock:
            if participant in self._participants:
                raise AggregationError(f"{participant!r} already sent an update this round")
            self._participants[participant] = num_samples
        try:
            yield
        except BaseException:
            with self._lock:
                del self._participants[participant]
            raise

    @abstractmethod
    def _add(self, participant: str, weights: Weights, num_samples: int) -> None:
        """Record an update of the right shapes (once per participant, maybe from several
        threads); raise `AggregationError` if it is not finite or cannot be recorded."""

    @abstractmethod
    def result(self) -> AggregationResult:
        """The new global model and the report of every participant, in arrival order."""


class BufferedRound(RoundCollector):
    """Keeps every update as a delta; `result` hands them all to the aggregator."""

    def __init__(
        self, aggregator: Aggregator, global_weights: Weights, round: int | None = None
    ) -> None:
        super().__init__(global_weights)
        self._aggregator = aggregator
        self._round = round
        self._updates: dict[str, Update] = {}

    def _add(self, participant: str, weights: Weights, num_samples: int) -> None:
        check_update(self.global_weights, participant, weights)
        update = Update(participant, weights - self.global_weights, num_samples)
        with self._lock:
            self._updates[participant] = update

    def result(self) -> AggregationResult:
        with self._lock:  # not those still being added
            updates = [self._updates[p] for p in self._participants if p in self._updates]
        return self._aggregator.aggregate(self.global_weights, updates, round=self._round)


def check_update(
    reference: Weights, participant: str, weights: Weights, *, finite: bool = True
) -> None:
    """`weights` have the names and shapes of `reference` (and are finite), or AggregationError."""
    try:
        weights.check_like(reference, f"the update of {participant!r}")
    except WeightsError as exc:
        raise AggregationError(str(exc)) from exc
    if finite and not weights.is_finite():
        raise AggregationError(f"the update of {participant!r} is not finite")
