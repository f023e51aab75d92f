"""`disco train` peers as real processes over WebRTC on loopback: one is killed mid-round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from peers_kit import blobs, p2p_task

DISCO = [sys.executable, "-m", "disco.cli"]


def _csv(path: Path, seed: int, n: int) -> Path:
    data = blobs(seed=seed, n=n)
    rows = ["a,b,y"] + [
        f"{a:.5f},{b:.5f},{'yes' if y else 'no'}" for (a, b), y in zip(data.x, data.y, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


class _Peer:
    """A `disco train` process whose stderr lines are collected as they come."""

    def __init__(self, url: str, data: Path, name: str, rounds: int) -> None:
        args = ["train", "--task", "p2p", "--server", url, "--data", str(data), "--json"]
        args += ["--name", name, "--rounds", str(rounds), "--ice-host", "127.0.0.1"]
        args += ["--max-wait", "60"]
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TERM")}
        self.proc = subprocess.Popen(
            [*DISCO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def stop(self) -> None:
        """Kill it if it still runs; close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
        self._reader.join(timeout=5)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def result(self, timeout: float) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, "\n".join(self.lines)
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


def test_a_late_peer_killed_while_sending_does_not_stall_the_others(
    serve: Any, tmp_path: Path
) -> None:
    task = p2p_task(min_participants=3, deadline=120.0)
    server = serve(task)
    status = f"{server.url}/api/tasks/p2p/status"
    survivors = [
        _Peer(server.url, _csv(tmp_path / f"p{i}.csv", i, n=1500), f"p{i}", rounds=6)
        for i in range(3)
    ]
    peers = list(survivors)
    try:
        _wait(lambda: httpx.get(status, timeout=5).json()["participants"] == 3, 120, "3 peers")
        # a late joiner: it gets the round's model from a peer, trains, starts sending, dies
        victim = _Peer(server.url, _csv(tmp_path / "late.csv", 9, n=1500), "late", rounds=6)
        peers.append(victim)
        _wait(lambda: victim.saw("sending the update"), 120, "the late peer's first update")
        victim.proc.send_signal(signal.SIGKILL)
        died_in = int(next(x for x in victim.lines if "sending the update" in x).split()[3][:-1])
        results = [p.result(timeout=180) for p in survivors]
    finally:
        for p in peers:
            p.stop()

    assert victim.proc.wait(timeout=10) == -signal.SIGKILL
    assert victim.saw("got the round's model from peer")  # not from the server
    assert [r["rounds"] for r in results] == [6, 6, 6]
    assert len({r["digest"] for r in results}) == 1  # they agree on the final model
    history = {h["round"]: h for h in httpx.get(f"{server.url}/api/tasks/p2p/rounds").json()}
    assert sorted(history) == list(range(6))
    assert history[died_in]["contributors"] in (3, 4)  # its update reached all, or is left out
    # the round it died in closed long before any deadline (120 s) could expire
    assert history[died_in]["duration_s"] < 60, history[died_in]
    assert all(history[r]["contributors"] == 3 for r in range(died_in + 1, 6))
