"""Dropouts in secure rounds, n = 6, t = 4: participants as real processes killed (SIGKILL) at an
exact phase, the others real clients over WebSockets on loopback (docs/secure_aggregation.md §10).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from secure_kit import blobs, secure_task

from disco.client import FederatedClient
from disco.protocol import SecureInput, SecureReveal, SecureShares

pytestmark = pytest.mark.timeout(180)

KIT = Path(__file__).with_name("secure_kit.py")


def _dying(url: str, task_file: Path, phase: str, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(KIT), url, str(task_file), phase, str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _connected(url: str, n: int, timeout: float = 60.0) -> None:
    """Wait until `n` participants are connected to the task (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = httpx.get(f"{url}/api/tasks/secure/status", timeout=5).json()
        if status["participants"] >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} participants did not connect within {timeout:g} s")


def _history(url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(f"{url}/api/tasks/secure/rounds", timeout=5).json()
    return rows


@pytest.mark.parametrize(
    ("phase", "contributors", "dropped"),
    [
        ("shares", 5, 0),  # sent keys, never shared: left out before anyone masked with it
        ("masked", 5, 1),  # shared, sent no input: its key is rebuilt to remove its masks
        ("reveal", 6, 0),  # sent its input, then died: it counts; the others unmask without it
    ],
)
def test_one_participant_killed_at_a_phase_the_round_completes_with_the_survivors(
    serve: Any, tmp_path: Path, received: list[Any], phase: str, contributors: int, dropped: int
) -> None:
    task = secure_task(min_participants=6, threshold=4)
    server = serve(task)
    task_file = tmp_path / "task.json"
    task_file.write_text(task.model_dump_json())
    victim = _dying(server.url, task_file, phase, seed=99)
    try:
        _connected(server.url, 1)
        clients = [
            FederatedClient(task, blobs(i), server.url, name=f"s{i}", seed=i) for i in range(5)
        ]

        async def body() -> list[Any]:
            async with asyncio.timeout(120):
                return await asyncio.gather(*(c.run(rounds=1) for c in clients))

        results = asyncio.run(body())
        assert victim.wait(timeout=30) == -9  # killed, as by kill -9
    finally:
        if victim.poll() is None:
            victim.kill()
    assert [r.rounds for r in results] == [1] * 5
    assert len({r.weights.digest() for r in results}) == 1
    (row,) = _history(server.url)
    assert row["contributors"] == contributors
    assert row["aggregation"]["dropped"] == dropped and row["aggregation"]["threshold"] == 4
    assert "aborted" not in row["aggregation"]
    if phase == "shares":
        assert sum(isinstance(m, SecureShares) for m in received) == 5
    if phase == "reveal":
        assert sum(isinstance(m, SecureInput) for m in received) == 6
        assert sum(isinstance(m, SecureReveal) for m in received) >= 4


def test_three_killed_before_their_inputs_abort_revealing_nothing_and_the_next_round_works(
    serve: Any, tmp_path: Path, received: list[Any]
) -> None:
    task = secure_task(min_participants=6, threshold=4)
    server = serve(task)
    task_file = tmp_path / "task.json"
    task_file.write_text(task.model_dump_json())
    victims = [_dying(server.url, task_file, "masked", seed=90 + i) for i in range(3)]
    try:
        _connected(server.url, 3)
        stay = [FederatedClient(task, blobs(i), server.url, name=f"s{i}", seed=i) for i in range(3)]
        later = [
            FederatedClient(task, blobs(10 + i), server.url, name=f"n{i}", seed=10 + i)
            for i in range(3)
        ]

        async def body() -> list[Any]:
            async with asyncio.timeout(150):
                staying = [asyncio.ensure_future(c.run(rounds=2)) for c in stay]
                async with httpx.AsyncClient() as http:  # the abort, then newcomers
                    while not (await http.get(f"{server.url}/api/tasks/secure/rounds")).json():
                        await asyncio.sleep(0.05)
                return await asyncio.gather(*staying, *(c.run(rounds=1) for c in later))

        results = asyncio.run(body())
        assert [v.wait(timeout=30) for v in victims] == [-9, -9, -9]
    finally:
        for v in victims:
            if v.poll() is None:
                v.kill()
    first, second = _history(server.url)
    assert first["contributors"] == 0 and "masked inputs" in first["aggregation"]["aborted"]
    assert second["contributors"] == 6 and "aborted" not in second["aggregation"]
    # nothing revealed in the aborted round: no shares were asked for, none were sent
    assert not [m for m in received if isinstance(m, SecureReveal) and m.round == 0]
    assert [r.rounds for r in results] == [2, 2, 2, 1, 1, 1]
    assert len({r.weights.digest() for r in results}) == 1
