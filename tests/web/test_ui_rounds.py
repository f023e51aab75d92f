"""Rounds in the browser as people read them: bounded waits for others, a session joined in
progress, training that goes on from the model so far ("Train more rounds", "Keep training
alone", "Train alone instead"), on small real tables (breast cancer CSV files).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disco import Weights, catalog
from disco.server import ServerConfig, ServerHandle, start_in_background

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import connect_table, get_json, table_task  # noqa: E402

expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")
# "round 2 of 3, epoch 1: loss 0.4321" (alone) or "your round 2 of 3, epoch 1: …" (together)
EPOCH_LINE = re.compile(r"round (\d+) of (\d+), epoch (\d+): loss ([\d.]+)")


def _losses(page: Any) -> list[float]:
    """The training loss of every epoch in the log, in order."""
    text = page.get_by_test_id("training-log").inner_text()
    return [float(m[3]) for m in EPOCH_LINE.findall(text)]


def _last_epoch(page: Any) -> int:
    """The last epoch drawn on the loss chart."""
    return int(page.locator("figure.chart-figure").first.get_attribute("data-last-x") or 0)


def _download(page: Any, button: Any) -> bytes:
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def _size(page: Any) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"


def test_nobody_else_comes_the_wait_ends_with_the_model_so_far(
    any_page: Any,
    server: ServerHandle,
    publish: Any,
    breast_cancer_files: Path,
    screenshot: Any,
) -> None:
    page, size = any_page, _size(any_page)
    task_id = table_task(
        publish,
        f"table_wait_{size}",
        epochs=3,
        epochs_per_round=1,
        min_participants=2,
        round_deadline_s=6,
        wait_for_others_s=6,
    )
    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    expect(page.get_by_label("With others")).to_be_checked()
    page.get_by_test_id("start-training").click()

    # every wait says who is missing and counts down to when it gives up
    status = page.get_by_test_id("training-status")
    expect(status).to_have_text("Waiting for 1 more participant — 1 of 2 here", timeout=60_000)
    countdown = page.get_by_test_id("wait-countdown")
    expect(countdown).to_contain_text(re.compile(r"stops waiting in 0:0[1-6]"))
    screenshot(page, f"train-wait-countdown-{size}")

    # nobody came: it says so plainly, and the model so far is kept
    expired = page.get_by_test_id("wait-expired")
    expect(expired).to_contain_text(
        "Too few others sent their update within 6 seconds, so yours could not be combined",
        timeout=30_000,
    )
    expect(expired).to_contain_text("You keep the model your browser trained on your data alone.")
    expect(status).to_have_text("Stopped: too few others came in time")
    expect(countdown).to_have_count(0)
    expect(page.get_by_test_id("training-indicator")).to_have_count(0)
    expect(page.get_by_test_id("kept-accuracy")).to_contain_text("Accuracy of the final model")
    screenshot(page, f"train-wait-expired-{size}")

    expired.get_by_role("button", name="Finish with the model so far").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Test, save and download")
    summary = page.get_by_test_id("finish-summary")
    expect(summary.locator("h2")).to_have_text("Too few others came in time — you keep this model")
    expect(page.get_by_test_id("kept-origin")).to_contain_text(
        "Too few others came in time to combine updates with yours"
    )
    kept = Weights.from_safetensors(_download(page, page.get_by_test_id("download-model")))
    assert kept.shapes == dict(catalog.get("breast_cancer").model.weight_shapes())
    screenshot(page, f"finish-wait-expired-{size}")
    page.get_by_test_id("save-model").click()
    page.get_by_role("link", name="Open the library").click()
    expect(page.get_by_test_id("library-list").locator("article")).to_contain_text(
        "alone (too few others came in time to combine updates)"
    )

    # back on the board: keep training alone goes on from that model, and says so
    page.goto(f"/#/tasks/{task_id}/train")
    expect(page.get_by_test_id("wait-expired")).to_be_visible()
    assert _last_epoch(page) == 1
    page.get_by_test_id("keep-training-alone").click()
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(page.get_by_label("Alone")).to_be_checked()
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("continuing alone from the model so far (1 round trained before)")
    expect(page.get_by_test_id("training-message")).to_contain_text(
        "it went on alone from the model trained before, 3 rounds in all"
    )
    expect(page.get_by_test_id("charts-note")).to_contain_text(
        "Training went on from your model after 1 round: the charts continue where they stopped"
    )
    # the two rounds left of the plan, drawn after the first one
    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    assert _last_epoch(page) == 3
    # it was not started again from scratch: the epoch after it is well below the first epoch's
    losses = _losses(page)
    assert len(losses) == 3 and losses[1] < 0.7 * losses[0], losses
    # choosing a way out does not change the task's default: next time it is with others again
    page.reload()
    expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")
    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    expect(page.get_by_label("With others")).to_be_checked()


def test_small_table_still_improving_trains_more_rounds_alone(
    any_page: Any, publish: Any, breast_cancer_files: Path, screenshot: Any
) -> None:
    page, size = any_page, _size(any_page)
    # a slow learning rate and 3 epochs: the model is still learning when training ends
    task_id = table_task(
        publish, f"table_short_{size}", epochs=3, epochs_per_round=1, learning_rate=0.0005
    )
    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    page.get_by_label("Alone").check()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    hint = page.get_by_test_id("still-improving")
    expect(hint).to_contain_text("The model was still getting better when training ended")
    expect(page.get_by_test_id("counter-round")).to_have_text("3 / 3")
    assert _last_epoch(page) == 3
    before = _losses(page)
    screenshot(page, f"train-still-improving-{size}")

    # the finish step says it too, and offers more rounds from this model
    page.get_by_role("button", name="Test and save the model").click()
    more = page.get_by_test_id("train-more-panel")
    expect(more.get_by_test_id("finish-still-improving")).to_be_visible()
    expect(more).to_contain_text("Training goes on from this model, on your data")
    screenshot(page, f"finish-train-more-{size}")
    more.get_by_role("button", name="Train more rounds").click()

    expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(page.get_by_test_id("training-log")).to_contain_text(
        "continuing alone from the model so far (3 rounds trained before)"
    )
    # the charts go on from epoch 3 instead of starting again
    assert _last_epoch(page) == 6
    after = _losses(page)
    assert after[:3] == before and len(after) == 6, (before, after)
    # ... and so does the model: its loss picks up where it was, far from the untrained start
    assert after[3] < (before[0] + before[2]) / 2, (before, after)
    expect(page.get_by_test_id("charts-note")).to_contain_text(
        "the charts continue where they stopped"
    )
    screenshot(page, f"train-more-done-{size}")
    page.get_by_role("button", name="Test and save the model").click()
    expect(page.get_by_test_id("kept-origin")).to_have_text("Trained on your data alone.")


def test_joining_a_session_in_progress_reads_consistently(
    desktop: Any,
    server: ServerHandle,
    publish: Any,
    breast_cancer_files: Path,
    screenshot: Any,
) -> None:
    task_id = table_task(
        publish, "table_in_progress", epochs=2, epochs_per_round=1, min_participants=1
    )
    # someone else trained the shared model for 3 rounds before this browser comes
    python = subprocess.run(
        [str(DISCO), "train", "--task", task_id, "--server", server.url, "--json",
         "--data", str(breast_cancer_files / "client_2" / "data.csv"), "--rounds", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert python.returncode == 0, python.stderr
    assert get_json(f"{server.url}/api/tasks/{task_id}/status")["round"] == 3

    page = desktop
    page.goto("/")
    card = page.locator(f'article[data-task="{task_id}"]')
    # one participant's part, and apart from it how far the shared model has come
    expect(card.locator(".fact-rounds")).to_contain_text(
        "2 rounds of sharing each time you take part"
    )
    expect(card.locator(".fact-round")).to_have_text("Trained for 3 rounds so far")

    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    # this browser's rounds: 1 and 2 of 2, on the counter as in the log
    expect(page.get_by_text("Your round", exact=True)).to_be_visible()
    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("your round 1 of 2: training on the shared model (3 rounds so far)")
    expect(log).to_contain_text("your round 2 of 2, epoch 1: loss")
    assert not re.search(r"\bround [3-9]\b", log.inner_text())  # no "round 4" beside "2 / 2"
    # the shared model's own count, apart
    expect(page.get_by_test_id("shared-rounds")).to_contain_text(
        "The shared model has been trained for 5 rounds so far"
    )
    # why the curves start high
    expect(page.get_by_test_id("charts-note")).to_contain_text(
        "Others had already trained the shared model for 3 rounds when you joined,"
        " so the curves start high"
    )
    screenshot(page, "train-joined-in-progress-desktop")
    page.get_by_role("button", name="Test and save the model").click()
    expect(page.get_by_test_id("kept-origin")).to_contain_text(
        "The shared model has been trained for 5 rounds in all, by everyone;"
        " you took part in 2 of them."
    )

    # train more rounds together: joins again, the shared model goes on from round 5
    page.get_by_test_id("finish-train-more").click()
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(log).to_contain_text("joining the session again")
    expect(log).to_contain_text("your round 1 of 2: training on the shared model (5 rounds so far)")
    expect(page.get_by_test_id("shared-rounds")).to_contain_text("trained for 7 rounds so far")
    assert _last_epoch(page) == 4
    assert get_json(f"{server.url}/api/tasks/{task_id}/status")["round"] == 7


@pytest.fixture
def own_server(tmp_path: Path, web_build: Path) -> Iterator[ServerHandle]:
    """A server of this test's own, which the test may stop."""
    config = ServerConfig(
        port=0, data_dir=tmp_path / "server", seed_catalog=True, web_dir=web_build
    )
    handle = start_in_background(config)
    try:
        yield handle
    finally:
        handle.stop()


def test_lost_server_train_alone_goes_on_from_the_model_so_far(
    browser: Any, own_server: ServerHandle, breast_cancer_files: Path, screenshot: Any
) -> None:
    context = browser.new_context(
        base_url=own_server.url,
        viewport={"width": 360, "height": 780},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # breast cancer waits for 2 participants: alone here, the browser trains round 1 and waits
        connect_table(page, "breast_cancer", breast_cancer_files / "client_1" / "data.csv")
        page.get_by_test_id("start-training").click()
        status = page.get_by_test_id("training-status")
        expect(status).to_have_text("Waiting for 1 more participant — 1 of 2 here", timeout=60_000)
        own_server.stop()  # the server goes away mid-session

        expect(status).to_contain_text("reconnecting", timeout=30_000)
        problem = page.get_by_test_id("training-problem")
        started = time.monotonic()
        expect(problem).to_contain_text(
            "The connection to the server was lost and could not be restored", timeout=90_000
        )
        assert time.monotonic() - started < 80  # reconnecting is given up after about 60 s
        expect(problem).to_contain_text(
            "you keep the model your browser trained on your data alone"
        )
        expect(problem.get_by_test_id("continue-note")).to_contain_text(
            "If you train alone instead, training goes on from this model"
        )
        screenshot(page, "train-lost-server-phone")
        assert _last_epoch(page) == 1

        problem.get_by_role("button", name="Train alone instead").click()
        expect(status).to_have_attribute("data-phase", "done", timeout=90_000)
        expect(page.get_by_test_id("training-log")).to_contain_text(
            "continuing alone from the model so far (1 round trained before)"
        )
        rounds = catalog.get("breast_cancer").training.rounds
        assert _last_epoch(page) == rounds  # the rounds left of the plan, after the first
        losses = _losses(page)
        assert losses[1] < 0.7 * losses[0], losses  # not started again from scratch
        expect(page.get_by_role("button", name="Test and save the model")).to_be_visible()
        screenshot(page, "train-lost-server-alone-done-phone")
        assert not errors, errors
    finally:
        context.close()
