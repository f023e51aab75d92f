"""Centered clipping with momentum (Karimireddy, He & Jaggi, "Learning from History for Byzantine
Robust Optimization", ICML 2021).

The aggregator remembers, per participant (by its stable id), a momentum of its updates, and the
previous round's combined update v. Each round, from v:

    m_i ← (1 − β)·Δ_i + β·m_i          (a participant seen for the first time: m_i ← Δ_i)
    repeat `iterations` times:
        v ← v + (1/n) Σ_i clip(m_i − v, τ),    clip(x, τ) = x · min(1, τ / ‖x‖₂)

and v is the round's combined update (remembered for the next round). ‖·‖₂ is taken over all
tensors together, in float64. With ``tau=None`` (the default) τ is set each round to the median
of the distances ‖m_i − v‖ from the starting point: an honest majority sets it, whatever the
model's scale, and no one has to guess it; up to half the participants can be dishonest without
moving it past an honest distance. No participant moves v by more than τ/n per iteration,
however far its update; the momentum averages each participant's updates over rounds, so an
attack spread thin over many rounds does not add up.

A participant absent from a round keeps its momentum, for up to `FORGET_AFTER_ROUNDS` rounds in a
row; after that it is forgotten and, should it come back, starts again from its update as a
newcomer. The memory of a long session is so bounded by its recent participants, not by everyone
who ever took part. (A participant that reconnects with its ``participant_key`` keeps its
identity, docs/protocol.md §9, and so its momentum.)

With ``bucket_size`` s > 1 the momenta are averaged in random buckets of at most s
(`disco.aggregation.bucketing`) before they are clipped — the order of Karimireddy, He & Jaggi
(ICLR 2022): momentum per participant, then buckets, then the robust rule.

The state advances once per global model: when the same global model is aggregated again (a
server retrying a round whose close failed), the round starts again from the state before it,
so a retry never applies the momentum twice. Sums run in participant-id order: the result is
bit-identical whatever the order in which updates arrived.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.bucketing import bucket_groups, spread_reports
from disco.errors import AggregationError
from disco.weights import Weights

__all__ = ["FORGET_AFTER_ROUNDS", "CenteredClippingAggregator", "automatic_tau", "centered_clip"]

FORGET_AFTER_ROUNDS = 50
"""A participant absent for more rounds in a row than this loses its momentum (it is forgotten):
long enough to ride out dropouts and reconnects, short enough that the momenta of participants
who left for good do not pile up over a long session."""


def _clip(x: np.ndarray, tau: float) -> tuple[np.ndarray, bool]:
    """x · min(1, τ/‖x‖₂), and whether it was shortened."""
    norm = float(np.sqrt(np.dot(x, x)))
    if norm <= tau:
        return x, False
    return x * (tau / norm), True


def centered_clip(
    vectors: Sequence[np.ndarray], start: np.ndarray, tau: float | None, iterations: int = 1
) -> tuple[np.ndarray, list[bool]]:
    """v after `iterations` steps v ← v + (1/n) Σ clip(x_i − v, τ) from `start`, and for each
    vector whether its difference was clipped in the last step. Sums in the given order.
    τ None: the median distance of the vectors from `start`."""
    if not vectors:
        raise AggregationError("nothing to aggregate: no updates")
    v = np.asarray(start, dtype=np.float64)
    if tau is None:
        tau = automatic_tau(vectors, v)
    if not tau > 0 or iterations < 1:
        if tau == 0:  # every vector is at the start: nothing moves
            return v, [False] * len(vectors)
        raise AggregationError(f"need tau > 0 and iterations ≥ 1, got {tau} and {iterations}")
    clipped: list[bool] = []
    for _ in range(iterations):
        steps = [_clip(x - v, tau) for x in vectors]
        clipped = [c for _, c in steps]
        total = np.zeros_like(v)
        for step, _ in steps:
            total += step
        v = v + total / len(vectors)
    return v, clipped


def automatic_tau(vectors: Sequence[np.ndarray], start: np.ndarray) -> float:
    """The median of the vectors' L2 distances from `start` (the clipping radius by default)."""
    return float(np.median([np.sqrt(np.dot(x - start, x - start)) for x in vectors]))


@dataclass
class _State:
    """What centered clipping remembers between rounds (flat float64 vectors)."""

    momenta: dict[str, np.ndarray] = field(default_factory=dict)
    aggregate: np.ndarray | None = None
    rounds: int = 0
    """Rounds combined so far."""
    last_seen: dict[str, int] = field(default_factory=dict)
    """For each remembered participant, the round (from 1) of its last update."""


class CenteredClippingAggregator(Aggregator):
    """Centered clipping of the participants' momenta around the previous combined update."""

    rule = "centered_clipping"

    def __init__(
        self,
        tau: float | None = None,
        iterations: int = 1,
        momentum: float = 0.5,
        bucket_size: int = 1,
        secret: str | None = None,
    ) -> None:
        if tau is not None and not tau > 0:
            raise AggregationError(f"tau must be > 0, got {tau}")
        if iterations < 1:
            raise AggregationError(f"iterations must be ≥ 1, got {iterations}")
        if not 0 <= momentum < 1:
            raise AggregationError(f"momentum must be in [0, 1), got {momentum}")
        if bucket_size < 1:
            raise AggregationError(f"bucket_size must be ≥ 1, got {bucket_size}")
        self.tau, self.iterations = tau, iterations
        self.momentum, self.bucket_size = momentum, bucket_size
        self._state = _State()
        self._secret = secrets.token_hex(16) if secret is None else secret  # unforeseeable buckets
        self._before: tuple[int, _State] | None = None  # (round, the state before it)

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        key = global_weights.digest()
        again = self._before is not None and self._before[0] == self.current_round
        state = self._before[1] if again and self._before else self._state
        if self.current_round is not None:  # the same round again starts from the state before
            self._before = (self.current_round, state)

        rounds = state.rounds + 1
        last_seen = {**state.last_seen, **{u.participant: rounds for u in updates}}
        last_seen = {p: r for p, r in last_seen.items() if rounds - r <= FORGET_AFTER_ROUNDS}
        momenta = self._momenta(state, updates, global_weights.size)
        momenta = {p: m for p, m in momenta.items() if p in last_seen}  # the rest are forgotten
        start = state.aggregate
        if start is None or start.size != global_weights.size:
            start = np.zeros(global_weights.size, dtype=np.float64)
        ids = sorted(u.participant for u in updates)
        if self.bucket_size == 1:
            groups = [[p] for p in ids]
            points = [momenta[p] for p in ids]
        else:  # momentum per participant, then buckets (ICLR 2022, Algorithm 2)
            groups = bucket_groups(ids, self.bucket_size, self._secret + key)
            points = [np.mean([momenta[p] for p in g], axis=0) for g in groups]
        v, clipped = centered_clip(points, start, self.tau, self.iterations)
        point_reports = [
            ParticipantReport(
                f"bucket-{k}",
                1 / len(points),
                clipped=c,
                score=float(np.linalg.norm(x - start)),
            )
            for k, (x, c) in enumerate(zip(points, clipped, strict=True), start=1)
        ]
        self._state = _State(momenta, v, rounds, last_seen)
        return global_weights.unflatten(v), spread_reports(updates, groups, point_reports)

    def _momenta(
        self, state: _State, updates: Sequence[Update], size: int
    ) -> dict[str, np.ndarray]:
        """Each participant's momentum after this round's updates (the absent ones' kept)."""
        momenta = dict(state.momenta)
        beta = self.momentum
        for u in updates:
            delta = u.delta.flatten().astype(np.float64)
            previous = momenta.get(u.participant)
            if previous is None or previous.size != size:
                momenta[u.participant] = delta  # first seen: starts from its update
            else:
                momenta[u.participant] = (1 - beta) * delta + beta * previous
        return momenta

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "tau": self.tau,
            "iterations": self.iterations,
            "momentum": self.momentum,
            "bucket_size": self.bucket_size,
        }
