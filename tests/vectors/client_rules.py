"""Generate the client-rule vectors both clients must follow (pytest and vitest read them).

    python tests/vectors/client_rules.py           rewrite the files from what the code does
    python tests/vectors/client_rules.py --check   exit 1 if a committed file differs

* epoch_schedule.json: what each of a participant's rounds trains, whole epochs or a part of one,
  and the batches and validation samples of a part (`disco.schedule` / `web/src/core/schedule.ts`).
* update_pipeline.json: what leaves a participant after training
  (`disco.client.update.prepare_update` / `prepareUpdate`): metrics kept or dropped, the sample
  count, the clipped weights (noise-free, so exact), or the refusal of non-finite weights.

Numbers that JSON cannot hold are written as the strings "NaN", "Infinity", "-Infinity".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from disco.client.update import prepare_update
from disco.errors import SessionError
from disco.schedule import EpochPart
from disco.task import PrivacyConfig, TrainingInfo
from disco.weights import Weights

HERE = Path(__file__).parent
SCHEDULE = HERE / "epoch_schedule.json"
PIPELINE = HERE / "update_pipeline.json"


def _num(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _unnum(x: Any) -> float | None:
    return float(x) if isinstance(x, str) else x


def weights_json(w: Weights) -> dict[str, Any]:
    """{name: {"shape": [...], "values": [...]}} in order, values as float32 → float64."""
    return {
        n: {"shape": list(a.shape), "values": [_num(float(v)) for v in a.reshape(-1)]}
        for n, a in w.items()
    }


def weights_from_json(doc: dict[str, Any]) -> Weights:
    """The inverse of `weights_json`."""
    return Weights(
        (n, np.array([_unnum(v) for v in t["values"]], "<f4").reshape(t["shape"]))
        for n, t in doc.items()
    )


def schedule() -> dict[str, Any]:
    cases = []
    plans = [(10, 3, 1, 4), (10, 3, 1, 6), (6, 2, 1, 3), (5, 5, 1, 2), (7, 1, 1, 8), (1, 1, 1, 3)]
    plans += [(2, 1, 4, 10), (1, 1, 3, 4), (3, 1, 2, 6)]
    for epochs, per, parts, asked in plans:
        t = TrainingInfo(
            data_type="text", epochs=epochs, epochs_per_round=per, rounds_per_epoch=parts
        )
        plan = []
        for k in range(1, asked + 1):
            part = t.epoch_part(k)
            where = None if part is None else [part.epoch, part.index, part.count]
            plan.append({"epochs": t.epochs_in_round(k), "part": where})
        cases.append(
            {
                "epochs": epochs,
                "epochs_per_round": per,
                "rounds_per_epoch": parts,
                "rounds": t.rounds,
                "schedule": plan,
            }
        )
    slices = []
    for count, batches, n in [(4, 10, 10), (4, 3, 2), (3, 9, 7), (8, 1, 0), (5, 23, 11)]:
        for index in range(1, count + 1):
            part = EpochPart(1, index, count)
            r = part.batch_range(batches)
            slices.append(
                {
                    "index": index,
                    "count": count,
                    "batches": batches,
                    "batch_range": [r.start, r.stop],
                    "validation": n,
                    "validation_indices": part.validation_indices(n).tolist(),
                }
            )
    return {
        "description": "what a participant's k-th round trains, k = 1 … len(schedule): whole "
        "epochs, or part [epoch, index, count] of an epoch; `rounds` is the task's planned "
        "number of rounds. `parts`: the batches [start, stop) of a part of an epoch of `batches` "
        "batches, and the validation samples it is evaluated on, of `validation`",
        "cases": cases,
        "parts": slices,
    }


RECEIVED = Weights({"dense.kernel": [[0.5, -1.0], [0.25, 2.0]], "dense.bias": [0.0, 1.0]})
TRAINED = Weights({"dense.kernel": [[1.5, -1.0], [0.25, 0.0]], "dense.bias": [0.0, 1.5]})
METRICS = {"train_loss": 0.5, "train_accuracy": 0.75, "val_loss": 0.625, "val_accuracy": 0.5}


def _case(
    name: str,
    trained: Weights = TRAINED,
    num_samples: int = 40,
    metrics: dict[str, float | None] | None = None,
    privacy: PrivacyConfig | None = None,
) -> dict[str, Any]:
    metrics = dict(METRICS) if metrics is None else metrics
    doc: dict[str, Any] = {
        "name": name,
        "received": weights_json(RECEIVED),
        "trained": weights_json(trained),
        "num_samples": num_samples,
        "metrics": {k: _num(v) for k, v in metrics.items()},
        "privacy": None if privacy is None else privacy.model_dump(),
    }
    try:
        out = prepare_update(
            RECEIVED, trained, num_samples, metrics, privacy, np.random.default_rng()
        )
    except SessionError as exc:
        doc["expected"] = {"error": "not_finite" if "NaN" in str(exc) else "invalid"}
        return doc
    doc["expected"] = {
        "weights": weights_json(out.weights),
        "num_samples": out.num_samples,
        "metrics": out.metrics.model_dump(exclude_none=True),
        "dropped_metrics": list(out.dropped_metrics),
        "clipped": out.clipped,
    }
    return doc


def pipeline() -> dict[str, Any]:
    nan, inf = float("nan"), float("inf")
    bad = Weights({"dense.kernel": [[1.5, nan], [0.25, 0.0]], "dense.bias": [0.0, 1.5]})
    worse = Weights({"dense.kernel": [[1.5, 0.0], [0.25, 0.0]], "dense.bias": [-inf, 1.5]})
    return {
        "description": "prepare_update(received, trained, num_samples, metrics, privacy): "
        "what a participant sends; privacy cases have no noise so the weights are exact "
        "(compare within 1e-6)",
        "cases": [
            _case("plain update: weights, count and metrics go out as they are"),
            _case(
                "non-finite metrics are left out and named",
                metrics={"train_loss": nan, "train_accuracy": 0.75, "val_loss": inf},
            ),
            _case("a missing metric stays missing", metrics={"train_loss": 0.5, "val_loss": None}),
            _case("NaN weights are refused: nothing is sent", trained=bad),
            _case("infinite weights are refused", trained=worse),
            _case("a sample count of 0 is refused", num_samples=0),
            _case(
                "privacy within the radius: no clipping; no metrics, count 1",
                privacy=PrivacyConfig(clipping_radius=10.0),
            ),
            _case(
                "privacy clips the update to the radius (norm 2.29 → 1)",
                privacy=PrivacyConfig(clipping_radius=1.0),
            ),
        ],
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, doc in [(SCHEDULE, schedule()), (PIPELINE, pipeline())]:
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python tests/vectors/client_rules.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
