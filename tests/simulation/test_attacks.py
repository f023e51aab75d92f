"""Attacks for research: the pure transforms by hand, the spec, and attackers in a real session."""

from __future__ import annotations

import asyncio
import json
from statistics import NormalDist
from typing import get_args

import numpy as np
import pytest

import disco
from disco.client import FederatedClient
from disco.client.update import MAX_NUM_SAMPLES, PreparedUpdate
from disco.data import Dataset
from disco.errors import ConfigError, DataError, SessionError, TaskError
from disco.protocol import Metrics
from disco.simulation.attacks import (
    ATTACKS,
    AttackerClient,
    AttackKind,
    AttackSpec,
    Coalition,
    alie,
    alie_z,
    flip_labels,
    gaussian,
    ipm,
    parse_attack,
    scale,
    sign_flip,
)
from disco.weights import Weights

TASK = disco.catalog.get("breast_cancer")


def delta(x: list[float], y: float) -> Weights:
    return Weights([("x", x), ("y", [[y]])])


# -- the pure transforms ----------------------------------------------------------------------
def test_sign_flip_and_scale_by_hand() -> None:
    d = delta([1.0, -2.0], 0.5)

    np.testing.assert_array_equal(sign_flip(d)["x"], [-1.0, 2.0])
    np.testing.assert_array_equal(sign_flip(d, 3.0)["y"], [[-1.5]])
    np.testing.assert_array_equal(scale(d)["x"], [10.0, -20.0])
    np.testing.assert_array_equal(scale(d, 0.5)["y"], [[0.25]])


def test_gaussian_is_seeded_noise_shaped_like_the_update() -> None:
    d = delta([1.0, -2.0], 0.5)

    first = gaussian(d, 2.0, np.random.default_rng(7))
    again = gaussian(d, 2.0, np.random.default_rng(7))

    expected = np.random.default_rng(7).normal(0.0, 2.0, 3).astype(np.float32)
    assert first.shapes == d.shapes and first == again
    np.testing.assert_array_equal(first.flatten(), expected)


def test_alie_sends_mean_minus_z_sample_std() -> None:
    # x[0]: 0, 1, 2 → mean 1, sample std 1; x[1]: 0, 2, 4 → mean 2, std 2; y: 3, 3, 3 → std 0
    deltas = [delta([0.0, 0.0], 3.0), delta([1.0, 2.0], 3.0), delta([2.0, 4.0], 3.0)]

    out = alie(deltas, 1.5)

    np.testing.assert_array_equal(out["x"], [1.0 - 1.5, 2.0 - 3.0])
    np.testing.assert_array_equal(out["y"], [[3.0]])
    assert alie(deltas[:1], 1.5) == deltas[0]  # one delta: no spread, its own update


def test_alie_z_is_the_papers_z_max() -> None:
    # n=10, f=2: s = ⌊6⌋ − 2 = 4, z = Φ⁻¹(6/10); n=50, f=12: s = 14, z = Φ⁻¹(36/50) ≈ 0.5828
    assert alie_z(10, 2) == pytest.approx(NormalDist().inv_cdf(0.6))
    assert alie_z(50, 12) == pytest.approx(0.5828, abs=1e-4)
    assert alie_z(2, 1) == 0.0  # s = 1: Φ⁻¹(1/2)
    with pytest.raises(ConfigError, match="majority"):
        alie_z(10, 6)  # s = 0: z would be infinite


def test_ipm_sends_minus_eps_times_the_mean() -> None:
    deltas = [delta([1.0, 2.0], 4.0), delta([3.0, -6.0], 0.0)]

    out = ipm(deltas, 0.5)

    np.testing.assert_array_equal(out["x"], [-1.0, 1.0])
    np.testing.assert_array_equal(out["y"], [[-1.0]])


def test_flip_labels_maps_y_to_c_minus_one_minus_y() -> None:
    data = Dataset(np.zeros((4, 2)), np.array([0, 1, 2, 2]))

    flipped = flip_labels(data, 3)

    np.testing.assert_array_equal(flipped.y, [2, 1, 0, 0])
    np.testing.assert_array_equal(flipped.x, data.x)
    with pytest.raises(DataError, match="regression"):
        flip_labels(Dataset(np.zeros((2, 2)), np.array([0.5, 1.5])), 3)
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        flip_labels(data, 2)


def test_label_flip_on_a_regression_task_is_refused() -> None:
    regression = TASK.model_copy(update={"model": TASK.model.model_copy(update={"loss": "mse"})})

    with pytest.raises(ConfigError, match="label_flip needs a classification task"):
        AttackSpec("label_flip", 1).resolve(regression, 3)


# -- the spec ---------------------------------------------------------------------------------
def test_every_attack_is_described_and_parsed() -> None:
    assert set(get_args(AttackKind)) == set(ATTACKS)
    for kind in ATTACKS:
        assert parse_attack(f"{kind}:0.2") == AttackSpec(kind, 0.2)


def test_parse_accepts_shares_counts_and_settings() -> None:
    assert parse_attack(" sign_flip : 0.2 ") == AttackSpec("sign_flip", 0.2)
    assert parse_attack("scale:3:k=50") == AttackSpec("scale", 3, k=50.0)
    assert parse_attack("alie:0.3:z=1.5") == AttackSpec("alie", 0.3, z=1.5)
    assert str(parse_attack("gaussian:2:sigma=0.5")) == "gaussian:2:sigma=0.5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sign_flip", "expected KIND:AMOUNT"),
        ("sign_flip:0.2:k=1:x", "expected KIND:AMOUNT"),
        ("bogus:0.2", "unknown attack 'bogus'; known: sign_flip, scale"),
        ("scale:lots", "amount 'lots' is not a number"),
        ("scale:0", "a share in \\(0, 1\\) or a count of at least 1"),
        ("scale:-0.5", "a share in \\(0, 1\\) or a count of at least 1"),
        ("scale:1.5", "neither a share in \\(0, 1\\) nor a whole count"),
        ("gaussian:0.2:k=3", "gaussian takes sigma, not 'k'"),
        ("label_flip:0.2:k=3", "label_flip takes no settings, not 'k'"),
        ("scale:0.2:k", "setting 'k' is not NAME=VALUE"),
        ("scale:0.2:k=big", "k='big' is not a number"),
        ("scale:0.2:k=-1", "k must be a finite number greater than 0"),
        ("ipm:0.2:eps=inf", "eps must be a finite number greater than 0"),
    ],
)
def test_parse_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_attack(text)


def test_attackers_are_the_last_participants() -> None:
    assert AttackSpec("sign_flip", 0.2).attackers(10) == [9, 10]
    assert AttackSpec("sign_flip", 0.25).attackers(10) == [8, 9, 10]  # 2.5 rounds half up
    assert AttackSpec("sign_flip", 0.01).attackers(10) == [10]  # at least one
    assert AttackSpec("sign_flip", 3).attackers(10) == [8, 9, 10]
    assert AttackSpec("sign_flip", 1).attackers(4) == [4]  # 1 is a count, not everyone
    with pytest.raises(ConfigError, match="5 attackers but only 4 participants"):
        AttackSpec("sign_flip", 5).attackers(4)


def test_resolve_fills_in_the_defaults() -> None:
    assert AttackSpec("scale", 0.2).resolve(TASK, 10) == AttackSpec("scale", 0.2, k=10.0)
    assert AttackSpec("scale", 0.2, k=3).resolve(TASK, 10).k == 3
    z = AttackSpec("alie", 0.2).resolve(TASK, 10).z
    assert z == pytest.approx(alie_z(10, 2))
    assert AttackSpec("alie", 0.6, z=2).resolve(TASK, 10).z == 2  # a given z needs no s ≥ 1
    assert AttackSpec("ipm", 2).resolve(TASK, 10).describe(10) == {
        "spec": "ipm:2:eps=0.1",
        "kind": "ipm",
        "participants": ["attacker-9", "attacker-10"],
        "settings": {"eps": 0.1},
    }


# -- colluding attackers and the client hook --------------------------------------------------
def test_coalition_pools_the_deltas_in_member_order() -> None:
    coalition = Coalition(["attacker-2", "attacker-3"], timeout_s=5)
    a, b = delta([1.0, 1.0], 1.0), delta([2.0, 2.0], 2.0)

    async def both() -> list[list[Weights]]:
        return list(
            await asyncio.gather(
                coalition.share(0, "attacker-3", b), coalition.share(0, "attacker-2", a)
            )
        )

    first, second = asyncio.run(both())

    assert first == second == [a, b]


def test_coalition_wait_is_bounded_and_names_who_is_missing() -> None:
    coalition = Coalition(["attacker-2", "attacker-3"], timeout_s=0.05)

    with pytest.raises(SessionError, match="deltas of round 4; missing: attacker-3"):
        asyncio.run(coalition.share(4, "attacker-2", delta([1.0, 1.0], 1.0)))


def _prepared(weights: Weights) -> PreparedUpdate:
    return PreparedUpdate(weights, 120, Metrics(train_loss=0.5))


def _client(cls: type[FederatedClient], **kwargs: object) -> FederatedClient:
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(10, 30)), rng.integers(0, 2, 10))
    return cls(TASK, data, "http://127.0.0.1:1", name="attacker-3", **kwargs)


def test_an_honest_client_sends_what_the_pipeline_prepared() -> None:
    received = disco.init_weights(TASK.model, seed=0)
    prepared = _prepared(received * 1.5)

    sent = asyncio.run(_client(FederatedClient)._outgoing(0, received, prepared))

    assert sent is prepared


def test_a_lie_attacker_sends_the_flipped_update_claiming_2_to_the_40_samples() -> None:
    received = disco.init_weights(TASK.model, seed=0)
    trained = received * 1.5  # honest delta: 0.5·received
    attack = AttackSpec("lie", 1).resolve(TASK, 3)

    sent = asyncio.run(
        _client(AttackerClient, attack=attack)._outgoing(0, received, _prepared(trained))
    )

    np.testing.assert_allclose(sent.weights.flatten(), (received * 0.5).flatten(), rtol=1e-6)
    assert sent.num_samples == MAX_NUM_SAMPLES and sent.metrics == Metrics(train_loss=0.5)


def test_a_label_flip_attacker_trains_on_flipped_labels() -> None:
    client = _client(AttackerClient, attack=AttackSpec("label_flip", 1))
    honest = _client(FederatedClient)

    np.testing.assert_array_equal(client.train_data.y, 1 - honest.train_data.y)


# -- attackers in a real session --------------------------------------------------------------
def test_sign_flip_attacker_takes_part_and_changes_the_model() -> None:
    clean = disco.simulate("breast_cancer", 3, 2, seed=0, aggregation="mean")
    attacked = disco.simulate(
        "breast_cancer", 3, 2, seed=0, attack="sign_flip:1", aggregation="mean"
    )

    for record in attacked.history:
        assert [p["name"] for p in record["participants"]] == ["sim-1", "sim-2", "attacker-3"]
        assert record["aggregation"]["rule"] == "mean"
    assert attacked.digest != clean.digest
    assert clean.attack is None
    assert attacked.attack == {
        "spec": "sign_flip:1:k=1",
        "kind": "sign_flip",
        "participants": ["attacker-3"],
        "settings": {"k": 1.0},
    }
    assert attacked.aggregation == {"rule": "mean", "max_share": 0.5}
    assert json.loads(json.dumps(attacked.to_dict()))["attack"]["kind"] == "sign_flip"


def test_colluding_attackers_are_reproducible_under_the_seed() -> None:
    first = disco.simulate("breast_cancer", 4, 1, seed=1, attack="alie:2", aggregation="median")
    second = disco.simulate("breast_cancer", 4, 1, seed=1, attack="alie:2", aggregation="median")

    assert first.digest == second.digest
    assert first.attack is not None and first.attack["settings"] == {"z": alie_z(4, 2)}
    assert first.aggregation["rule"] == "median"


def test_aggregation_needs_the_simulations_own_server() -> None:
    with pytest.raises(ConfigError, match="the server's task decides"):
        disco.simulate("breast_cancer", 2, 1, aggregation="median", server="http://127.0.0.1:1")


def test_a_simulation_too_small_for_krum_says_how_many_clients_it_needs() -> None:
    with pytest.raises(TaskError, match=r"simulate at least 7 participants \(clients\), not 5"):
        disco.simulate("titanic", 5, 1, aggregation="krum:f=2")
