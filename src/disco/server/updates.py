"""What the server checks on each update, what it keeps of an accepted one, and the round's
metrics.

A session validates an update before anything else (names, shapes, finite values; reordered to
the model's order), keeps of an accepted update only what the round history needs (`Accepted`:
who, how many samples, metrics, digest — the weights go to the round's collector), and reports
the round's metrics as the sample-weighted mean of those its participants sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from disco.protocol import ErrorMessage, Metrics
from disco.weights import Weights

__all__ = ["Accepted", "mean_metrics", "validate_update"]


@dataclass(frozen=True)
class Accepted:
    """An accepted update, as the session keeps it until its round closes."""

    participant: str  # identity
    name: str
    kind: str
    num_samples: int
    metrics: Metrics
    digest: str


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
