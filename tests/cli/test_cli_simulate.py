"""`disco simulate` with attackers, an aggregation rule and secure aggregation: JSON, words, and
bad specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disco import catalog
from disco.cli import main
from disco.simulation import ATTACKS
from disco.weights import Weights


def test_attack_and_rule_in_the_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("simulate", "--task", "breast_cancer", "--clients", "3", "--rounds", "1"),
            *("--attack", "scale:1:k=5", "--aggregation", "trimmed_mean:beta=0.2", "--json"),
        ]
    )

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert out["attack"] == {
        "spec": "scale:1:k=5",
        "kind": "scale",
        "participants": ["attacker-3"],
        "settings": {"k": 5.0},
    }
    assert out["aggregation"]["rule"] == "trimmed_mean" and out["aggregation"]["beta"] == 0.2
    assert "history" not in out
    assert "unigram_loss" not in out  # text tasks only


def test_the_task_plans_the_rounds_and_save_keeps_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --rounds, the task's epochs over --epochs-per-round; --save writes the model."""
    saved = tmp_path / "bc.safetensors"
    args = ["simulate", "--task", "breast_cancer", "--clients", "2", "--epochs-per-round", "5"]
    code = main([*args, "--save", str(saved), "--json"])

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert out["rounds"] == catalog.get("breast_cancer").training.epochs // 5 == 2
    assert out["saved"] == str(saved) and Weights.load(saved).digest() == out["digest"]


def test_attack_and_rule_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("simulate", "--task", "breast_cancer", "--clients", "2", "--rounds", "1"),
            *("--attack", "sign_flip:0.5", "--aggregation", "median"),
        ]
    )

    err = capsys.readouterr().err
    assert code == 0
    assert "attack: sign_flip by attacker-2 (k=1)" in err
    assert "aggregation: median" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--attack", "bogus:0.2", "unknown attack 'bogus'"),
        ("--attack", "sign_flip:5", "5 attackers but only 3 participants"),
        ("--aggregation", "nonsense", "nonsense"),
        ("--secure-aggregation", "clip=0", "invalid secure aggregation 'clip=0': clip: must be"),
        ("--secure-aggregation", "noise=1", "noise: is not a setting of secure aggregation"),
    ],
)
def test_bad_attack_or_rule_is_a_user_error(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["simulate", "--task", "breast_cancer", flag, value])

    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())  # the console wraps long lines


def test_help_lists_every_attack(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])

    text = capsys.readouterr().out
    assert "--attack KIND:AMOUNT[:NAME=VALUE]" in text and "--aggregation RULE" in text
    assert "--secure-aggregation [NAME=VALUE,...]" in text
    assert "--clients 5 --secure-aggregation clip=0.5,threshold=4" in text
    for kind in ATTACKS:
        assert f"\n  {kind} " in text, kind


def test_secure_aggregation_in_the_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("simulate", "--task", "breast_cancer", "--clients", "3", "--rounds", "1"),
            *("--secure-aggregation", "clip=0.5,weight_cap=100", "--json"),
        ]
    )

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert out["secure_aggregation"] == {"clip": 0.5, "weight_cap": 100, "threshold": None}
    assert out["aggregation"]["rule"] == "mean"


def test_secure_aggregation_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("simulate", "--task", "breast_cancer", "--clients", "3", "--rounds", "1"),
            "--secure-aggregation",
        ]
    )

    err = capsys.readouterr().err
    assert code == 0
    assert "secure_aggregation: on (clip=1, weight_cap=1024, threshold=automatic)" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--clients", "2"),
            "secure aggregation needs at least 3 participants in a round (with 2, each could "
            "subtract its own update from the sum and read the other's): simulate at least 3 "
            "participants (clients), not 2",
        ),
        (
            ("--aggregation", "median"),
            "'median' needs each participant's own update — use 'mean' or turn secure "
            "aggregation off",
        ),
    ],
)
def test_what_secure_aggregation_refuses_is_a_user_error(
    extra: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["simulate", "--task", "breast_cancer", *extra, "--secure-aggregation"])

    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())
