"""FedAvg, folded as updates arrive: exact fixed-point sums, no one's share above a cap.

The mean of a round is Σ sᵢ·Δᵢ, where Δᵢ is participant i's change to the global model and sᵢ its
share: its claimed sample count over the round's total, no share above ``max_share`` (the excess
is spread over the others in proportion to their counts, `rules.capped_shares`).

**Streaming.** The server adds each update to the round as it is accepted (`open_round`) and does
not keep it: the round holds one running sum, so its memory does not grow with the number of
participants. The result must not depend on arrival order, and floating-point sums do (addition
rounds differently in another order), so the sum is kept in fixed point:

    qᵢ = round(Δᵢ · 2^24)   (float32 Δ, rounded to the nearest integer: one unit ≈ 6e-8)
    S  = Σ nᵢ · qᵢ          (int64: integer addition is exact, so every order gives the same S)

Integers add exactly, so S — and the new model computed from it — is bit-identical for every
arrival order (the tests try 2,000 orders of 8 updates, and adds from several threads). Changes
are quantised to 2^-24 ≈ 6e-8, float32's own step at 1.0 and far below what a round of training
resolves. Bounds keep the sum exact: a change of ``MAX_CHANGE`` (256) or more in one coordinate
is refused; a claimed count above ``COUNT_LIMIT`` (131,072) counts as 131,072 (so among
participants claiming more, shares are equal rather than proportional); each update then adds
at most 2^49 to a sum, so a round always takes ``ROOM`` (16,384) updates, whatever they hold, and
refuses one that could take a sum past int64 rather than wrap around.

**The cap** needs every count before it knows who is capped. The capped participants are always
among the largest counts, and fewer than 1/``max_share`` of them can be capped, so the round keeps
the updates of the ⌈1/max_share⌉ − 1 largest counts (one with the default 0.5) and at the end
takes them out of S and adds them back at their capped share.

Memory of a round: the int64 sum (2× the model's float32 size), plus the ⌈1/max_share⌉ − 1 kept
updates, plus one update being added; never more with more participants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from disco.aggregation.base import (
    AggregationResult,
    Aggregator,
    ParticipantReport,
    RoundCollector,
    Update,
    check_update,
)
from disco.aggregation.rules import capped_shares
from disco.errors import AggregationError
from disco.weights import Array, Weights

__all__ = ["COUNT_LIMIT", "FRACTION_BITS", "MAX_CHANGE", "ROOM", "MeanAggregator", "MeanRound"]

FRACTION_BITS = 24
"""Changes are summed in units of 2^-24 (≈ 6e-8, float32's own step at 1.0)."""
MAX_CHANGE = 2.0**8
"""A change of one coordinate in one round must stay below this (in absolute value)."""
COUNT_LIMIT = 2**17
"""Claimed sample counts above this (131,072) count as this many."""
ROOM = 2**14
"""Updates a round can always take, however large (each adds at most 2^49 to a sum)."""

_SCALE = np.float32(2.0**FRACTION_BITS)
_MAX_Q = MAX_CHANGE * 2.0**FRACTION_BITS  # |q| < 2^32, so |q| · COUNT_LIMIT < 2^49
_SUM_LIMIT = 2**63 - 1  # ROOM updates add less than ROOM · 2^49 = 2^63
_CHUNK = 1 << 17  # elements per step: the temporaries stay in the CPU's cache


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
        fold = MeanRound(global_weights, self.max_share)
        for u in updates:
            fold.add_delta(u.participant, u.delta, u.num_samples)
        return fold.combined()

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "max_share": self.max_share}


@dataclass(frozen=True)
class _Kept:
    count: int
    source: Weights
    is_delta: bool


class MeanRound(RoundCollector):
    """One round of FedAvg: a fixed-point running sum (see the module's docstring)."""

    def __init__(self, global_weights: Weights, max_share: float | None) -> None:
        super().__init__(global_weights)
        self.max_share = max_share
        self._sums = {n: np.zeros(a.size, dtype=np.int64) for n, a in global_weights.items()}
        self._bound = 0  # Σ countᵢ · max|qᵢ|: the sums stay below it, and it below 2^63
        self._keep = 0 if max_share is None else math.ceil(1 / max_share - 1e-12) - 1
        self._kept: dict[str, _Kept] = {}
        self._counts: dict[str, int] = {}
        self._fold_lock = self._lock  # one fold at a time: int64 += is not atomic

    def _add(self, participant: str, weights: Weights, num_samples: int) -> None:
        self._fold(participant, weights, min(num_samples, COUNT_LIMIT), is_delta=False)

    def add_delta(self, participant: str, delta: Weights, num_samples: int) -> None:
        """Add an update given as its change to the global model (for `MeanAggregator.combine`)."""
        check_update(self.global_weights, participant, delta, finite=False)
        with self._reserved(participant, num_samples):
            self._fold(participant, delta, min(num_samples, COUNT_LIMIT), is_delta=True)

    # -- folding ----------------------------------------------------------------------------
    def _fold(self, participant: str, source: Weights, count: int, *, is_delta: bool) -> None:
        with self._fold_lock:
            done: list[tuple[str, int, int]] = []
            largest = 0
            ints = np.empty(_CHUNK, dtype=np.int64)
            try:
                for name, start, q, top in self._quantized(participant, source, is_delta):
                    largest = max(largest, top)
                    if self._bound + count * largest > _SUM_LIMIT:
                        raise AggregationError(
                            f"round full: the update of {participant!r} cannot be added "
                            f"exactly after {len(self._counts)} others this round"
                        )
                    acc, part = self._sums[name][start : start + q.size], ints[: q.size]
                    np.copyto(part, q, casting="unsafe")  # |q| < 2^32: exact
                    part *= count  # < 2^49: exact
                    acc += part
                    done.append((name, start, q.size))
            except BaseException:
                self._undo(source, is_delta, count, done)
                raise
            self._bound += count * largest
            self._counts[participant] = count
            self._remember(participant, count, source, is_delta)

    def _quantized(
        self, participant: str, source: Weights, is_delta: bool
    ) -> Iterator[tuple[str, int, Array, int]]:
        """(tensor, offset, q, max |q|) chunk by chunk: q = round(Δ · 2^24) in float32 (exact)."""
        for name in self.global_weights:
            for start, q, top in self._quantized_tensor(participant, source, is_delta, name):
                yield name, start, q, top

    def _quantized_tensor(
        self, participant: str, source: Weights, is_delta: bool, name: str
    ) -> Iterator[tuple[int, Array, int]]:
        """(offset, q, max |q|) chunk by chunk for one tensor, each chunk checked."""
        buf = np.empty(_CHUNK, dtype=np.float32)
        w, g = source[name].reshape(-1), self.global_weights[name].reshape(-1)
        for start in range(0, w.size, _CHUNK):
            q = buf[: min(_CHUNK, w.size - start)]
            _quantize(w[start : start + q.size], None if is_delta else g[start : start + q.size], q)
            lo, hi = float(q.min()), float(q.max())
            if not (-_MAX_Q < lo and hi < _MAX_Q):
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise AggregationError(f"the update of {participant!r} is not finite")
                raise AggregationError(
                    f"the update of {participant!r} changes {name!r} by {MAX_CHANGE:g} or more "
                    "in one round; it is refused"
                )
            yield start, q, int(max(hi, -lo))

    def _undo(
        self, source: Weights, is_delta: bool, count: int, done: list[tuple[str, int, int]]
    ) -> None:
        """Take back the chunks of a failed fold (integer arithmetic: exactly)."""
        q = np.empty(_CHUNK, dtype=np.float32)
        ints = np.empty(_CHUNK, dtype=np.int64)
        for name, start, size in done:  # these chunks passed the checks: no need to repeat them
            chunk, back = q[:size], ints[:size]
            w, g = source[name].reshape(-1), self.global_weights[name].reshape(-1)
            base = None if is_delta else g[start : start + size]
            _quantize(w[start : start + size], base, chunk)
            np.copyto(back, chunk, casting="unsafe")
            back *= count
            self._sums[name][start : start + size] -= back

    def _remember(self, participant: str, count: int, source: Weights, is_delta: bool) -> None:
        """Keep the update if its count is among the largest (a capped one must be kept)."""
        if self._keep == 0:
            return
        self._kept[participant] = _Kept(count, source, is_delta)
        if len(self._kept) > self._keep:
            smallest = min(self._kept, key=lambda p: (self._kept[p].count, p))
            del self._kept[smallest]

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
        with self._fold_lock:
            order = [p for p in self._participants if p in self._counts]
            if not order:
                raise AggregationError("nothing to aggregate: no updates")
            counts = [self._counts[p] for p in order]
            shares = capped_shares(counts, self.max_share)
            fair = capped_shares(counts)
            share = dict(zip(order, shares, strict=True))
            capped = sorted(
                p for p, s, f in zip(order, shares, fair, strict=True) if s < f * (1 - 1e-9)
            )
            missing = [p for p in capped if p not in self._kept]
            if missing:  # cannot happen: the capped are among the largest counts
                raise AggregationError(f"capped updates {missing} were not kept")
            free_count = sum(c for p, c in zip(order, counts, strict=True) if p not in capped)
            free_factor = (1.0 - sum(share[p] for p in capped)) / free_count / float(_SCALE)
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
        """One tensor of the mean change: (S − Σ capped nᵢqᵢ)·factor + Σ capped sᵢqᵢ/2^24."""
        sums = self._sums[name]
        qs = {p: self._q_of(p, name) for p in capped}
        out = np.empty(sums.size, dtype=np.float32)
        for start in range(0, sums.size, _CHUNK):
            end = min(start + _CHUNK, sums.size)
            free = sums[start:end].copy()
            for p in capped:
                free -= qs[p][start:end].astype(np.int64) * self._counts[p]
            change = free.astype(np.float64) * free_factor
            for p in capped:
                change += qs[p][start:end] * (share[p] / float(_SCALE))
            out[start:end] = change
        if add_to is not None:
            out += add_to[name].reshape(-1)  # float32, as `global + delta` does
        return out.reshape(self.global_weights[name].shape)

    def _q_of(self, participant: str, name: str) -> Array:
        kept = self._kept[participant]
        out = np.empty(self.global_weights[name].size, dtype=np.float32)
        for start, q, _ in self._quantized_tensor(participant, kept.source, kept.is_delta, name):
            out[start : start + q.size] = q
        return out


def _quantize(values: Array, base: Array | None, out: Array) -> None:
    """out = round((values − base) · 2^24), or round(values · 2^24) without a base (float32:
    exact, the scaling is by a power of two)."""
    if base is None:
        np.multiply(values, _SCALE, out=out)
    else:
        np.subtract(values, base, out=out)
        out *= _SCALE
    np.rint(out, out=out)
