"""What the server checks on each update, what it keeps of an accepted one, and the round's
record.

A federated session takes an update for the open round only, once per participant, and not
while the round closes (`check_round`); it refuses a key-less participant's resent update
(`check_resent`); it validates the weights (names, shapes, finite values; reordered to the
model's order: `validate_update`). Of an accepted update it keeps only what the round history
needs (`Accepted`: who, how many samples, metrics, digest — the weights go to the round's
collector). A closed round's history row (`round_record`) has the sample-weighted mean of the
metrics its participants sent (`mean_metrics`) and each one's share as the aggregator weighed it.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from disco.aggregation import AggregationResult
from disco.protocol import ErrorMessage, Metrics
from disco.server.participants import Participant
from disco.server.store import ContributorRecord, RoundRecord
from disco.weights import Weights

__all__ = [
    "Accepted",
    "check_resent",
    "check_round",
    "mean_metrics",
    "round_record",
    "validate_update",
]


@dataclass(frozen=True)
class Accepted:
    """An accepted update, as the session keeps it until its round closes."""

    participant: str  # identity
    name: str
    kind: str
    num_samples: int
    metrics: Metrics
    digest: str


def check_round(r: int, k: int, duplicate: bool, closing: bool) -> ErrorMessage | None:
    """Why an update for round `k` cannot be taken while round `r` is open (None: it can);
    `duplicate`: its participant already sent one, `closing`: round `r` is being aggregated."""
    if k < r:
        msg = f"update for round {k} came after it closed; train on the model of round {r}"
        return ErrorMessage(code="stale", message=msg, round=r)
    if k > r:
        msg = f"update for round {k}, but round {r} is open"
        return ErrorMessage(code="future", message=msg, round=r)
    if duplicate:
        msg = f"you already sent an update for round {r}"
        return ErrorMessage(code="duplicate", message=msg, round=r)
    if closing:
        msg = f"round {r} is closing without this update; its result opens the next round"
        return ErrorMessage(code="stale", message=msg, round=r)
    return None


def check_resent(
    updates: Mapping[str, Accepted],
    connected: Container[str],
    participant: Participant,
    digest: str,
    r: int,
) -> ErrorMessage | None:
    """Refuse a copy of an update whose key-less sender dropped and came back (a new id).

    A participant without a key cannot be recognised by its identity after a reconnect; its
    resent update is: same name and kind, bit-identical weights, from a participant gone (not
    `connected`). `updates`: the round's accepted ones, by identity.
    """
    for identity, a in updates.items():
        gone = identity not in connected
        same = (a.name, a.kind, a.digest) == (participant.name, participant.kind, digest)
        if gone and same:
            msg = f"this update was already received in round {r}"
            return ErrorMessage(code="duplicate", message=msg, round=r)
    return None


def validate_update(weights: Weights, reference: Weights, r: int) -> Weights | ErrorMessage:
    """Names and shapes like `reference` (reordered to its order) and finite, or an error."""
    for name, want in reference.shapes.items():
        if name not in weights:
            msg = f"tensor {name!r} is missing (the model expects shape {want})"
            return ErrorMessage(code="shape", message=msg, round=r)
        got = weights[name].shape
        if got != want:
            msg = f"tensor {name!r} has shape {got}, the model expects {want}"
            return ErrorMessage(code="shape", message=msg, round=r)
    if len(weights) != len(reference):
        extra = next(n for n in weights if n not in reference)
        msg = f"unexpected tensor {extra!r} with shape {weights[extra].shape}"
        return ErrorMessage(code="shape", message=msg, round=r)
    for name, arr in weights.items():
        if not np.isfinite(arr).all():
            msg = f"tensor {name!r} contains NaN or infinity; nothing was recorded"
            return ErrorMessage(code="not_finite", message=msg, round=r)
    if list(weights) == list(reference):
        return weights
    return Weights((n, weights[n]) for n in reference)


def mean_metrics(accepted: Sequence[Accepted]) -> dict[str, float]:
    """Sample-weighted mean of each metric over the updates that reported it."""
    out: dict[str, float] = {}
    for field in Metrics.model_fields:
        pairs = [
            (value, a.num_samples)
            for a in accepted
            if (value := getattr(a.metrics, field)) is not None
        ]
        if pairs:
            total = sum(n for _, n in pairs)
            mean = math.fsum(v * n for v, n in pairs) / total
            if math.isfinite(mean):
                out[field] = mean
    return out


def round_record(
    r: int,
    accepted: Sequence[Accepted],
    result: AggregationResult,
    duration_s: float,
    aggregation: dict[str, Any],
) -> RoundRecord:
    """The history row of round `r`, aggregated as `result` from the `accepted` updates."""
    report = {rep.participant: rep for rep in result.reports}
    return RoundRecord(
        round=r,
        contributors=len(accepted),
        num_samples=sum(a.num_samples for a in accepted),
        digest=result.weights.digest(),
        duration_s=duration_s,
        metrics=mean_metrics(accepted),
        participants=tuple(
            ContributorRecord(
                a.name, a.kind, a.num_samples, rep.weight, rep.selected, rep.clipped, rep.score
            )
            for a in accepted
            for rep in (report[a.participant],)
        ),
        aggregation=aggregation,
    )
