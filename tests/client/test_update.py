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
from pydantic import ValidationError

from disco.client.update import prepare_update
from disco.errors import SessionError
from disco.schedule import EpochPart
from disco.task import PrivacyConfig, TrainingInfo

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))
from client_rules import weights_from_json  # noqa: E402

SCHEDULE = json.loads((VECTORS / "epoch_schedule.json").read_text())["cases"]
PARTS = json.loads((VECTORS / "epoch_schedule.json").read_text())["parts"]
PIPELINE = json.loads((VECTORS / "update_pipeline.json").read_text())["cases"]


def _metric(value: Any) -> float | None:
    return float(value) if isinstance(value, str) else value


def test_vectors_are_what_the_code_does() -> None:
    script = VECTORS / "client_rules.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "case",
    SCHEDULE,
    ids=lambda c: f"{c['epochs']}/{c['epochs_per_round']}/{c['rounds_per_epoch']}",
)
def test_epoch_schedule(case: dict[str, Any]) -> None:
    t = TrainingInfo(
        data_type="text",
        epochs=case["epochs"],
        epochs_per_round=case["epochs_per_round"],
        rounds_per_epoch=case["rounds_per_epoch"],
    )
    assert t.rounds == case["rounds"]
    plan = []
    for k in range(1, len(case["schedule"]) + 1):
        part = t.epoch_part(k)
        plan.append(
            {
                "epochs": t.epochs_in_round(k),
                "part": None if part is None else [part.epoch, part.index, part.count],
            }
        )
    assert plan == case["schedule"]
    # the planned rounds train exactly `epochs` in all: whole epochs, or every part of each
    whole = [p["epochs"] for p in plan[: t.rounds] if p["part"] is None]
    parts = [tuple(p["part"]) for p in plan[: t.rounds] if p["part"] is not None]
    assert sum(whole) + len(parts) // t.rounds_per_epoch == case["epochs"]
    assert len(set(parts)) == len(parts)


@pytest.mark.parametrize("case", PARTS, ids=lambda c: f"{c['index']}/{c['count']}:{c['batches']}")
def test_epoch_parts(case: dict[str, Any]) -> None:
    part = EpochPart(1, case["index"], case["count"])
    r = part.batch_range(case["batches"])
    assert [r.start, r.stop] == case["batch_range"]
    assert part.validation_indices(case["validation"]).tolist() == case["validation_indices"]


@pytest.mark.parametrize(("count", "batches"), [(4, 10), (3, 9), (5, 23), (7, 7), (2, 1001)])
def test_the_parts_of_an_epoch_train_each_batch_once(count: int, batches: int) -> None:
    ranges = [EpochPart(1, j, count).batch_range(batches) for j in range(1, count + 1)]
    assert [b for r in ranges for b in r] == list(range(batches))
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1  # as even as can be
    shares = [EpochPart(1, j, count).validation_indices(40) for j in range(1, count + 1)]
    assert sorted(int(i) for s in shares for i in s) == list(range(40))


def test_fewer_batches_than_parts_train_one_batch_a_round() -> None:
    ranges = [EpochPart(1, j, 4).batch_range(2) for j in range(1, 5)]
    assert [list(r) for r in ranges] == [[0], [0], [1], [1]]
    with pytest.raises(ValueError, match="at least one batch"):
        EpochPart(1, 1, 4).batch_range(0)


def test_rounds_per_epoch_needs_one_epoch_a_round() -> None:
    with pytest.raises(ValidationError, match="epochs_per_round must then be 1"):
        TrainingInfo(data_type="text", epochs=4, epochs_per_round=2, rounds_per_epoch=3)
    t = TrainingInfo(data_type="text", epochs=2, rounds_per_epoch=3)
    assert [t.round_work(k) for k in (1, 3, 4)] == [
        "part 1 of 3 of epoch 1",
        "part 3 of 3 of epoch 1",
        "part 1 of 3 of epoch 2",
    ]
    assert TrainingInfo(data_type="text", epochs=3, epochs_per_round=2).round_work(2) == "1 epoch"


def test_epoch_schedule_counts_rounds_from_one() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        TrainingInfo(data_type="text").epochs_in_round(0)
    with pytest.raises(ValueError, match="counted from 1"):
        TrainingInfo(data_type="text", rounds_per_epoch=2).epoch_part(0)


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
