"""The web app's pages in a real browser: tasks, task steps, library, errors; phone and desktop."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from disco import catalog
from disco.server import ServerHandle

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.load(res)


@pytest.fixture(scope="module")
def private_task(server: ServerHandle, admin_token: str) -> str:
    """A task with update clipping and noise, published to the server."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "private_digits"
    doc["display"]["title"] = "Private digits"
    doc["training"]["privacy"] = {"clipping_radius": 1.0, "noise_multiplier": 1.0}
    req = urllib.request.Request(
        f"{server.url}/api/tasks",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 201
    return "private_digits"


def test_tasks_page_lists_every_task_in_plain_words(
    any_page: Any, server: ServerHandle, private_task: str, screenshot: Any
) -> None:
    tasks = _get_json(f"{server.url}/api/tasks")
    any_page.goto("/")
    expect(any_page.get_by_test_id("task-list")).to_be_visible()
    cards = any_page.locator("article.task-card")
    expect(cards).to_have_count(len(tasks))
    for task in tasks:
        card = any_page.locator(f'article[data-task="{task["id"]}"]')
        expect(card.locator("h2")).to_have_text(task["display"]["title"])
        data = "Images" if task["training"]["data_type"] == "image" else "Table (CSV)"
        expect(card.locator(".fact-data")).to_have_text(data)
        expect(card.locator(".fact-scheme")).to_contain_text("Federated")
        privacy = card.locator(".fact-privacy")
        if task["training"]["privacy"]:
            expect(privacy).to_contain_text("clipped and blurred with noise")
        else:
            expect(privacy).to_contain_text("no extra privacy protection")
    rounds = catalog.get("mnist").training.rounds
    expect(any_page.locator('article[data-task="mnist"] .fact-scheme')).to_contain_text(
        f"{rounds} rounds"
    )
    screenshot(any_page, f"tasks-{_size(any_page)}")


def test_unreachable_server_says_so_and_retries(phone: Any, screenshot: Any) -> None:
    phone.route("**/api/tasks", lambda route: route.abort())
    phone.goto("/")
    error = phone.get_by_test_id("tasks-error")
    expect(error).to_contain_text("cannot reach the disco server")
    screenshot(phone, "tasks-unreachable-phone")
    phone.unroute("**/api/tasks")
    error.get_by_role("button", name="Try again").click()
    expect(phone.get_by_test_id("task-list")).to_be_visible()
    expect(error).to_have_count(0)


def test_task_steps_one_at_a_time(any_page: Any, screenshot: Any) -> None:
    size = _size(any_page)
    any_page.goto("/#/tasks/mnist")
    title = any_page.get_by_test_id("step-title")
    expect(title).to_contain_text("About this task")
    expect(any_page.get_by_test_id("task-facts")).to_contain_text("0, 1, 2")
    expect(any_page.get_by_test_id("privacy-text")).to_contain_text("no extra privacy")
    expect(any_page.locator('[aria-current="step"]')).to_have_attribute("data-step", "describe")
    screenshot(any_page, f"task-describe-{size}")

    any_page.get_by_test_id("step-next").click()
    expect(title).to_contain_text("Connect your data")
    assert any_page.url.endswith("#/tasks/mnist/connect")
    expect(any_page.get_by_test_id("task-facts")).to_have_count(0)  # one step at a time
    expect(any_page.get_by_test_id("train-label-9")).to_be_attached()
    screenshot(any_page, f"task-connect-{size}")

    any_page.get_by_test_id("step-next").click()
    expect(title).to_contain_text("Train the model")
    expect(any_page.get_by_text("Connect your data first.")).to_be_visible()
    expect(any_page.get_by_test_id("start-training")).to_have_count(0)
    screenshot(any_page, f"task-train-empty-{size}")

    any_page.locator('[data-step="finish"]').click()
    expect(title).to_contain_text("Test, save and download")
    expect(any_page.get_by_text("No trained model yet.")).to_be_visible()

    any_page.get_by_test_id("step-back").click()
    expect(title).to_contain_text("Train the model")
    any_page.go_back()
    expect(title).to_contain_text("Test, save and download")


def test_deep_link_and_unknown_task(desktop: Any) -> None:
    desktop.goto("/#/tasks/titanic/connect")
    expect(desktop.get_by_test_id("step-title")).to_contain_text("Connect your data")
    expect(desktop.get_by_test_id("train-csv-files")).to_be_attached()
    desktop.goto("/#/tasks/no-such-task")
    expect(desktop.get_by_role("heading", name="Task not found")).to_be_visible()


def test_model_library_starts_empty(any_page: Any, screenshot: Any) -> None:
    any_page.goto("/#/library")
    empty = any_page.get_by_test_id("library-empty")
    expect(empty).to_contain_text("No saved models yet")
    expect(empty.get_by_role("link", name="Find a task")).to_be_visible()
    screenshot(any_page, f"library-empty-{_size(any_page)}")


def test_navigation_marks_the_current_page(phone: Any, screenshot: Any) -> None:
    phone.goto("/")
    nav = phone.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Create task").click()
    expect(phone.get_by_role("heading", name="Create a task")).to_be_visible()
    expect(nav.get_by_role("link", name="Create task")).to_have_attribute("aria-current", "page")
    screenshot(phone, "create-phone")
    nav.get_by_role("link", name="Model library").click()
    expect(phone.get_by_role("heading", name="Model library")).to_be_visible()
    assert phone.title() == "Model library · disco"


def _size(page: Any) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"
