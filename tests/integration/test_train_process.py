"""`disco serve` and `disco train` as real processes, output not on a terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from disco import catalog
from disco.data.samples import write_samples
from disco.models import init_weights
from disco.task import Task
from disco.weights import Weights

TOKEN = "process-test-token"
DISCO = [sys.executable, "-m", "disco.cli"]


def task_shapes(task: Task) -> dict[str, tuple[int, ...]]:
    return init_weights(task.model, seed=0).shapes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    serve += ["--data-dir", str(tmp_path / "server"), "--admin-token", TOKEN]
    proc = subprocess.Popen(
        [*DISCO, *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "disco serve exited"
            assert time.monotonic() < deadline, "disco serve did not answer within 60 s"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_participant_below_the_minimum_logs_its_wait_and_stops_with_its_model(
    served: str, tmp_path: Path
) -> None:
    task = catalog.get("breast_cancer").model_copy(update={"id": "pair_only"})
    task = task.with_training(min_participants=2, epochs=3, round_deadline_s=1.0)
    resp = httpx.post(
        f"{served}/api/tasks",
        content=task.model_dump_json(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status_code in (200, 201), resp.text
    initial = httpx.get(f"{served}/api/tasks/pair_only/model").headers["X-Disco-Digest"]
    write_samples("breast_cancer", 2, tmp_path / "samples", seed=0)
    saved = tmp_path / "mine.safetensors"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TERM")}

    train = ["train", "--task", "pair_only", "--server", served, "--max-wait", "4"]
    train += ["--data", str(tmp_path / "samples" / "client_1"), "--save", str(saved)]
    done = subprocess.run(
        [*DISCO, *train],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )

    log = done.stderr
    assert done.returncode == 3, log  # the documented code: stopped waiting, model saved
    assert "\x1b[" not in log  # plain lines, no terminal control codes
    lines = log.splitlines()
    assert any(
        "the shared model has been trained for 0 rounds; you take part in 3 rounds" in line
        for line in lines
    ), log
    waits = [line for line in lines if "waiting for others: 1 more participant needed" in line]
    assert waits and "(1 of 2 connected)" in waits[0], log
    assert "stopped waiting for the others after 4 s" in log, log
    weights = Weights.load(saved)
    assert weights.shapes == task_shapes(task)
    assert weights.digest() != initial  # it keeps the model it trained, not the initial one
    assert saved.name in log
