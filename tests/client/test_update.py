"""The update pipeline and the epoch schedule, checked against the vectors the browser reads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.client.update import prepare_update
from disco.errors import SessionError
from disco.task import PrivacyConfig, TrainingInfo

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))
from client_rules import weights_from_json  # noqa: E402

SCHEDULE = json.loads((VECTORS / "epoch_schedule.json").read_text())["cases"]
PIPELINE = json.loads((VECTORS / "update_pipeline.json").read_text())["cases"]


def _metric(value: Any) -> float | None:
    return float(value) if isinstance(value, str) else value


def test_vectors_are_what_the_code_does() -> None:
    script = VECTORS / "client_rules.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", SCHEDULE, ids=lambda c: f"{c['epochs']}/{c['epochs_per_round']}")
def test_epoch_schedule(case: dict[str, Any]) -> None:
    t = TrainingInfo(
        data_type="text", epochs=case["epochs"], epochs_per_round=case["epochs_per_round"]
    )
    assert t.rounds == case["rounds"]
    plan = [t.epochs_in_round(k) for k in range(1, len(case["schedule"]) + 1)]
    assert plan == case["schedule"]
    # the planned rounds train exactly `epochs` in all
    assert sum(plan[: t.rounds]) == case["epochs"]


def test_epoch_schedule_counts_rounds_from_one() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        TrainingInfo(data_type="text").epochs_in_round(0)


@pytest.mark.parametrize("case", PIPELINE, ids=lambda c: c["name"])
def test_update_pipeline(case: dict[str, Any]) -> None:
    received = weights_from_json(case["received"])
    trained = weights_from_json(case["trained"])
    metrics = {k: _metric(v) for k, v in case["metrics"].items()}
    privacy = None if case["privacy"] is None else PrivacyConfig(**case["privacy"])
    expected = case["expected"]
    rng = np.random.default_rng(0)
    if "error" in expected:
        with pytest.raises(SessionError) as info:
            prepare_update(received, trained, case["num_samples"], metrics, privacy, rng)
        assert ("NaN" in str(info.value)) == (expected["error"] == "not_finite")
        return
    out = prepare_update(received, trained, case["num_samples"], metrics, privacy, rng)
    assert out.num_samples == expected["num_samples"]
    assert out.metrics.model_dump(exclude_none=True) == expected["metrics"]
    assert sorted(out.dropped_metrics) == sorted(expected["dropped_metrics"])
    assert out.clipped == expected["clipped"]
    want = weights_from_json(expected["weights"])
    assert list(out.weights) == list(want)
    for name in want:
        np.testing.assert_allclose(out.weights[name], want[name], rtol=0, atol=1e-6)
    if privacy is not None and expected["clipped"]:
        assert math.isclose(
            (out.weights - received).l2_norm(), privacy.clipping_radius, rel_tol=1e-5
        )
