"""Client-side differential privacy on model updates.

Before an update leaves a participant, ``delta = new − received`` is clipped to L2 norm at most
``C = clipping_radius`` (scaled by ``min(1, C / ‖delta‖)``), then Gaussian noise with standard
deviation ``σ = noise_multiplier × C`` is added to every coordinate independently. The shared
weights are ``received + clipped + noise``. The standard deviation is exactly ``σ`` (not σ²).

An (ε, δ) accountant for repeated rounds is not provided yet: the guarantee per round is that of
one Gaussian mechanism with sensitivity C and noise σ.
"""

from __future__ import annotations

import numpy as np

from disco.errors import PrivacyError
from disco.task import PrivacyConfig
from disco.weights import Weights

__all__ = ["clip", "clip_and_noise", "privatize_update"]


def clip(delta: Weights, radius: float) -> Weights:
    """Scale `delta` so that its L2 norm is at most `radius`."""
    if not radius > 0:
        raise PrivacyError(f"clipping radius must be > 0, got {radius}")
    norm = delta.l2_norm()
    if norm <= radius:
        return delta
    return delta * (radius / norm)


def clip_and_noise(delta: Weights, config: PrivacyConfig, rng: np.random.Generator) -> Weights:
    """Clip `delta` to the configured radius and add Gaussian noise of std ``noise_std``."""
    clipped = clip(delta, config.clipping_radius)
    std = config.noise_std
    if std == 0:
        return clipped
    return Weights(
        (n, a + rng.normal(0.0, std, size=a.shape).astype(np.float32)) for n, a in clipped.items()
    )


def privatize_update(
    received: Weights, trained: Weights, config: PrivacyConfig, rng: np.random.Generator
) -> Weights:
    """The weights to share: ``received`` plus the clipped, noised update."""
    trained.check_like(received, "trained weights")
    return received + clip_and_noise(trained - received, config, rng)
