"""Client-side differential privacy: clipping, Gaussian noise and the shared update."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from disco.errors import PrivacyError, WeightsError
from disco.privacy import _delta_of, clip, clip_and_noise, epsilon, gdp_mu, privatize_update
from disco.task import PrivacyConfig
from disco.weights import Weights


def update(seed: int = 0, scale: float = 1.0) -> Weights:
    """A random update of two tensors (norm about ``scale * sqrt(70)``)."""
    rng = np.random.default_rng(seed)
    return Weights([("k", scale * rng.normal(size=(10, 6))), ("b", scale * rng.normal(size=10))])


# -- clipping -------------------------------------------------------------------------------------
def test_clip_leaves_small_updates_unchanged() -> None:
    delta = update(scale=0.01)
    assert delta.l2_norm() < 1.0

    clipped = clip(delta, 1.0)

    assert clipped == delta
    assert clipped.digest() == delta.digest()


def test_clip_scales_large_updates_to_the_radius() -> None:
    delta = update(scale=30.0)
    norm = delta.l2_norm()
    assert norm > 100.0

    clipped = clip(delta, 2.0)

    assert clipped.l2_norm() == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_allclose(clipped.flatten(), delta.flatten() * (2.0 / norm), rtol=1e-5)
    assert list(clipped) == list(delta)


def test_clip_at_exactly_the_radius_is_unchanged() -> None:
    delta = Weights([("a", [3.0, 4.0])])

    assert clip(delta, 5.0) == delta


def test_clip_handles_huge_values() -> None:
    delta = Weights([("a", [3e20, 4e20])])

    clipped = clip(delta, 1.0)

    np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-5)


@pytest.mark.parametrize("radius", [0.0, -1.0, math.nan])
def test_bad_radius_raises(radius: float) -> None:
    with pytest.raises(PrivacyError, match="clipping radius"):
        clip(update(), radius)


def test_bad_radius_in_an_unchecked_config_raises() -> None:
    config = PrivacyConfig.model_construct(clipping_radius=0.0, noise_multiplier=1.0)

    with pytest.raises(PrivacyError):
        clip_and_noise(update(), config, np.random.default_rng(0))


# -- noise ----------------------------------------------------------------------------------------
def test_noise_std_is_multiplier_times_radius() -> None:
    config = PrivacyConfig(clipping_radius=0.5, noise_multiplier=1.3)
    delta = Weights([("big", np.zeros(200_000)), ("small", np.zeros(7))])

    noised = clip_and_noise(delta, config, np.random.default_rng(1234))

    values = noised.flatten().astype(np.float64)
    assert values.std() == pytest.approx(0.65, rel=0.02)
    assert abs(values.mean()) < 0.01
    assert noised.shapes == delta.shapes
    assert all(arr.dtype.str == "<f4" for arr in noised.values())


def test_noise_is_added_to_the_clipped_update() -> None:
    config = PrivacyConfig(clipping_radius=1.0, noise_multiplier=0.1)
    rng = np.random.default_rng(7)
    delta = Weights([("a", rng.normal(size=200_000) * 10)])

    noised = clip_and_noise(delta, config, np.random.default_rng(8))

    residual = (noised - clip(delta, 1.0)).flatten().astype(np.float64)
    assert residual.std() == pytest.approx(0.1, rel=0.02)


def test_zero_multiplier_is_pure_clipping() -> None:
    config = PrivacyConfig(clipping_radius=1.5, noise_multiplier=0.0)
    delta = update(scale=10.0)

    result = clip_and_noise(delta, config, np.random.default_rng(0))

    assert result == clip(delta, 1.5)
    assert result.l2_norm() == pytest.approx(1.5, rel=1e-5)


def test_same_seed_same_noise_and_other_seed_other_noise() -> None:
    config = PrivacyConfig(clipping_radius=1.0, noise_multiplier=1.0)
    delta = update()

    first = clip_and_noise(delta, config, np.random.default_rng(99))
    second = clip_and_noise(delta, config, np.random.default_rng(99))
    other = clip_and_noise(delta, config, np.random.default_rng(100))

    assert first.digest() == second.digest()
    assert first.digest() != other.digest()


# -- the shared update ----------------------------------------------------------------------------
def test_privatize_update_is_received_plus_clipped_delta() -> None:
    received = Weights([("w", [1.0, 2.0]), ("b", [0.5])])
    trained = Weights([("w", [4.0, 6.0]), ("b", [0.5])])  # delta (3, 4, 0): norm 5
    config = PrivacyConfig(clipping_radius=1.0)

    shared = privatize_update(received, trained, config, np.random.default_rng(0))

    np.testing.assert_allclose(shared["w"], [1.6, 2.8], rtol=1e-6)
    np.testing.assert_array_equal(shared["b"], [0.5])
    assert (shared - received).l2_norm() == pytest.approx(1.0, rel=1e-5)


def test_privatize_update_keeps_small_updates() -> None:
    received = update(seed=1)
    trained = received + update(seed=2, scale=1e-3)
    config = PrivacyConfig(clipping_radius=10.0)

    shared = privatize_update(received, trained, config, np.random.default_rng(0))

    np.testing.assert_allclose(shared.flatten(), trained.flatten(), rtol=0, atol=1e-6)


def test_privatize_update_with_noise_is_deterministic_per_seed() -> None:
    received, trained = update(seed=1), update(seed=2)
    config = PrivacyConfig(clipping_radius=1.0, noise_multiplier=0.5)

    first = privatize_update(received, trained, config, np.random.default_rng(5))
    second = privatize_update(received, trained, config, np.random.default_rng(5))

    assert first.digest() == second.digest()
    assert first != received + clip(trained - received, 1.0)


def test_privatize_update_rejects_mismatched_weights() -> None:
    received = Weights([("w", [1.0, 2.0])])
    trained = Weights([("w", [1.0, 2.0, 3.0])])

    with pytest.raises(WeightsError, match="trained weights"):
        privatize_update(
            received, trained, PrivacyConfig(clipping_radius=1.0), np.random.default_rng()
        )


# -- the (ε, δ) accountant ------------------------------------------------------------------------


def _dp(z: float) -> PrivacyConfig:
    return PrivacyConfig(clipping_radius=1.0, noise_multiplier=z)


def test_epsilon_solves_the_analytic_gaussian_equation() -> None:
    for z, rounds in [(0.5, 5), (1.0, 10), (4.0, 1), (10.0, 100)]:
        eps = epsilon(_dp(z), rounds)
        assert 0 < eps < math.inf
        assert _delta_of(eps, gdp_mu(z, rounds)) == pytest.approx(1e-5, rel=1e-4)


def test_epsilon_is_below_the_classical_gaussian_bound() -> None:
    # σ ≥ s·√(2 ln(1.25/δ))/ε (valid for ε < 1): sensitivity 2C, σ = zC, one round
    z, delta = 20.0, 1e-5
    classical = 2 * math.sqrt(2 * math.log(1.25 / delta)) / z
    assert classical < 1
    assert epsilon(_dp(z), 1, delta) < classical


def test_rounds_compose_as_one_gaussian_of_mu_two_sqrt_t_over_z() -> None:
    assert gdp_mu(1.0, 4) == 4.0
    assert epsilon(_dp(1.0), 4) == pytest.approx(epsilon(_dp(2.0), 16), rel=1e-6)


def test_epsilon_grows_with_rounds_and_shrinks_with_noise_and_delta() -> None:
    by_rounds = [epsilon(_dp(2.0), t) for t in (1, 2, 5, 10, 50)]
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 5
    by_noise = [epsilon(_dp(z), 10) for z in (0.5, 1.0, 2.0, 8.0)]
    assert by_noise == sorted(by_noise, reverse=True)
    assert epsilon(_dp(2.0), 10, delta=1e-3) < epsilon(_dp(2.0), 10, delta=1e-7)


def test_epsilon_edge_cases() -> None:
    assert epsilon(None, 10) == math.inf  # no privacy setting: no guarantee
    assert epsilon(_dp(0.0), 10) == math.inf  # clipping alone: no formal guarantee
    assert epsilon(_dp(1.0), 0) == 0.0  # nothing shared yet
    assert epsilon(_dp(1e6), 1) == 0.0  # δ(0) already below δ
    with pytest.raises(PrivacyError, match="delta"):
        epsilon(_dp(1.0), 10, delta=0)
    with pytest.raises(PrivacyError, match="rounds"):
        gdp_mu(1.0, -1)


def test_epsilon_reference_values_shared_with_the_browser() -> None:
    path = Path(__file__).parent / "vectors" / "privacy_epsilon.json"
    cases = json.loads(path.read_text())["cases"]
    assert len(cases) >= 10
    for case in cases:
        config = PrivacyConfig(clipping_radius=1.0, noise_multiplier=case["noise_multiplier"])
        got = epsilon(config, case["rounds"], case["delta"])
        assert got == pytest.approx(case["epsilon"], rel=1e-6), case
        # and the clipping radius does not matter: ε depends on z only
        scaled = PrivacyConfig(clipping_radius=7.5, noise_multiplier=case["noise_multiplier"])
        assert epsilon(scaled, case["rounds"], case["delta"]) == got
