"""The server never loads torch (docs/architecture.md): `disco serve` runs a whole round without it.

A subprocess runs the real command (`disco.cli.main(["serve", ...])`, what the `disco` script
calls) while one of its threads uses the server: the built-in catalog is stored with its initial
weights, a task is published over REST, one raw protocol participant joins, sends an update and
gets the combined model back. Then the server is stopped and the subprocess reports whether
`torch` is in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SERVE_AND_REPORT = r"""
import json, os, signal, sys, threading, time

import httpx
import numpy as np
from websockets.sync.client import connect

from disco.cli import main
from disco.protocol import (
    Hello, ModelUpdate, RoundResult, Status, UpdateAck, Welcome, decode, encode,
)

port, data_dir = int(sys.argv[1]), sys.argv[2]
base = f"http://127.0.0.1:{port}"
report = {}
TASK = {
    "id": "no-torch",
    "display": {"title": "Served without torch"},
    "training": {
        "data_type": "image", "image_height": 28, "image_width": 28, "labels": list("0123456789"),
        "round_deadline_s": 5,
    },
}


def expect(ws, cls):
    while True:
        message = decode(ws.recv(timeout=10))
        if not isinstance(message, Status) or cls is Status:
            assert isinstance(message, cls), message
            return message


def drive():
    try:
        for _ in range(600):
            try:
                httpx.get(f"{base}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        report["tasks"] = sorted(t["id"] for t in httpx.get(f"{base}/api/tasks", timeout=10).json())
        mnist = httpx.get(f"{base}/api/tasks/mnist", timeout=10).json()
        doc = {**TASK, "model": mnist["model"]}
        created = httpx.post(f"{base}/api/tasks", json=doc, timeout=30,
                             headers={"Authorization": "Bearer admin-token-for-tests"})
        assert created.status_code == 201, created.text
        with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=10) as ws:
            ws.send(encode(Hello(task_id="no-torch", name="raw")))
            welcome = expect(ws, Welcome)
            moved = welcome.weights.map(lambda a: a + np.float32(0.5))
            ws.send(encode(ModelUpdate(round=welcome.round, num_samples=3, weights=moved)))
            expect(ws, UpdateAck)
            result = expect(ws, RoundResult)
            report["round"] = result.round
            report["combined"] = result.weights.digest() == moved.digest()
    except BaseException as exc:
        report["error"] = repr(exc)
    finally:
        os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=drive, daemon=True).start()
args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir,
        "--admin-token", "admin-token-for-tests"]
report["rc"] = main(args)
report["torch"] = "torch" in sys.modules
print("REPORT " + json.dumps(report))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_disco_serve_runs_a_round_without_loading_torch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCO_")}
    proc = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT, str(_free_port()), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, f"no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["rc"] == 0, proc.stderr[-3000:]
    assert "error" not in report, f"{report['error']}\n{proc.stderr[-3000:]}"
    assert {"mnist", "titanic"} <= set(report["tasks"])
    assert report["round"] == 1 and report["combined"] is True
    assert report["torch"] is False, "the server imported torch (docs/architecture.md)"


def test_the_library_still_loads_torch_when_a_member_needs_it() -> None:
    """`disco.TorchModel` and friends are imported on first use, and are the real thing."""
    code = (
        "import sys, disco, disco.models\n"
        "before = 'torch' in sys.modules\n"
        "from disco import TorchModel, build_torch_model\n"
        "from disco.models.torch import TorchModel as T\n"
        "assert TorchModel is T and disco.models.TorchModel is T\n"
        "assert disco.build_torch_model is build_torch_model\n"
        "assert 'TorchModel' in dir(disco) and 'build_torch_model' in dir(disco.models)\n"
        "print(before, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=True
    )
    assert proc.stdout.split() == ["False", "True"]


def test_unknown_names_are_still_attribute_errors() -> None:
    import disco
    import disco.models

    with pytest.raises(AttributeError, match="no_such_member"):
        _ = disco.no_such_member
    with pytest.raises(AttributeError, match="no_such_member"):
        _ = disco.models.no_such_member
