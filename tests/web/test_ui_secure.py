"""A browser and three `disco train` participants train MNIST with secure aggregation: the server
combines updates it never sees (docs/protocol.md §19)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from web_helpers import connect_digits, digits_subset

from disco import catalog, protocol
from disco.data import load_for_task
from disco.models import build_torch_model
from disco.server import ServerHandle
from disco.training import evaluate
from disco.weights import Weights

DISCO = [sys.executable, "-m", "disco.cli"]
ROUNDS = 4


@pytest.fixture
def secure_task(publish: Any) -> str:
    """MNIST, federated with secure aggregation, 4 rounds of 1 epoch among 4 participants."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"], doc["display"]["title"] = "mnist_secure", "Digits, added up securely"
    doc["training"].update(
        epochs=ROUNDS,
        epochs_per_round=1,
        min_participants=4,
        secure_aggregation={"clip": 1.0, "weight_cap": 1024},
    )
    return str(publish(doc))


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every message the server decodes while the test runs."""
    import disco.server.ws

    seen: list[Any] = []

    def decode(frame: bytes, *args: Any) -> Any:
        message = protocol.decode(frame, *args)
        seen.append(message)
        return message

    monkeypatch.setattr(disco.server.ws, "decode_frame", decode)
    return seen


def _uniform(words: np.ndarray) -> bool:
    """The words' top 4 bits pass a chi-square test against uniform (p ≈ 1e-6, 15 dof)."""
    counts = np.bincount((words >> 28).astype(np.int64), minlength=16)
    expected = words.size / 16
    return float(((counts - expected) ** 2 / expected).sum()) < 60.0


def test_a_browser_and_three_python_participants_train_and_the_server_sees_only_the_sum(
    desktop: Any,
    server: ServerHandle,
    secure_task: str,
    mnist_files: Path,
    received: list[Any],
    page_log: Any,
    screenshot: Any,
    tmp_path: Path,
) -> None:
    page = desktop
    page.goto(f"/#/tasks/{secure_task}/connect")
    expect(page.get_by_text("Privacy: updates added up unseen")).to_be_visible()
    connect_digits(page, mnist_files / "client_3", 30)
    page.get_by_test_id("step-next").click()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")

    others = []
    for k in range(3):
        data = digits_subset(mnist_files / f"client_{k % 2 + 1}", tmp_path / f"p{k}", 300)
        command = [*DISCO, "train", "--task", secure_task, "--server", server.url, "--json"]
        command += ["--data", str(data), "--name", f"python-{k}", "--seed", str(k)]
        others.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        expect(status).to_have_attribute("data-phase", "done", timeout=400_000)
        outputs = [p.communicate(timeout=120) for p in others]
    finally:
        for p in others:
            p.kill()
    screenshot(page, "secure-done-desktop")
    for p, (_, err) in zip(others, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [s["rounds"] for s in summaries] == [ROUNDS] * 3
    assert len({s["digest"] for s in summaries}) == 1

    history = json.loads(
        page.request.get(f"{server.url}/api/tasks/{secure_task}/rounds").body().decode()
    )
    assert [h["round"] for h in history] == list(range(ROUNDS))
    for h in history:
        assert h["contributors"] == 4 and h["aggregation"]["secure"] is True, h

    # the browser ends with the shared model, and it has learned
    page.get_by_role("button", name="Test and save the model").click()
    with page.expect_download() as download:
        page.get_by_test_id("download-model").click()
    weights = Weights.from_safetensors(Path(download.value.path()).read_bytes())
    assert weights.digest() == summaries[0]["digest"] == history[-1]["digest"]
    task = catalog.get("mnist")
    model = build_torch_model(task.model)
    model.set_weights(weights)
    _, accuracy = evaluate(model, load_for_task(mnist_files / "test", task.training))
    assert accuracy is not None and accuracy >= 0.85, accuracy

    # the server received no update, only masked inputs that look like noise
    assert not [m for m in received if isinstance(m, protocol.ModelUpdate)]
    inputs = [m for m in received if isinstance(m, protocol.SecureInput)]
    assert len(inputs) == 4 * ROUNDS
    assert all(_uniform(np.frombuffer(m.words, dtype="<u4")) for m in inputs)
    hellos = [m for m in received if isinstance(m, protocol.Hello)]
    assert {m.kind for m in hellos} == {"browser", "python"}
    assert all("secure_aggregation" in m.capabilities for m in hellos)
    # and the browser sent its own masked inputs: as floats they are nothing like an update
    sent = [protocol.decode(f) for f in page_log(page).frames_sent]
    mine = [m for m in sent if isinstance(m, protocol.SecureInput)]
    assert len(mine) == ROUNDS
    as_floats = np.frombuffer(mine[0].words, dtype="<f4")
    assert np.mean(~np.isfinite(as_floats) | (np.abs(as_floats) > 1e3)) > 0.3  # ~0.46
