"""What a participant sends after training a round: the one update pipeline of the Python client.

train → checks → privacy → metrics → the update that leaves. The browser's
`web/src/core/client/update.ts` is the same pipeline, and tests/vectors/update_pipeline.json
pins both:

1. The trained weights must have the global model's names and shapes and be finite; otherwise
   nothing is sent (`SessionError`: training diverged).
2. The sample count must be an integer from 1 to 2^40 (it is the update's FedAvg weight).
3. Metrics that are NaN or infinite are left out (and named), the others are reported.
4. With the task's privacy on, the update is clipped and noised (`disco.privacy`), and nothing
   else computed from the data leaves unprotected: no metrics, and a sample count of 1 (equal
   weights) — docs/privacy.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from disco.errors import SessionError
from disco.privacy import privatize_update
from disco.protocol import Metrics
from disco.task import PrivacyConfig
from disco.weights import Weights

__all__ = ["MAX_NUM_SAMPLES", "PreparedUpdate", "prepare_update"]

MAX_NUM_SAMPLES = 2**40
METRIC_NAMES = tuple(Metrics.model_fields)


@dataclass(frozen=True)
class PreparedUpdate:
    """The update as it will be sent, and what the pipeline did to it."""

    weights: Weights
    num_samples: int
    metrics: Metrics
    dropped_metrics: tuple[str, ...] = ()
    """Metrics left out because they were NaN or infinite."""
    norm: float | None = None
    """With privacy: the L2 norm of the update before clipping."""
    clipped: bool = False
    """With privacy: whether the update was scaled down to the clipping radius."""

    def describe_privacy(self, privacy: PrivacyConfig) -> str:
        """One line for logs: the update's size, clipping and noise (privacy on)."""
        norm = self.norm or 0.0
        radius = privacy.clipping_radius
        clip = f"clipped to {radius:g}" if self.clipped else f"within the clip radius {radius:g}"
        noise = f"noise std {privacy.noise_std:.4g} added" if privacy.noise_std > 0 else "no noise"
        return f"update norm {norm:.4g} {clip}; {noise}; no metrics or sample count sent"


def prepare_update(
    received: Weights,
    trained: Weights,
    num_samples: int,
    metrics: Mapping[str, float | None],
    privacy: PrivacyConfig | None,
    rng: np.random.Generator,
) -> PreparedUpdate:
    """The update to send after training `received` into `trained` on `num_samples` samples."""
    trained.check_like(received, "trained weights")
    if not trained.is_finite():
        raise SessionError(
            "training produced NaN or infinite weights (it diverged; try a lower learning rate); "
            "nothing was sent"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise SessionError(f"the sample count must be an integer, got {num_samples!r}")
    if not 1 <= num_samples <= MAX_NUM_SAMPLES:
        raise SessionError(f"the sample count must be from 1 to 2^40, got {num_samples}")
    unknown = sorted(set(metrics) - set(METRIC_NAMES))
    if unknown:
        raise SessionError(f"unknown metrics {unknown}; known: {list(METRIC_NAMES)}")
    kept = {k: v for k, v in metrics.items() if v is not None and math.isfinite(v)}
    dropped = tuple(k for k in METRIC_NAMES if metrics.get(k) is not None and k not in kept)
    if privacy is None:
        return PreparedUpdate(trained, num_samples, Metrics(**kept), dropped)
    norm = (trained - received).l2_norm()
    shared = privatize_update(received, trained, privacy, rng)
    return PreparedUpdate(
        shared, 1, Metrics(), dropped, norm=norm, clipped=norm > privacy.clipping_radius
    )
