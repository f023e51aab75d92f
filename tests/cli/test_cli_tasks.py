"""`disco tasks`: what protects each task's updates, in its privacy column."""

from __future__ import annotations

import pytest

from disco import catalog
from disco.cli import main
from disco.cli.commands import _privacy_words


def test_the_privacy_column_names_secure_aggregation_and_its_settings() -> None:
    mnist = catalog.get("mnist")
    secure = mnist.with_training(min_participants=3, secure_aggregation={"clip": 0.5})
    both = secure.with_training(privacy={"clipping_radius": 1.0, "noise_multiplier": 1.0})

    assert _privacy_words(mnist) == "none"
    assert _privacy_words(secure) == (
        "secure aggregation (server sees only the sum; clip=0.5, weight_cap=1024, "
        "threshold=automatic)"
    )
    words = _privacy_words(both)
    assert words.startswith("DP C=1 z=1, ε=") and words.endswith("threshold=automatic)")


def test_disco_tasks_shows_secure_aggregation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = catalog.get("mnist").with_training(
        min_participants=4, secure_aggregation={"threshold": 3}
    )
    monkeypatch.setattr(catalog, "all_tasks", lambda: [task])
    monkeypatch.setenv("COLUMNS", "250")

    assert main(["tasks"]) == 0

    out = " ".join(capsys.readouterr().out.split())
    assert "server sees only the sum; clip=1, weight_cap=1024, threshold=3)" in out
