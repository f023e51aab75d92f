"""Client-side differential privacy on model updates.

Before an update leaves a participant, ``delta = new − received`` is clipped to L2 norm at most
``C = clipping_radius`` (scaled by ``min(1, C / ‖delta‖)``), then Gaussian noise with standard
deviation ``σ = noise_multiplier × C`` is added to every coordinate independently. The shared
weights are ``received + clipped + noise``. The standard deviation is exactly ``σ`` (not σ²).

Guarantee (`epsilon`): each participant's shared updates, over all rounds, are (ε, δ)-DP with
respect to replacing *everything* that participant holds, against an observer who sees every
update in the clear (the server). Two datasets give updates at most 2C apart, so one round is a
Gaussian mechanism with sensitivity 2C and noise σ = zC; T rounds compose exactly into one
Gaussian mechanism with μ = 2√T / z (μ-GDP), converted to (ε, δ) with the exact formula of the
analytic Gaussian mechanism (Balle & Wang, 2018). No amplification by sampling or by secure
aggregation is assumed, so the bound is conservative for a single sample and tight for a whole
dataset.
"""

from __future__ import annotations

import math

import numpy as np

from disco.errors import PrivacyError
from disco.task import PrivacyConfig
from disco.weights import Weights

__all__ = ["clip", "clip_and_noise", "epsilon", "gdp_mu", "privatize_update"]

DEFAULT_DELTA = 1e-5


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


def gdp_mu(noise_multiplier: float, rounds: int) -> float:
    """μ of the μ-GDP guarantee after ``rounds`` shared updates (sensitivity 2C, noise z·C)."""
    if not noise_multiplier >= 0 or not math.isfinite(noise_multiplier):
        raise PrivacyError(f"noise multiplier must be finite and ≥ 0, got {noise_multiplier}")
    if rounds < 0:
        raise PrivacyError(f"rounds must be ≥ 0, got {rounds}")
    if rounds == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    return 2.0 * math.sqrt(rounds) / noise_multiplier


def _delta_of(eps: float, mu: float) -> float:
    """δ(ε) of a μ-GDP mechanism: Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)."""

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    tail = phi(-eps / mu - mu / 2)
    second = 0.0 if tail == 0.0 else math.exp(eps + math.log(tail))
    return max(0.0, phi(-eps / mu + mu / 2) - second)


def epsilon(config: PrivacyConfig | None, rounds: int, delta: float = DEFAULT_DELTA) -> float:
    """The ε of the (ε, δ) guarantee after ``rounds`` updates (see the module docstring).

    ``math.inf`` without noise (clipping alone gives no formal guarantee) or without privacy;
    0 for no rounds.
    """
    if not 0 < delta < 1:
        raise PrivacyError(f"delta must be in (0, 1), got {delta}")
    if config is None:
        return math.inf
    mu = gdp_mu(config.noise_multiplier, rounds)
    if mu == 0:
        return 0.0
    if math.isinf(mu):
        return math.inf
    if _delta_of(0.0, mu) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while _delta_of(hi, mu) > delta:  # δ(ε) decreases to 0
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            return math.inf
    for _ in range(200):
        mid = (lo + hi) / 2
        if _delta_of(mid, mu) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * max(1.0, hi):
            break
    return hi
