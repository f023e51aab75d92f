"""Training in the browser on real MNIST digits: alone, and together with two Python clients.

The browser connects PNG files exactly as a person would (one picker per label), trains with
TF.js, and ends with the model in hand: tested, saved, downloaded. With others, its final model
must be the server's global model, and nothing it sent may contain the pictures it trained on.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from disco import Weights, catalog
from disco.protocol import ModelUpdate, Welcome, decode
from disco.server import ServerHandle

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")


def _connect_digits(page: Any, folder: Path, per_label: int, purpose: str = "train") -> int:
    """Pick `per_label` PNGs of every digit in `folder`; return how many were picked."""
    total = 0
    for digit in range(10):
        files = sorted((folder / str(digit)).glob("*.png"))[:per_label]
        page.get_by_test_id(f"{purpose}-label-{digit}").set_input_files(files)
        total += len(files)
    count = page.get_by_test_id(f"{purpose}-summary").get_by_test_id("sample-count")
    expect(count).to_have_text(str(total), timeout=60_000)
    return total


def _subset(folder: Path, out: Path, per_label: int) -> Path:
    """Copy the first `per_label` pictures of every digit of `folder` to `out`."""
    for digit in range(10):
        (out / str(digit)).mkdir(parents=True)
        for png in sorted((folder / str(digit)).glob("*.png"))[:per_label]:
            shutil.copy(png, out / str(digit) / png.name)
    return out


def _percent(text: str) -> float:
    return float(text.strip().rstrip("%")) / 100


def _download(page: Any, button: Any) -> bytes:
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def test_train_alone_then_test_predict_save_download(
    desktop: Any, mnist_files: Path, screenshot: Any
) -> None:
    page = desktop
    page.goto("/#/tasks/mnist/connect")
    _connect_digits(page, mnist_files / "client_1", 200)
    page.get_by_test_id("step-next").click()
    page.get_by_label("Alone").check()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "training", timeout=30_000)
    expect(status).to_have_attribute("data-phase", "done", timeout=150_000)
    rounds = catalog.get("mnist").training.rounds
    expect(page.get_by_test_id("counter-round")).to_have_text(f"{rounds} / {rounds}")
    expect(page.get_by_test_id("training-log")).to_contain_text("validation accuracy")
    screenshot(page, "train-alone-done-desktop")

    page.get_by_role("button", name="Test and save the model").click()
    accuracy = _percent(page.get_by_test_id("final-accuracy").inner_text())
    assert accuracy >= 0.85, f"validation accuracy {accuracy:.3f} after training alone"

    # test on held-out digits: accuracy, confusion matrix, one row per sample
    _connect_digits(page, mnist_files / "test", 10, purpose="test")
    page.get_by_role("button", name="Test on 100 samples").click()
    test_accuracy = _percent(page.get_by_test_id("test-accuracy").inner_text())
    assert test_accuracy >= 0.75
    matrix = page.get_by_test_id("confusion-matrix")
    cells = [matrix.locator("tbody tr").nth(i).locator("td").nth(i) for i in range(10)]
    diagonal = sum(int(cell.inner_text()) for cell in cells)
    assert diagonal == round(test_accuracy * 100)
    expect(page.get_by_test_id("sample-results").locator("tbody tr")).to_have_count(100)

    # predict on unlabelled pictures and download the answers
    unlabelled = sorted((mnist_files / "test" / "3").glob("*.png"))[-5:]
    page.get_by_test_id("predict-image-files").set_input_files(unlabelled)
    page.get_by_role("button", name="Predict 5 samples").click()
    rows = _download(page, page.get_by_test_id("download-predictions")).decode().splitlines()
    assert rows[0] == "source,prediction,confidence"
    assert [r.split(",")[0] for r in rows[1:]] == [p.name for p in unlabelled]
    assert sum(r.split(",")[1] == "3" for r in rows[1:]) >= 3

    # the downloaded model is the trained one, in the Python format
    weights = Weights.from_safetensors(_download(page, page.get_by_test_id("download-model")))
    spec = catalog.get("mnist").model
    assert weights.shapes == dict(spec.weight_shapes())
    screenshot(page, "finish-desktop")

    page.get_by_test_id("save-model").click()
    expect(page.get_by_test_id("save-model")).to_have_text("Saved to your library")
    page.get_by_role("link", name="Open the library").click()
    saved = page.get_by_test_id("library-list").locator("article")
    expect(saved).to_have_count(1)
    expect(saved.locator("h2")).to_have_text("Handwritten digits (MNIST)")
    expect(saved.locator(".model-accuracy")).to_have_text(f"{100 * test_accuracy:.1f}%")
    stored = _download(page, saved.get_by_role("button", name="Download"))
    assert Weights.from_safetensors(stored).digest() == weights.digest()
    screenshot(page, "library-desktop")

    saved.get_by_role("button", name="Test / predict").click()
    opened = page.get_by_test_id("library-open")
    _connect_digits(opened, mnist_files / "test", 3, purpose="test")
    opened.get_by_role("button", name="Test on 30 samples").click()
    expect(opened.get_by_test_id("test-accuracy")).to_contain_text("%")
    page.once("dialog", lambda dialog: dialog.accept())
    saved.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("library-empty")).to_be_visible()


@pytest.fixture
def together_task(server: ServerHandle, admin_token: str) -> str:
    """MNIST in 2 rounds that wait for 3 participants, published for this test."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "mnist_together"
    doc["display"]["title"] = "Digits together"
    doc["training"].update(epochs=4, epochs_per_round=2, min_participants=3)
    req = urllib.request.Request(
        f"{server.url}/api/tasks",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 201
    return "mnist_together"


def test_browser_and_two_python_clients_train_together(
    phone: Any,
    server: ServerHandle,
    together_task: str,
    mnist_files: Path,
    page_log: Any,
    screenshot: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="disco.server")
    page = phone
    page.goto(f"/#/tasks/{together_task}/connect")
    browser_data = mnist_files / "client_3"
    browser_samples = _connect_digits(page, browser_data, 30)
    page.get_by_test_id("step-next").click()
    expect(page.get_by_label("With others")).to_be_checked()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)
    expect(status).to_contain_text("1 connected, 3 needed")
    screenshot(page, "train-waiting-phone")

    python_data = {
        k: _subset(mnist_files / f"client_{k}", tmp_path / f"py{k}", 300) for k in (1, 2)
    }
    python_clients = [
        subprocess.Popen(
            [str(DISCO), "train", "--task", together_task, "--server", server.url, "--json",
             "--data", str(python_data[k]), "--name", f"python-{k}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]  # fmt: skip
    try:
        expect(status).to_have_attribute("data-phase", "done", timeout=150_000)
        outputs = [p.communicate(timeout=60) for p in python_clients]
    finally:
        for p in python_clients:
            p.kill()
    for p, (_, err) in zip(python_clients, outputs, strict=True):
        assert p.returncode == 0, err
    python_digests = {json.loads(out.strip().splitlines()[-1])["digest"] for out, _ in outputs}

    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    expect(page.get_by_test_id("training-log")).to_contain_text("3 contributor(s)")
    screenshot(page, "train-together-done-phone")

    # the browser ends with the server's global model, as the Python clients do
    with urllib.request.urlopen(f"{server.url}/api/tasks/{together_task}/model") as res:
        server_digest = res.headers["X-Disco-Digest"]
    page.get_by_role("button", name="Test and save the model").click()
    downloaded = _download(page, page.get_by_test_id("download-model"))
    assert Weights.from_safetensors(downloaded).digest() == server_digest
    assert python_digests == {server_digest}

    # ... and tests it on held-out digits it never saw
    _connect_digits(page, mnist_files / "test", 10, purpose="test")
    page.get_by_role("button", name="Test on 100 samples").click()
    test_accuracy = _percent(page.get_by_test_id("test-accuracy").inner_text())
    assert test_accuracy >= 0.85, f"held-out accuracy {test_accuracy:.3f} of the global model"
    screenshot(page, "finish-phone")

    # the browser is a normal participant: its update is weighted by its samples, like the others
    with urllib.request.urlopen(f"{server.url}/api/tasks/{together_task}/rounds") as res:
        history = json.load(res)
    assert [r["round"] for r in history] == [0, 1]
    for record in history:
        kinds = sorted(p["kind"] for p in record["participants"])
        assert kinds == ["browser", "python", "python"]
        total = sum(p["num_samples"] for p in record["participants"])
        for p in record["participants"]:
            assert p["share"] == pytest.approx(p["num_samples"] / total)
        browser = next(p for p in record["participants"] if p["kind"] == "browser")
        assert browser_samples // 2 <= browser["num_samples"] <= browser_samples
    accepted = [
        r.getMessage()
        for r in caplog.records
        if together_task in r.getMessage() and "accepted update" in r.getMessage()
    ]
    browser_lines = [m for m in accepted if "/browser" in m]
    python_lines = [m for m in accepted if "/python" in m]
    assert len(browser_lines) == 2 and len(python_lines) == 4, accepted
    for line in accepted:
        match = re.search(r"num_samples=(\d+) weight=(\d+)", line)
        assert match and match[1] == match[2], line

    # privacy: model updates went out, the pictures did not
    log = page_log(page)
    assert log.frames_sent, "the browser sent no WebSocket frame"
    assert all(url.startswith(server.url) for _, url, _ in log.requests)
    sent = log.bytes_sent()
    for digit in range(10):
        png = sorted((browser_data / str(digit)).glob("*.png"))[0]
        assert png.read_bytes()[60:] not in sent
        pixels = np.asarray(Image.open(png), dtype=np.float32) / 255.0
        row = pixels[pixels.sum(axis=1).argmax()]  # the row with the most ink
        assert row.astype("<f4").tobytes() not in sent


def _participants(server: ServerHandle, task_id: str) -> int:
    with urllib.request.urlopen(f"{server.url}/api/tasks/{task_id}/status", timeout=10) as res:
        return int(json.load(res)["participants"])


def test_stop_leaves_the_session_and_training_can_start_again(
    desktop: Any, server: ServerHandle, admin_token: str, mnist_files: Path
) -> None:
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "mnist_stop"
    doc["training"]["min_participants"] = 2
    req = urllib.request.Request(
        f"{server.url}/api/tasks",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=30).close()

    page = desktop
    page.goto("/#/tasks/mnist_stop/connect")
    _connect_digits(page, mnist_files / "client_1", 20)
    page.get_by_test_id("step-next").click()
    status = page.get_by_test_id("training-status")

    # with others: waiting for a second participant, then stop → the server sees it leave
    page.get_by_test_id("start-training").click()
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=30_000)
    assert _participants(server, "mnist_stop") == 1
    page.get_by_test_id("stop-training").click()
    expect(status).to_have_attribute("data-phase", "stopped", timeout=15_000)
    expect(page.get_by_test_id("training-log")).to_contain_text("stopped")
    deadline = time.monotonic() + 10
    while _participants(server, "mnist_stop") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _participants(server, "mnist_stop") == 0

    # alone: stop in the middle of an epoch; the model is still there to test or save
    page.get_by_label("Alone").check()
    page.get_by_test_id("start-training").click()
    expect(status).to_have_attribute("data-phase", "training", timeout=30_000)
    expect(page.get_by_test_id("counter-batch")).not_to_have_text(re.compile(r"^0 /"))
    page.get_by_test_id("stop-training").click()
    expect(status).to_have_attribute("data-phase", "stopped", timeout=15_000)
    expect(page.get_by_test_id("start-training")).to_be_enabled()
    assert _participants(server, "mnist_stop") == 0


@pytest.mark.parametrize(
    ("radius", "multiplier"), [(0.5, 0.0), (1.0, 0.05)], ids=["clipping", "clipping+noise"]
)
def test_private_task_updates_are_clipped_and_noised_before_they_leave(
    desktop: Any,
    server: ServerHandle,
    admin_token: str,
    mnist_files: Path,
    page_log: Any,
    radius: float,
    multiplier: float,
) -> None:
    task_id = f"mnist_private_{int(multiplier * 100)}"
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = task_id
    doc["training"].update(
        epochs=1,
        epochs_per_round=1,
        min_participants=1,
        privacy={"clipping_radius": radius, "noise_multiplier": multiplier},
    )
    req = urllib.request.Request(
        f"{server.url}/api/tasks",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=30).close()

    page = desktop
    page.goto(f"/#/tasks/{task_id}/connect")
    _connect_digits(page, mnist_files / "client_1", 20)
    page.get_by_test_id("step-next").click()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(page.get_by_test_id("training-log")).to_contain_text(f"clipped to L2 norm ≤ {radius:g}")

    log = page_log(page)
    received = [decode(f) for f in log.frames_received]
    sent = [decode(f) for f in log.frames_sent]
    welcome = next(m for m in received if isinstance(m, Welcome))
    (update,) = [m for m in sent if isinstance(m, ModelUpdate)]
    delta = np.concatenate(
        [(update.weights[n] - welcome.weights[n]).ravel() for n in welcome.weights]
    ).astype(np.float64)
    std = multiplier * radius
    if std == 0:
        # training moved the model further than the radius; the update was scaled onto it
        assert np.linalg.norm(delta) == pytest.approx(radius, rel=1e-4)
    else:
        # the clipped update has norm ≤ radius: over d coordinates it adds at most radius²/d
        # to the mean square; the rest is the noise, of std noise_multiplier × radius
        d = delta.size
        noise_var = float(np.mean(delta**2))
        assert std**2 <= noise_var * 1.02 and noise_var <= std**2 * 1.02 + radius**2 / d
        assert abs(float(np.mean(delta))) < 5 * std / np.sqrt(d) + radius / np.sqrt(d)
