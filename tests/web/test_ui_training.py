"""Training in the browser on real MNIST digits: alone, and together with two Python clients.

The browser connects PNG files exactly as a person would (one picker per label), trains with
TF.js, and ends with the model in hand: tested, saved, downloaded. With others, its final model
must be the server's global model, and nothing it sent may contain the pictures it trained on.
"""

from __future__ import annotations

import json
import logging
import os
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
from disco.privacy import epsilon
from disco.protocol import ModelUpdate, Welcome, decode
from disco.server import ServerHandle
from disco.task import PrivacyConfig

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import connect_digits, train_with_python_participants  # noqa: E402

expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")


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
    connect_digits(page, mnist_files / "client_1", 200)
    page.get_by_test_id("step-next").click()
    page.get_by_label("Alone").check()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "training", timeout=30_000)
    expect(status).to_have_attribute("data-phase", "done", timeout=150_000)
    rounds = catalog.get("mnist").training.rounds
    expect(page.get_by_test_id("counter-round")).to_have_text(f"{rounds} / {rounds}")
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("validation accuracy")
    # the figure kept is that of the final model, checked once training is over
    final_line = re.compile(
        r"accuracy of the final model on your (\d+) validation samples: ([\d.]+%)"
    )
    expect(log).to_contain_text(final_line)
    n_val, figure = final_line.findall(log.inner_text())[-1]
    expect(page.get_by_test_id("kept-accuracy")).to_contain_text(
        f"Accuracy of the final model on your {n_val} validation samples: {figure}"
    )
    expect(page.get_by_text("Epoch (this round)")).to_be_visible()
    screenshot(page, "train-alone-done-desktop")

    page.get_by_role("button", name="Test and save the model").click()
    expect(page.get_by_test_id("final-accuracy")).to_have_text(figure)
    accuracy = _percent(figure)
    assert accuracy >= 0.85, f"validation accuracy {accuracy:.3f} after training alone"

    # test on held-out digits: accuracy, confusion matrix, one row per sample
    connect_digits(page, mnist_files / "test", 10, purpose="test")
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
    connect_digits(opened, mnist_files / "test", 3, purpose="test")
    opened.get_by_role("button", name="Test on 30 samples").click()
    expect(opened.get_by_test_id("test-accuracy")).to_contain_text("%")
    page.once("dialog", lambda dialog: dialog.accept())
    saved.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("library-empty")).to_be_visible()


@pytest.fixture
def together_task(publish: Any) -> str:
    """MNIST in 2 rounds that wait for 3 participants, published for this test."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "mnist_together"
    doc["display"]["title"] = "Digits together"
    doc["training"].update(epochs=4, epochs_per_round=2, min_participants=3)
    publish(doc)
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
    browser_samples = connect_digits(page, browser_data, 30)
    page.get_by_test_id("step-next").click()
    expect(page.get_by_label("With others")).to_be_checked()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)
    expect(status).to_have_text("Waiting for 2 more participants — 1 of 3 here")
    # the wait is bounded, and the board counts it down (the task waits 600 s by default)
    expect(page.get_by_test_id("wait-countdown")).to_contain_text(
        re.compile(r"this browser stops waiting in (10:00|9:[0-5]\d)")
    )
    screenshot(page, "train-waiting-phone")

    python_data = {
        k: _subset(mnist_files / f"client_{k}", tmp_path / f"py{k}", 300) for k in (1, 2)
    }
    python_digests = train_with_python_participants(
        status, server.url, together_task, python_data,
        done_timeout_ms=150_000, exit_timeout_s=60,
    )  # fmt: skip

    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("a round closed with 3 contributor(s)")
    # people count their rounds from 1, in the log as on the counter
    for line in ("your round 1 of 2: training on the shared model", "your round 2 of 2: training"):
        expect(log).to_contain_text(line)
    expect(log).to_contain_text("your round 2 of 2 done: the shared model has been trained for 2")
    assert not re.search(r"\bround 0\b", log.inner_text())
    expect(page.get_by_test_id("shared-rounds")).to_contain_text(
        "The shared model has been trained for 2 rounds so far"
    )
    # after the last round the combined model is checked, not the local one the browser sent
    final_line = re.compile(
        r"accuracy of the final model on your \d+ validation samples: ([\d.]+%)"
    )
    text = log.inner_text()
    assert text.index("your round 2 of 2 done") < final_line.search(text).start()
    figure = final_line.findall(text)[-1]
    screenshot(page, "train-together-done-phone")

    # the browser ends with the server's global model, as the Python clients do
    with urllib.request.urlopen(f"{server.url}/api/tasks/{together_task}/model") as res:
        server_digest = res.headers["X-Disco-Digest"]
    page.get_by_role("button", name="Test and save the model").click()
    expect(page.get_by_test_id("final-accuracy")).to_have_text(figure)
    downloaded = _download(page, page.get_by_test_id("download-model"))
    assert Weights.from_safetensors(downloaded).digest() == server_digest
    assert python_digests == {server_digest}

    # ... and tests it on held-out digits it never saw
    connect_digits(page, mnist_files / "test", 10, purpose="test")
    page.get_by_role("button", name="Test on 100 samples").click()
    test_accuracy = _percent(page.get_by_test_id("test-accuracy").inner_text())
    assert test_accuracy >= 0.85, f"held-out accuracy {test_accuracy:.3f} of the global model"
    _assert_results_fit_the_phone(page)
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
        assert re.search(r"num_samples=\d+ reported=\d+/\d+", line), line

    # privacy: model updates went out, the pictures did not
    log = page_log(page)
    assert log.frames_sent, "the browser sent no WebSocket frame"
    # only the server; blob: URLs are in-page (the wasm backend's thread workers), no network
    assert all(url.startswith((server.url, f"blob:{server.url}")) for _, url, _ in log.requests)
    sent = log.bytes_sent()
    for digit in range(10):
        png = sorted((browser_data / str(digit)).glob("*.png"))[0]
        assert png.read_bytes()[60:] not in sent
        pixels = np.asarray(Image.open(png), dtype=np.float32) / 255.0
        row = pixels[pixels.sum(axis=1).argmax()]  # the row with the most ink
        assert row.astype("<f4").tobytes() not in sent


def _assert_results_fit_the_phone(page: Any) -> None:
    """At 360 px nothing of the test results is cut off or hidden sideways."""
    width = page.viewport_size["width"]
    caption = page.get_by_test_id("confusion-caption")
    expect(caption).to_be_visible()
    box = caption.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    # the 10x10 matrix is wider than a phone: it scrolls sideways and says so
    expect(page.get_by_test_id("scroll-hint")).to_be_visible()
    # every column of the per-sample results is on screen, for every row
    rows = page.get_by_test_id("sample-results").locator("tbody tr")
    cells = rows.first.locator("td")
    expect(cells.last).to_contain_text("%")  # the last column: how sure the model was
    for cell in cells.all():
        cell_box = cell.bounding_box()
        assert cell_box and cell_box["x"] + cell_box["width"] <= width, (
            cell.inner_text(),
            cell_box,
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _participants(server: ServerHandle, task_id: str) -> int:
    with urllib.request.urlopen(f"{server.url}/api/tasks/{task_id}/status", timeout=10) as res:
        return int(json.load(res)["participants"])


def test_stop_leaves_the_session_and_training_can_start_again(
    desktop: Any, server: ServerHandle, publish: Any, mnist_files: Path
) -> None:
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "mnist_stop"
    doc["training"]["min_participants"] = 2
    # long enough that training alone is still running when Stop is clicked: 200 images for
    # the catalog's 10 epochs take only seconds in a browser with the wasm kernels
    doc["training"]["epochs"] = 2_000
    publish(doc)

    page = desktop
    page.goto("/#/tasks/mnist_stop/connect")
    connect_digits(page, mnist_files / "client_1", 20)
    page.get_by_test_id("step-next").click()
    status = page.get_by_test_id("training-status")

    # with others: waiting for a second participant, then stop → the server sees it leave
    page.get_by_test_id("start-training").click()
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=30_000)
    assert _participants(server, "mnist_stop") == 1
    page.get_by_test_id("stop-training").click()
    expect(status).to_have_attribute("data-phase", "stopped", timeout=15_000)
    expect(page.get_by_test_id("training-log")).to_contain_text("stopped")
    # the browser had trained round 1 but nothing was combined: it keeps its own model, and says so
    expect(page.get_by_test_id("training-message")).to_contain_text(
        "you keep the model your browser trained on your data alone"
    )
    expect(page.get_by_test_id("kept-accuracy")).to_contain_text("Accuracy of the final model")
    expect(page.get_by_role("button", name="Test and save the model")).to_be_visible()
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
    publish: Any,
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
    publish(doc)

    page = desktop
    page.goto(f"/#/tasks/{task_id}/connect")
    connect_digits(page, mnist_files / "client_1", 20)
    page.get_by_test_id("step-next").click()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(page.get_by_test_id("training-log")).to_contain_text(
        re.compile(
            rf"privacy: update size [0-9.e+-]+, "
            rf"(clipped to L2 norm ≤ {radius:g}|within the clipping radius {radius:g}); "
            + ("no noise" if multiplier == 0 else rf"noise σ = {multiplier * radius:.3g} added")
            + "; no metrics or sample count sent"
        )
    )

    spent = page.get_by_test_id("privacy-spent")
    if multiplier == 0:
        expect(spent).to_have_count(0)  # clipping alone: no ε to report
    else:
        eps = epsilon(PrivacyConfig(clipping_radius=radius, noise_multiplier=multiplier), 1)
        shown = float(f"{eps:.3g}")
        text = str(int(shown)) if shown.is_integer() else repr(shown)
        expect(spent).to_contain_text("This browser has shared 1 protected update for this task")
        expect(spent).to_contain_text(f"ε = {text} (δ = 10⁻⁵)")

    log = page_log(page)
    received = [decode(f) for f in log.frames_received]
    sent = [decode(f) for f in log.frames_sent]
    welcome = next(m for m in received if isinstance(m, Welcome))
    (update,) = [m for m in sent if isinstance(m, ModelUpdate)]
    # only the protected weights carry anything computed from the data
    assert update.num_samples == 1
    assert update.metrics.model_dump(exclude_none=True) == {}
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


def _twins(folder: Path, out: Path) -> Path:
    """Two copies of the first picture of every digit: the validation half is then known."""
    for digit in range(10):
        png = sorted((folder / str(digit)).glob("*.png"))[0]
        (out / str(digit)).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            shutil.copy(png, out / str(digit) / name)
    return out


def _accuracy_of(weights: Weights, folder: Path) -> float:
    """Accuracy of the MNIST model with `weights` on the labelled pictures in `folder`."""
    from disco.data.images import load_image_folder
    from disco.models import TorchModel
    from disco.training import evaluate

    task = catalog.get("mnist")
    model = TorchModel.from_spec(task.model)
    model.set_weights(weights)
    _, accuracy = evaluate(model, load_image_folder(folder, task.training))
    assert accuracy is not None
    return accuracy


def test_stop_with_others_keeps_the_last_global_model_and_checks_it(
    desktop: Any,
    server: ServerHandle,
    publish: Any,
    mnist_files: Path,
    screenshot: Any,
    tmp_path: Path,
) -> None:
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "mnist_keep"
    doc["display"]["title"] = "Digits kept"
    doc["training"].update(epochs=4, epochs_per_round=2, min_participants=2, validation_split=0.5)
    publish(doc)
    twins = _twins(mnist_files / "client_3", tmp_path / "twins")
    singles = tmp_path / "singles"  # one of each twin: exactly the browser's validation samples
    for digit in range(10):
        (singles / str(digit)).mkdir(parents=True)
        shutil.copy(twins / str(digit) / "a.png", singles / str(digit) / "a.png")

    page = desktop
    page.goto("/#/tasks/mnist_keep/connect")
    for digit in range(10):
        page.get_by_test_id(f"train-label-{digit}").set_input_files(
            sorted((twins / str(digit)).glob("*.png"))
        )
    expect(page.get_by_test_id("train-summary").get_by_test_id("sample-count")).to_have_text("20")
    page.get_by_test_id("step-next").click()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)

    # while it trains: the header shows it everywhere, reloading asks first, one training at a time
    indicator = page.get_by_test_id("training-indicator")
    expect(indicator).to_contain_text("Training “Digits kept” — your round 1 of 2")
    prevented = page.evaluate(
        "() => { const e = new Event('beforeunload', { cancelable: true });"
        " window.dispatchEvent(e); return e.defaultPrevented; }"
    )
    assert prevented, "reloading during training must ask first"
    # other pages stay usable: the training goes on, the header bar leads back to it
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Model library").click()
    expect(page.get_by_role("heading", name="Model library")).to_be_visible()
    expect(indicator).to_contain_text("Digits kept")
    indicator.get_by_role("link", name="Show training").click()
    page.locator('[data-step="finish"]').click()
    expect(page.get_by_test_id("no-model")).to_contain_text("Training is still running")
    page.goto("/#/tasks/mnist/train")
    expect(page.get_by_test_id("other-training")).to_contain_text(
        "“Digits kept” is training right now"
    )
    indicator.get_by_role("link", name="Show training").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants")

    # a Python participant takes part in round 1 only; the browser then waits alone in round 2
    python_data = _subset(mnist_files / "client_1", tmp_path / "py", 100)
    python = subprocess.run(
        [str(DISCO), "train", "--task", "mnist_keep", "--server", server.url, "--json",
         "--data", str(python_data), "--name", "python-1", "--rounds", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert python.returncode == 0, python.stderr
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("a round closed with 2 contributor(s)", timeout=30_000)
    expect(log).to_contain_text("your round 2 of 2: update accepted", timeout=60_000)
    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    page.get_by_test_id("stop-training").click()
    expect(status).to_have_attribute("data-phase", "stopped", timeout=15_000)
    expect(indicator).to_have_count(0)

    # it keeps the model of round 1 the server sent, says so, and checks that model
    expect(page.get_by_test_id("training-message")).to_contain_text(
        "You keep the last model the server sent: everyone's updates combined over 1 of 2 rounds"
    )
    expect(page.get_by_test_id("kept-accuracy")).to_contain_text(
        "Accuracy of the final model on your 10 validation samples"
    )
    assert not re.search(r"\bround 0\b", log.inner_text())
    screenshot(page, "train-together-stopped-desktop")
    page.get_by_role("button", name="Test and save the model").click()
    expect(page.get_by_test_id("kept-origin")).to_contain_text("stopped after 1 of 2 rounds")
    with urllib.request.urlopen(f"{server.url}/api/tasks/mnist_keep/model", timeout=10) as res:
        round_1_digest = res.headers["X-Disco-Digest"]
    kept = Weights.from_safetensors(_download(page, page.get_by_test_id("download-model")))
    assert kept.digest() == round_1_digest
    shown = _percent(page.get_by_test_id("final-accuracy").inner_text())
    assert shown == pytest.approx(_accuracy_of(kept, singles), abs=1e-6)

    page.get_by_test_id("save-model").click()
    page.get_by_role("link", name="Open the library").click()
    card = page.get_by_test_id("library-list").locator("article")
    expect(card).to_contain_text("with others (stopped after 1 round)")
    expect(card).to_contain_text("on your 10 validation samples")


def test_unreachable_server_during_training_offers_retry_and_training_alone(
    browser: Any, tmp_path: Path, mnist_files: Path, screenshot: Any
) -> None:
    from disco.server import ServerConfig, start_in_background

    static = Path(
        os.environ.get(
            "DISCO_WEB_DIR", Path(__file__).resolve().parents[2] / "src/disco/server/static"
        )
    )
    config = ServerConfig(port=0, data_dir=tmp_path / "server", seed_catalog=True, web_dir=static)
    handle = start_in_background(config)
    context = browser.new_context(
        base_url=handle.url, viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/#/tasks/mnist/connect")
        connect_digits(page, mnist_files / "client_1", 5)
        page.get_by_test_id("step-next").click()
        expect(page.get_by_label("With others")).to_be_checked()
        handle.stop()  # the server goes away before training starts

        page.get_by_test_id("start-training").click()
        status = page.get_by_test_id("training-status")
        expect(status).to_contain_text(
            re.compile(r"Cannot reach the server — trying again \(attempt [3-9]\)"), timeout=30_000
        )
        expect(page.get_by_test_id("training-indicator")).to_be_visible()
        screenshot(page, "train-unreachable-retrying-phone")
        started = time.monotonic()
        problem = page.get_by_test_id("training-problem")
        expect(problem).to_contain_text("Cannot reach the disco server", timeout=25_000)
        assert time.monotonic() - started < 20  # the first connection is given up on in ~15 s
        expect(status).to_have_text("Cannot reach the server")
        expect(problem).not_to_contain_text("1006")  # plain words; the details are in the log
        expect(page.get_by_role("button", name="Test and save the model")).to_have_count(0)
        expect(problem.get_by_role("button", name="Try again")).to_be_visible()
        screenshot(page, "train-unreachable-phone")

        # pages not loaded yet cannot be opened either: the app says so instead of doing nothing
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Create task").click()
        nav_error = page.get_by_test_id("navigation-error")
        expect(nav_error).to_contain_text("Create a task could not be opened")
        expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")
        nav_error.get_by_role("button", name="Dismiss").click()
        # ... but the model library comes with the app: it opens, and says the server is gone
        nav.get_by_role("link", name="Model library").click()
        expect(page.get_by_test_id("library-offline")).to_contain_text(
            "The disco server cannot be reached right now"
        )
        expect(page.get_by_test_id("library-empty")).to_be_visible()
        # back on the task: it is shown as this page loaded it, with the training's outcome
        page.go_back()
        expect(page.get_by_test_id("task-offline")).to_contain_text(
            "The disco server cannot be reached right now"
        )
        expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")
        screenshot(page, "task-offline-phone")

        problem.get_by_role("button", name="Train alone instead").click()
        expect(status).to_have_attribute("data-phase", "done", timeout=120_000)
        expect(page.get_by_label("Alone")).to_be_checked()
        expect(page.get_by_test_id("kept-accuracy")).to_contain_text("Accuracy of the final model")
        expect(page.get_by_role("button", name="Test and save the model")).to_be_visible()
        assert not errors, errors
    finally:
        context.close()
        handle.stop()
