"""Cosine trust: the updates that point the way the model has been moving, averaged.

In the spirit of FLTrust (Cao, Fang, Liu & Gong, NDSS 2021), without its server dataset: each
update is compared with a reference direction d, the model's recent steps — the change the last
round made to the global model, averaged with the earlier ones' (the aggregator remembers the
model each round started from and the direction it used):

    d ← β·d + (1 − β)·(this round's model − the last round's)     (β: ``momentum``, 0.9)

In a round with no earlier step — the first one, the first after a restart, or the first after a
fallback — d is the coordinate-wise median of the round's deltas. Then

    cos_i     = ⟨Δ_i, d⟩ / (‖Δ_i‖·‖d‖)                     (0 when either is zero)
    trusted_i = cos_i > min_cosine                         (min_cosine ≥ 0; 0: FLTrust's ReLU test)
    w_i       = min(n_i, median of the round's claimed counts)   if trusted_i, else 0
    Δ         = Σ_i w_i · clip(Δ_i, M) / Σ_i w_i,   M = 2 × the median of the round's ‖Δ_j‖

with clip(x, M) = x · min(1, M/‖x‖). An update pointing away from the model's way (a sign flip,
a sample-count liar sending −Δ, inner-product manipulation) gets no weight, whatever it claims;
the count cap keeps FedAvg's weighting below the median count while a claim above it buys
nothing; the norm clip (`NORM_BOUND`) leaves honest updates their length while a scaled update
counts as at most twice as long as a typical one. Norms and products are taken over all tensors
together, in float64.

Two departures from FLTrust, both measured (benchmarks/RESULTS.md). FLTrust weighs each update
by its cosine; here a trusted update weighs its (capped) count. The reference is made of the
rule's own results, and weighing by the cosine feeds back: late in training, when honest cosines
are small, an attacker that edges above 0 gains weight, the direction turns towards it, honest
updates drop out, and within a few rounds the attackers own the direction (the sample-count lie
reached 10% accuracy at 60 rounds). FLTrust also rescales every update to its reference's norm;
a mean of unit vectors is shorter than they are, so with a reference made of earlier steps that
shrinks every round's step (63% at 8 rounds).

**The honest majority, checked.** The rule assumes most updates point the model's way. When fewer
than half of the round's updates are trusted, that assumption failed — the direction went stale
or was turned — and the round falls back to the coordinate-wise median of the deltas (everyone
counting equally), and the next round's direction starts afresh from this round's step.
`describe` says so for that round (``"fallback": true``), as it says which reference it used
(``"reference"``: ``recent_steps`` or ``median``).

Reports: share = w_i / Σ w, selected = trusted_i, clipped = selected and ‖Δ_i‖ > M, score =
cos_i. Sums run in participant-id order, so the result is bit-identical whatever the order in
which updates arrived. A retried round (the same ``round`` again, as when a server's close
failed) uses the same reference as the first try.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.rules import Contribution, median
from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

__all__ = ["NORM_BOUND", "CosineTrustAggregator", "Trust", "cosine_trust"]

log = logging.getLogger("disco.aggregation")

NORM_BOUND = 2.0
"""An update longer than this many times the round's median update is shortened to it: honest
updates seldom are (on the MNIST benchmark's split the longest honest update was 1.4 to 2.2 times
the median; clipping at the median itself cost a point under the sample-count lie,
benchmarks/RESULTS.md), and a scaled update counts as at most twice as long as a typical one."""


def _dot(a: Weights, b: Weights) -> float:
    """⟨a, b⟩ over all tensors, in float64."""
    total = 0.0
    for name in a:
        total += float(
            np.dot(a[name].ravel().astype(np.float64), b[name].ravel().astype(np.float64))
        )
    return total


@dataclass(frozen=True)
class Trust:
    """What the rule decided for one update."""

    cosine: float
    trusted: bool
    count: float
    """Its claimed count, capped at the round's median count."""
    factor: float
    """What its delta is multiplied by: min(1, M / ‖Δ‖), M twice the median norm."""

    @property
    def weight(self) -> float:
        """Its capped count if trusted, else 0 (its share is this over the round's total)."""
        return self.count if self.trusted else 0.0


def cosine_trust(
    deltas: Sequence[Weights],
    counts: Sequence[int],
    reference: Weights,
    min_cosine: float = 0.0,
) -> tuple[Weights | None, list[Trust]]:
    """The mean of the `deltas` that point the `reference`'s way, weighted by their capped
    counts, in the given order (callers sort for order independence), and each delta's trust;
    None when fewer than half of them point that way."""
    if not deltas or len(deltas) != len(counts):
        raise AggregationError(f"{len(deltas)} deltas for {len(counts)} counts")
    ref_norm = float(np.sqrt(_dot(reference, reference)))
    norms = [float(np.sqrt(_dot(d, d))) for d in deltas]
    bound = NORM_BOUND * float(np.median(norms))
    cap = statistics.median(counts)
    trusts = []
    for d, n, norm in zip(deltas, counts, norms, strict=True):
        cos = _dot(d, reference) / (norm * ref_norm) if norm > 0 and ref_norm > 0 else 0.0
        cos = min(1.0, max(-1.0, cos))
        factor = min(1.0, bound / norm) if norm > 0 else 1.0
        trusts.append(Trust(cos, cos > max(min_cosine, 0.0), float(min(n, cap)), factor))
    if 2 * sum(t.trusted for t in trusts) < len(trusts):
        return None, trusts
    total = sum(t.weight for t in trusts)
    out = []
    for name in deltas[0]:
        acc = np.zeros(deltas[0][name].shape, dtype=np.float64)
        for d, t in zip(deltas, trusts, strict=True):
            if t.trusted:
                acc += (t.weight / total * t.factor) * d[name].astype(np.float64)
        out.append((name, acc))
    return Weights(out), trusts


@dataclass(frozen=True)
class _Start:
    """Where a round started: its number (None: not said), the global model, and the direction
    it compared the updates with (None: it had none and took the median of the deltas)."""

    round: int | None
    weights: Weights
    direction: Weights | None


class CosineTrustAggregator(Aggregator):
    """The updates pointing the way of the model's recent steps, averaged by their counts capped
    at the median, norms at twice the median norm; the coordinate-wise median when fewer than
    half point that way."""

    rule = "cosine_trust"

    def __init__(self, min_cosine: float = 0.0, momentum: float = 0.9) -> None:
        if not 0 <= min_cosine < 1:
            raise AggregationError(f"min_cosine must be in [0, 1), got {min_cosine}")
        if not 0 <= momentum < 1:
            raise AggregationError(f"momentum must be in [0, 1), got {momentum}")
        self.min_cosine, self.momentum = min_cosine, momentum
        self._last: _Start | None = None  # where the last round combined started
        self._earlier: _Start | None = None  # where the round before it started (for retries)
        self._outcome: dict[str, Any] = {}  # how the last round was combined, for `describe`

    def _retry(self) -> bool:
        """Whether this round is the last one again (a server retrying a close that failed)."""
        last, now = self._last, self.current_round
        return last is not None and now is not None and last.round == now

    def reference(self, global_weights: Weights) -> Weights | None:
        """The direction a round starting at `global_weights` compares the updates with: the
        change the last round made to the model, averaged with the earlier ones'
        (d ← β·d + (1 − β)·step); None when there is none (no earlier round, another model
        since, or no change at all)."""
        previous = self._earlier if self._retry() else self._last
        if previous is None:
            return None
        try:
            step = global_weights - previous.weights
        except WeightsError:  # the model's shapes changed: no step to follow
            return None
        if previous.direction is None or self.momentum == 0:
            direction = step
        else:
            direction = previous.direction * self.momentum + step * (1 - self.momentum)
        return direction if direction.l2_norm() > 0 else None

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        ordered = sorted(updates, key=lambda u: u.participant)  # canonical order
        deltas = [u.delta for u in ordered]
        direction = self.reference(global_weights)
        if direction is None:
            reference = median([Contribution(d) for d in deltas])
        else:
            reference = direction
        counts = [u.num_samples for u in ordered]
        delta, trusts = cosine_trust(deltas, counts, reference, self.min_cosine)
        of = dict(zip((u.participant for u in ordered), trusts, strict=True))
        fallback = delta is None
        if delta is None:  # most updates do not point the reference's way: everyone equally
            log.warning(
                "cosine_trust: %d of %d updates point the way of the %s; the round uses the median",
                sum(t.trusted for t in trusts),
                len(trusts),
                "round's median" if direction is None else "model's recent steps",
            )
            delta = reference if direction is None else median([Contribution(d) for d in deltas])
            share = 1 / len(updates)
            reports = [
                ParticipantReport(u.participant, share, score=of[u.participant].cosine)
                for u in updates
            ]
        else:
            total = sum(t.weight for t in trusts)
            reports = [
                ParticipantReport(
                    u.participant,
                    t.weight / total,
                    selected=t.trusted,
                    clipped=t.trusted and t.factor < 1,
                    score=t.cosine,
                )
                for u in updates
                for t in (of[u.participant],)
            ]
        if not self._retry():
            self._earlier = self._last
        # after a fallback the direction is not trusted: the next round starts from the step
        self._last = _Start(self.current_round, global_weights, None if fallback else direction)
        self._outcome = {
            "reference": "median" if direction is None else "recent_steps",
            "fallback": fallback,
        }
        return delta, reports

    def describe(self) -> dict[str, Any]:
        """The rule, its settings and, once a round was combined, that round's reference
        (``recent_steps`` or ``median``) and whether it fell back to the median."""
        return {
            "rule": self.rule,
            "min_cosine": self.min_cosine,
            "momentum": self.momentum,
            **self._outcome,
        }
