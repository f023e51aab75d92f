"""The `disco` command, run as a user runs it: a real process, real files, a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from disco import catalog
from disco.privacy import epsilon
from disco.server import ServerConfig, start_in_background
from disco.task import PrivacyConfig

DISCO = [sys.executable, "-m", "disco.cli"]


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [*DISCO, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _last_json(out: str) -> dict[str, object]:
    result = json.loads(out.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_tasks_lists_the_catalog() -> None:
    proc = _run("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    ids = [t["id"] for t in _last_json(proc.stdout)["tasks"]]  # type: ignore[union-attr]
    assert ids == catalog.ids()


def test_tasks_shows_the_privacy_guarantee(tmp_path: Path) -> None:
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "private_digits"
    doc["training"]["privacy"] = {"clipping_radius": 1.0, "noise_multiplier": 2.0}
    config = ServerConfig(port=0, data_dir=tmp_path, admin_token="t0ken-for-tests")
    with start_in_background(config) as server:
        created = httpx.post(
            f"{server.url}/api/tasks", json=doc, headers={"Authorization": "Bearer t0ken-for-tests"}
        )
        assert created.status_code == 201, created.text
        proc = _run("tasks", "--server", server.url)
    assert proc.returncode == 0, proc.stderr
    rounds = catalog.get("mnist").training.rounds
    eps = epsilon(PrivacyConfig(clipping_radius=1.0, noise_multiplier=2.0), rounds)
    assert f"ε={eps:.3g}" in proc.stdout and "δ=1e-05" in proc.stdout


def test_unknown_task_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run("data", "samples", "--task", "nope", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "samples"
    proc = _run("data", "samples", "--task", "breast_cancer", "--clients", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_data_samples_writes_client_folders(samples: Path) -> None:
    assert (samples / "client_1" / "data.csv").is_file()
    assert (samples / "client_2" / "data.csv").is_file()
    assert (samples / "test" / "data.csv").is_file()
    header = (samples / "client_1" / "data.csv").read_text().splitlines()[0]
    assert header.startswith("mean_radius,") and header.endswith(",target")


def test_train_alone_then_evaluate(samples: Path, tmp_path: Path) -> None:
    saved = tmp_path / "model.safetensors"
    proc = _run(
        "train", "--task", "breast_cancer", "--data", str(samples / "client_1"),
        "--test", str(samples / "test"), "--rounds", "5", "--save", str(saved), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    assert out["rounds"] == 5
    assert isinstance(out["test_accuracy"], float) and out["test_accuracy"] > 0.85
    assert saved.is_file()


def test_two_train_processes_join_one_server(samples: Path, tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path / "srv", seed_catalog=True)
    with start_in_background(config) as server:
        procs = [
            subprocess.Popen(
                [
                    *DISCO,
                    "train",
                    "--task",
                    "breast_cancer",
                    "--data",
                    str(samples / f"client_{i}"),
                    "--server",
                    server.url,
                    "--rounds",
                    "3",
                    "--name",
                    f"p{i}",
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in (1, 2)
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        model = httpx.get(f"{server.url}/api/tasks/breast_cancer/model")
    for proc, (_stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stderr
    digests = {_last_json(stdout)["digest"] for stdout, _ in outs}
    assert digests == {model.headers["X-Disco-Digest"]}
    assert model.headers["X-Disco-Round"] == "3"


def test_simulate_prints_one_json_line() -> None:
    proc = _run("simulate", "--task", "breast_cancer", "--clients", "2", "--rounds", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    for key in ("test_accuracy", "test_loss", "rounds", "wall_s", "bytes_up", "bytes_down"):
        assert key in out
    assert out["rounds"] == 3 and out["bytes_up"] > 0 and out["bytes_down"] > 0  # type: ignore[operator]
