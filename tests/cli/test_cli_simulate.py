"""`disco simulate` with attackers and an aggregation rule: JSON, words, and bad specs."""

from __future__ import annotations

import json

import pytest

from disco.cli import main
from disco.simulation import ATTACKS


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
    ],
)
def test_bad_attack_or_rule_is_a_user_error(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["simulate", "--task", "breast_cancer", flag, value])

    assert code == 2
    assert message in capsys.readouterr().err


def test_help_lists_every_attack(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])

    text = capsys.readouterr().out
    assert "--attack KIND:AMOUNT[:NAME=VALUE]" in text and "--aggregation RULE" in text
    for kind in ATTACKS:
        assert f"\n  {kind} " in text, kind
