"""disco.simulate end to end: real sample files, a real server on loopback, real clients."""

from __future__ import annotations

import logging

import pytest

import disco


def test_simulation_is_reproducible_under_a_seed() -> None:
    first = disco.simulate("breast_cancer", 3, 2, partition="dirichlet:0.5", seed=3)
    second = disco.simulate("breast_cancer", 3, 2, partition="dirichlet:0.5", seed=3)
    other = disco.simulate("breast_cancer", 3, 2, partition="dirichlet:0.5", seed=4)
    assert first.digest == second.digest
    assert first.test_accuracy == second.test_accuracy
    assert other.digest != first.digest
    assert first.rounds == 2 and first.clients == 3
    assert [h["round"] for h in first.history] == [0, 1]  # the rounds that closed
    assert first.bytes_up > 0 and first.bytes_down > 0


def test_client_side_privacy_bounds_every_update(caplog: pytest.LogCaptureFixture) -> None:
    """With a tiny clipping radius and no noise, the global model barely moves."""
    caplog.set_level(logging.INFO, logger="disco.client")
    task = disco.catalog.get("breast_cancer").with_training(
        privacy={"clipping_radius": 1e-6, "noise_multiplier": 0.0}
    )
    initial = disco.init_weights(task.model, seed=0)
    result = disco.simulate(task, 2, 2, seed=0)
    moved = (result.weights - initial).l2_norm()
    assert 0 < moved <= 2 * 1e-6 * 1.0001  # two rounds, each mean of updates clipped to 1e-6
    clipped = [r.getMessage() for r in caplog.records if "clipped to 1e-06" in r.getMessage()]
    assert len(clipped) == 4, clipped  # 2 clients x 2 rounds, each says its update was clipped
    # nothing else computed from the data left unprotected: no metrics, equal weights
    for record in result.history:
        assert record["metrics"] == {}
        assert [p["num_samples"] for p in record["participants"]] == [1, 1]
        assert [p["share"] for p in record["participants"]] == [0.5, 0.5]


def test_mnist_five_clients_five_rounds_reaches_ninety_percent() -> None:
    result = disco.simulate("mnist", 5, 5, partition="dirichlet:0.5", seed=0)
    assert result.test_accuracy is not None and result.test_accuracy >= 0.90


def test_breast_cancer_four_clients_ten_rounds_reaches_ninety_three_percent() -> None:
    result = disco.simulate("breast_cancer", 4, 10, seed=0)
    assert result.test_accuracy is not None and result.test_accuracy >= 0.93
