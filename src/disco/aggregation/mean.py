"""FedAvg, folded as updates arrive: exact fixed-point sums, no one's share above a cap.

The mean of a round is Σ sᵢ·Δᵢ, where Δᵢ is participant i's change to the global model and sᵢ its
share: its claimed sample count over the round's total, no share above ``max_share`` (the excess
is spread over the others in proportion to their counts, `rules.capped_shares`).

**Streaming.** The server adds each update to the round as it is accepted (`open_round`) and does
not keep it: the round holds one running sum, so its memory does not grow with the number of
participants. The result must not depend on arrival order, and floating-point sums do (addition
rounds differently in another order), so the sum is kept in fixed point (`disco.aggregation.fold`):

    S = Σ rint(nᵢ · Δᵢ · 2^24)      (int64: integer addition is exact, in every order)

and the mean change is S / (2^24 · Σ nᵢ). Each term is rounded once, to 2^-24 ≈ 6e-8 of a change
times its count (float32's own step at 1.0), so S — and the new model computed from it — is
bit-identical for every arrival order (the tests try 2,000 orders of 8 updates, and adds from
several threads). Bounds keep the sum exact: a change of ``MAX_CHANGE`` (256) or more in one value
is refused (error code ``out_of_range``); a claimed count above ``COUNT_LIMIT`` (131,072) counts as
131,072 (so among participants claiming more, shares are equal rather than proportional); a round
takes updates until their counts total ``COUNT_ROOM`` (2^31), at least ``ROOM`` (16,383) updates
whatever they claim, and then answers "round full" rather than let a sum wrap around.

**Speed.** The fold is one compiled pass (``_fold.c``; numpy where no compiler was found). Updates
that arrive while another is being folded — many participants finishing at once — are folded
together, a chunk of values at a time, so the sums are read and written once for all of them.

**The cap** needs every count before it knows who is capped. The capped participants are always
among the largest counts, and fewer than 1/``max_share`` of them can be capped, so the round keeps
the updates of the ⌈1/max_share⌉ − 1 largest counts (one with the default 0.5) and at the end
takes them out of S and adds them back at their capped share.

Memory of a round: the int64 sum (2× the model's float32 size), plus the ⌈1/max_share⌉ − 1 kept
updates; never more with more participants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from disco.aggregation import fold
from disco.aggregation.base import (
    AggregationResult,
    Aggregator,
    ParticipantReport,
    RoundCollector,
    Update,
)
from disco.aggregation.rules import capped_shares
from disco.aggregation.sums import COUNT_ROOM, FoldedSums
from disco.errors import AggregationError
from disco.weights import Array, Weights

__all__ = [
    "COUNT_LIMIT",
    "COUNT_ROOM",
    "FRACTION_BITS",
    "MAX_CHANGE",
    "ROOM",
    "MeanAggregator",
    "MeanRound",
]

FRACTION_BITS = 24
"""Changes are summed in units of 2^-24 (≈ 6e-8, float32's own step at 1.0)."""
MAX_CHANGE = fold.MAX_CHANGE
"""A change of one value in one round must stay below this (256, in absolute value)."""
COUNT_LIMIT = 2**17
"""Claimed sample counts above this (131,072) count as this many."""
ROOM = (COUNT_ROOM - 1) // COUNT_LIMIT
"""Updates a round always takes, whatever they claim (16,383)."""

_CHUNK = 1 << 17  # values per step when computing the result


class MeanAggregator(Aggregator):
    """FedAvg over deltas, each participant's share capped at `max_share` (None: no cap)."""

    rule = "mean"

    def __init__(self, max_share: float | None = None) -> None:
        if max_share is not None and not 0.01 <= max_share <= 1:  # 1/s − 1 kept updates
            raise AggregationError(f"max_share must be from 0.01 to 1, got {max_share}")
        self.max_share = max_share

    def open_round(self, global_weights: Weights, round: int | None = None) -> MeanRound:
        return MeanRound(global_weights, self.max_share)

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        changes = MeanRound(global_weights, self.max_share, changes=True)
        for u in updates:
            changes.add(u.participant, u.delta, u.num_samples)
        return changes.combined()

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "max_share": self.max_share}


class MeanRound(RoundCollector):
    """One round of FedAvg: fixed-point running sums (see the module's docstring). Its updates
    are trained weights, or changes to the global model when `changes`."""

    def __init__(
        self, global_weights: Weights, max_share: float | None, *, changes: bool = False
    ) -> None:
        super().__init__(global_weights)
        self.max_share = max_share
        self.changes = changes
        keep = 0 if max_share is None else math.ceil(1 / max_share - 1e-12) - 1
        self._sums = FoldedSums(global_weights, changes=changes, keep=keep)

    def _add(self, participant: str, weights: Weights, num_samples: int) -> None:
        self._sums.add(participant, weights, min(num_samples, COUNT_LIMIT))

    # -- the result -------------------------------------------------------------------------
    def combined(self) -> tuple[Weights, list[ParticipantReport]]:
        """The mean change and each participant's report, in arrival order."""
        changes, reports = self._finish(None)
        return changes, reports

    def result(self) -> AggregationResult:
        weights, reports = self._finish(self.global_weights)
        if not weights.is_finite():
            raise AggregationError("rule 'mean' produced NaN or infinite values")
        return AggregationResult(weights, tuple(reports))

    def _finish(self, add_to: Weights | None) -> tuple[Weights, list[ParticipantReport]]:
        """The mean change (plus `add_to`, in float32, when given) and the reports."""
        with self._sums.settled():
            folded = self._sums.counts
            order = [p for p in self.participants if p in folded]
            if not order:
                raise AggregationError("nothing to aggregate: no updates")
            counts = [folded[p] for p in order]
            shares = capped_shares(counts, self.max_share)
            fair = capped_shares(counts)
            share = dict(zip(order, shares, strict=True))
            capped = sorted(
                p for p, s, f in zip(order, shares, fair, strict=True) if s < f * (1 - 1e-9)
            )
            missing = [p for p in capped if p not in self._sums.kept]
            if missing:  # cannot happen: the capped are among the largest counts
                raise AggregationError(f"capped updates {missing} were not kept")
            free_count = sum(c for p, c in zip(order, counts, strict=True) if p not in capped)
            taken = 0.0  # added left to right, as every peer (the browser's too) adds them
            for p in capped:
                taken += share[p]
            free_factor = (1.0 - taken) / free_count / fold.SCALE
            weights = Weights.adopt(
                (name, self._mean_of(name, capped, share, free_factor, add_to))
                for name in self.global_weights
            )
        reports = [ParticipantReport(p, share[p], clipped=p in capped) for p in order]
        return weights, reports

    def _mean_of(
        self,
        name: str,
        capped: list[str],
        share: dict[str, float],
        free_factor: float,
        add_to: Weights | None,
    ) -> Array:
        """One tensor of the mean change: (S − the capped terms)·factor + Σ capped sᵢΔᵢ."""
        sums = self._sums.sums[name]
        base = None if self.changes else self.global_weights[name].reshape(-1)
        changes: list[tuple[Array, float]] = []
        if capped:  # out of the sum, back at their share
            sums = sums.copy()
            for p in capped:
                values = self._sums.kept[p][name].reshape(-1)
                sums -= fold.terms(values, base, self._sums.counts[p])
                changes.append((values, share[p]))
        out = np.empty(sums.size, dtype=np.float32)
        for start in range(0, sums.size, _CHUNK):
            end = min(start + _CHUNK, sums.size)
            change = sums[start:end].astype(np.float64)
            change *= free_factor
            for values, s in changes:
                delta = values[start:end] if base is None else values[start:end] - base[start:end]
                change += delta.astype(np.float64) * s
            out[start:end] = change
        if add_to is not None:
            out += add_to[name].reshape(-1)  # float32, as `global + delta` does
        return out.reshape(self.global_weights[name].shape)
