"""How the last rounds were combined, on the training board: each round's rule in plain words and
each participant's share, this browser's row marked, readable on a phone; a round history the
server cannot give is said plainly and never stops training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from disco.server import ServerHandle

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import connect_table, get_json, table_task  # noqa: E402

expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{round(100 * share)}%"


def test_after_each_round_the_board_shows_the_rule_and_everyones_share(
    phone: Any, server: ServerHandle, publish: Any, breast_cancer_files: Path, screenshot: Any
) -> None:
    page = phone
    task_id = table_task(
        publish,
        "table_reports",
        epochs=2,
        epochs_per_round=1,
        min_participants=2,
        aggregation={"rule": "mean", "max_share": 0.6},
    )
    # the first read of the history fails: the next round's read shows everything
    failed: list[str] = []

    def flaky(route: Any) -> None:
        if not failed:
            failed.append(route.request.url)
            route.fulfill(status=503, json={"error": "busy"})
        else:
            route.continue_()

    page.route("**/api/tasks/*/rounds*", flaky)
    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)
    expect(page.get_by_test_id("round-reports")).to_have_count(0)  # nothing closed yet

    python = subprocess.Popen(
        [str(DISCO), "train", "--task", task_id, "--server", server.url, "--json",
         "--data", str(breast_cancer_files / "client_2" / "data.csv"), "--rounds", "2",
         "--name", "python-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        expect(status).to_have_attribute("data-phase", "done", timeout=120_000)
        _, err = python.communicate(timeout=60)
    finally:
        python.kill()
    assert python.returncode == 0, err
    assert failed, "the history was never read"

    history = get_json(f"{server.url}/api/tasks/{task_id}/rounds")
    assert [r["round"] for r in history] == [0, 1]
    panel = page.get_by_test_id("round-reports")
    expect(panel).to_contain_text("How the last rounds were combined")
    expect(page.get_by_test_id("round-reports-error")).to_have_count(0)
    rounds = panel.get_by_test_id("round-report")
    expect(rounds).to_have_count(2)
    # newest first, counted from 1 as "trained for 2 rounds"
    for shown, record in zip(rounds.all(), reversed(history), strict=True):
        expect(shown).to_have_attribute("data-round", str(record["round"] + 1))
        expect(shown.get_by_test_id("round-rule")).to_have_text("Average, no one above 60%")
        rows = shown.get_by_test_id("report-row")
        expect(rows).to_have_count(2)
        by_kind = {p["kind"]: p for p in record["participants"]}
        you, other = rows.nth(0), rows.nth(1)  # this browser first, marked
        expect(you).to_have_attribute("data-you", "true")
        expect(you).to_contain_text("You")
        expect(you.get_by_test_id("report-share")).to_have_text(
            _percent(by_kind["browser"]["share"])
        )
        expect(other).to_have_attribute("data-you", "false")
        expect(other).to_contain_text("python-1 (Python)")
        expect(other.get_by_test_id("report-share")).to_have_text(
            _percent(by_kind["python"]["share"])
        )
    # on a phone: nothing sideways
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = panel.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    panel.scroll_into_view_if_needed()
    screenshot(page, "train-round-reports-phone")

    # the newest round open, the older one folded to its rule; the whole panel folds too
    expect(rounds.nth(0).get_by_test_id("report-row").first).to_be_visible()
    older = rounds.nth(1)
    expect(older.get_by_test_id("round-rule")).to_be_visible()
    expect(older.get_by_test_id("report-row").first).not_to_be_visible()
    older.locator("summary").click()
    expect(older.get_by_test_id("report-row").first).to_be_visible()
    panel.locator("summary").first.click()
    expect(rounds.first).not_to_be_visible()
    panel.locator("summary").first.click()
    expect(rounds.first).to_be_visible()


def _fabricated(me: str, rounds: int) -> list[dict[str, Any]]:
    """A busy robust-rule history: this browser, someone limited, someone left out, many more."""
    people = [
        {"name": me, "kind": "browser", "share": 0.2, "selected": True, "clipped": False},
        {"name": "python-at-the-hospital-of-saint-somewhere-far-away", "kind": "python",
         "share": 0.25, "selected": True, "clipped": True},
        {"name": "python-2", "kind": "python", "share": 0.0, "selected": False, "clipped": False},
    ] + [
        {"name": f"helper-{k}", "kind": "python", "share": 0.055, "selected": True}
        | {"clipped": False}
        for k in range(8)
    ]  # fmt: skip
    return [
        {"round": r, "contributors": len(people), "num_samples": 1000, "digest": "ab",
         "duration_s": 1.0, "closed_at": 0, "metrics": {},
         "participants": [{"num_samples": 90, "score": None, **p} for p in people],
         "aggregation": {"rule": "multi_krum", "f": 2, "m": None, "bucket_size": 2}}
        for r in range(rounds)
    ]  # fmt: skip


def test_a_history_the_server_cannot_give_is_said_plainly_and_training_goes_on(
    phone: Any, server: ServerHandle, publish: Any, breast_cancer_files: Path, screenshot: Any
) -> None:
    page = phone
    task_id = table_task(
        publish, "table_reports_down", epochs=2, epochs_per_round=1, min_participants=1
    )
    page.route("**/api/tasks/*/rounds*", lambda route: route.abort())
    connect_table(page, task_id, breast_cancer_files / "client_1" / "data.csv")
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "done", timeout=90_000)
    expect(page.get_by_test_id("counter-round")).to_have_text("2 / 2")
    problem = page.get_by_test_id("round-reports-error")
    expect(problem.locator("p")).to_have_text(
        "The server did not answer, so the last rounds cannot be shown just now."
    )  # training is over: not "training goes on"
    expect(page.get_by_test_id("round-report")).to_have_count(0)
    problem.scroll_into_view_if_needed()
    screenshot(page, "train-round-reports-unreadable-phone")

    # once the server answers again, asking again shows them: here a long, busy history
    history = get_json(f"{server.url}/api/tasks/{task_id}/rounds")
    me = next(p["name"] for p in history[0]["participants"] if p["kind"] == "browser")
    page.unroute("**/api/tasks/*/rounds*")
    page.route(
        "**/api/tasks/*/rounds*", lambda route: route.fulfill(json=_fabricated(me, rounds=7))
    )
    problem.get_by_role("button", name="Read them again").click()
    expect(problem).to_have_count(0)
    rounds = page.get_by_test_id("round-report")
    expect(rounds).to_have_count(5)  # the last 5, newest first
    newest = rounds.first
    expect(newest).to_have_attribute("data-round", "7")
    expect(newest.get_by_test_id("round-rule")).to_have_text(
        "Multi-Krum, up to 2 dishonest, in groups of 2"
    )
    rows = newest.get_by_test_id("report-row")
    expect(rows).to_have_count(8)
    expect(rows.first).to_contain_text("You")
    expect(rows.first.get_by_test_id("report-share")).to_have_text("20%")
    limited = rows.filter(has_text="saint-somewhere")
    expect(limited).to_contain_text("limited")
    expect(limited.get_by_test_id("report-share")).to_have_text("25%")
    left_out = rows.filter(has_text="python-2")
    expect(left_out).to_contain_text("not used")
    expect(left_out.get_by_test_id("report-share")).to_have_text("0%")
    expect(newest).to_contain_text("and 3 more")
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for row in rows.all():
        box = row.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    newest.scroll_into_view_if_needed()
    screenshot(page, "train-round-reports-busy-phone")
