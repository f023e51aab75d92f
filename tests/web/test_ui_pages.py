"""The web app's pages in a real browser: tasks, task steps, library, errors; phone and desktop."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest

from disco import Weights, catalog, init_weights
from disco.privacy import epsilon
from disco.server import ServerHandle
from disco.task import PrivacyConfig

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import connect_digits, get_json  # noqa: E402

expect = playwright_api.expect


@pytest.fixture(scope="module")
def private_task(publish: Any) -> str:
    """A task with update clipping and noise, published to the server."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"] = "private_digits"
    doc["display"]["title"] = "Private digits"
    doc["training"]["privacy"] = {"clipping_radius": 1.0, "noise_multiplier": 1.0}
    publish(doc)
    return "private_digits"


def test_tasks_page_lists_every_task_in_plain_words(
    any_page: Any, server: ServerHandle, private_task: str, screenshot: Any
) -> None:
    tasks = get_json(f"{server.url}/api/tasks")
    any_page.goto("/")
    expect(any_page.get_by_test_id("task-list")).to_be_visible()
    cards = any_page.locator("article.task-card")
    expect(cards).to_have_count(len(tasks))
    for task in tasks:
        card = any_page.locator(f'article[data-task="{task["id"]}"]')
        expect(card.locator("h2")).to_have_text(task["display"]["title"])
        tr = task["training"]
        if tr["data_type"] == "image":
            colour = "colour" if tr["channels"] == 3 else "grey"
            data = f"Images, {tr['image_width']}×{tr['image_height']} {colour}"
        elif tr["data_type"] == "text":
            data = "Text (.txt files)"
        else:
            data = f"Table (CSV), {len(tr['input_columns'])} columns"
        expect(card.locator(".fact-data")).to_have_text(data)
        scheme = {
            "federated": "Together, through the server",
            "decentralized": "Together, directly between participants",
            "local": "Alone",
        }[tr["scheme"]]
        expect(card.locator(".fact-scheme")).to_have_text(scheme)
        privacy = card.locator(".fact-privacy")
        secure = tr.get("secure_aggregation")
        if tr["privacy"]:
            unseen = " added up unseen" if secure else ""
            expect(privacy).to_have_text(f"Privacy: updates clipped and noised{unseen}")
        elif secure:
            expect(privacy).to_have_text("Privacy: updates added up unseen")
        else:
            expect(privacy).to_have_text("Privacy: files stay on your device")
    rounds = catalog.get("mnist").training.rounds
    expect(any_page.locator('article[data-task="mnist"] .fact-rounds')).to_contain_text(
        f"{rounds} rounds"
    )
    screenshot(any_page, f"tasks-{_size(any_page)}")

    # the private task states its formal guarantee, the same ε as the Python accountant
    any_page.locator(f'article[data-task="{private_task}"]').get_by_role("link").first.click()
    task = next(t for t in tasks if t["id"] == private_task)
    eps = epsilon(
        PrivacyConfig(**task["training"]["privacy"]), catalog.get("mnist").training.rounds
    )
    details = any_page.get_by_test_id("task-facts")
    expect(details).to_contain_text(f"ε = {eps:.3g} (δ = 10⁻⁵)")
    strength = "strong" if eps <= 1 else "moderate" if eps <= 10 else "weak"
    expect(details).to_contain_text(f"a {strength} guarantee")


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
    # the browser trains at once; the server combines when enough updates are in
    minimum = catalog.get("mnist").training.min_participants
    facts = any_page.get_by_test_id("task-facts")
    expect(facts).to_contain_text("Your browser starts training as soon as you press Start.")
    expect(facts).to_contain_text(f"once at least {minimum} participants have sent theirs")
    expect(facts).not_to_contain_text("A round starts once")
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


def test_training_choice_is_kept_across_steps(desktop: Any, mnist_files: Path) -> None:
    desktop.goto("/#/tasks/mnist/connect")
    connect_digits(desktop, mnist_files / "client_1", 1)
    desktop.get_by_test_id("step-next").click()
    expect(desktop.get_by_label("With others")).to_be_checked()
    desktop.get_by_label("Alone").check()
    desktop.locator('[data-step="finish"]').click()
    expect(desktop.get_by_test_id("step-title")).to_contain_text("Test, save and download")
    desktop.get_by_test_id("step-back").click()
    expect(desktop.get_by_test_id("step-title")).to_contain_text("Train the model")
    expect(desktop.get_by_label("Alone")).to_be_checked()
    expect(desktop.get_by_label("With others")).not_to_be_checked()


_SAVE_MODELS = """async (models) => {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open("disco", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("models", { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  await new Promise((resolve, reject) => {
    const tx = db.transaction("models", "readwrite");
    for (const m of models) {
      const bytes = Uint8Array.from(atob(m.safetensors), (c) => c.charCodeAt(0));
      tx.objectStore("models").put({ ...m, safetensors: bytes, sizeBytes: bytes.byteLength });
    }
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  db.close();
}"""


def _save_models(page: Any, server: ServerHandle, seeds: list[int]) -> list[str]:
    """Put one untrained MNIST model per seed in the page's library, saved 1 s apart."""
    task = get_json(f"{server.url}/api/tasks/mnist")
    now = int(time.time() * 1000)
    models = [
        {
            "id": f"mnist-seed-{seed}",
            "taskId": "mnist",
            "taskTitle": task["display"]["title"],
            "task": task,
            "savedAt": now - 1000 * k,
            "how": "alone",
            "accuracy": None,
            "safetensors": base64.b64encode(
                init_weights(catalog.get("mnist").model, seed).to_safetensors()
            ).decode(),
        }
        for k, seed in enumerate(seeds)
    ]
    page.evaluate(_SAVE_MODELS, models)
    return [m["id"] for m in models]


def test_library_opens_each_model_on_its_own(
    phone: Any, server: ServerHandle, mnist_files: Path, screenshot: Any
) -> None:
    phone.goto("/#/library")
    expect(phone.get_by_test_id("library-empty")).to_be_visible()
    first, second = _save_models(phone, server, [0, 1])
    phone.reload()
    cards = phone.get_by_test_id("library-list").locator("article")
    expect(cards).to_have_count(2)
    # two saves of one task, a second apart, can be told apart by their time
    saved = [t.strip() for t in cards.locator(".model-saved").all_inner_texts()]
    assert saved[0] != saved[1] and all(re.search(r"\d:\d\d:\d\d", t) for t in saved), saved
    screenshot(phone, "library-phone")

    card_a = phone.locator(f'article[data-model="{first}"]')
    card_a.get_by_role("button", name="Test / predict").click()
    opened = phone.get_by_test_id("library-open")
    expect(opened).to_have_attribute("data-model", first)
    heading = opened.get_by_role("heading", level=2).first
    expect(heading).to_be_focused()
    expect(heading).to_be_in_viewport()  # on a phone the panel is below every card
    connect_digits(opened, mnist_files / "test", 1, purpose="test")
    opened.get_by_role("button", name="Test on 10 samples").click()
    expect(opened.get_by_test_id("test-result")).to_be_visible()
    expect(opened.get_by_test_id("confusion-caption")).to_be_visible()
    screenshot(phone, "library-open-phone")

    phone.locator(f'article[data-model="{second}"]').get_by_role(
        "button", name="Test / predict"
    ).click()
    expect(opened).to_have_attribute("data-model", second)
    expect(heading).to_be_focused()
    expect(heading).to_be_in_viewport()
    # nothing of the first model's test is left in the second one's panel
    expect(opened.get_by_test_id("test-result")).to_have_count(0)
    expect(opened.get_by_role("button", name="Test on 0 samples")).to_be_disabled()


def test_page_that_cannot_load_says_so_and_retries(desktop: Any) -> None:
    desktop.route("**/assets/CreateTaskPage-*.js", lambda route: route.abort())
    desktop.goto("/")
    expect(desktop.get_by_test_id("task-list")).to_be_visible()
    nav = desktop.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Create task").click()
    error = desktop.get_by_test_id("navigation-error")
    expect(error).to_contain_text("Create a task could not be opened")
    expect(error).to_contain_text("try again")
    desktop.unroute("**/assets/CreateTaskPage-*.js")
    error.get_by_role("button", name="Try again").click()
    expect(desktop.get_by_role("heading", name="Create a task")).to_be_visible()
    expect(error).to_have_count(0)


def test_training_choice_is_remembered_per_task(
    desktop: Any, publish: Any, breast_cancer_files: Path
) -> None:
    doc = catalog.get("breast_cancer").model_dump(mode="json")
    doc["id"] = "table_together"
    doc["display"]["title"] = "Another table, trained together"
    publish(doc)
    csv = breast_cancer_files / "client_1" / "data.csv"
    alone, together = desktop.get_by_label("Alone"), desktop.get_by_label("With others")

    def open_training(task_id: str) -> None:
        desktop.goto(f"/#/tasks/{task_id}/connect")
        desktop.get_by_test_id("train-csv-files").set_input_files(csv)
        count = desktop.get_by_test_id("train-summary").get_by_test_id("sample-count")
        expect(count).not_to_have_text("0")
        desktop.get_by_test_id("step-next").click()
        expect(desktop.get_by_test_id("step-title")).to_contain_text("Train the model")

    # a choice made on one task used to become every task's default
    desktop.goto("/")
    desktop.evaluate("localStorage.setItem('disco.trainMode', 'alone')")
    open_training("breast_cancer")
    expect(together).to_be_checked()
    alone.check()
    open_training("table_together")
    expect(together).to_be_checked()  # task B is trained together: its own default holds
    desktop.goto("/#/tasks/breast_cancer/train")
    expect(alone).to_be_checked()

    # remembered per task, across visits
    desktop.reload()
    expect(desktop.get_by_test_id("step-title")).to_contain_text("Train the model")
    open_training("breast_cancer")
    expect(alone).to_be_checked()
    open_training("table_together")
    expect(together).to_be_checked()
    stored = desktop.evaluate(
        "Object.fromEntries(Object.keys(localStorage)"
        ".filter((k) => k.startsWith('disco.trainMode')).map((k) => [k, localStorage[k]]))"
    )
    assert stored == {"disco.trainMode.breast_cancer": "alone"}, stored


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_library_opens_without_the_server(
    browser: Any, tmp_path: Path, web_build: Path, size: str, screenshot: Any
) -> None:
    from disco.server import ServerConfig, start_in_background

    config = ServerConfig(
        port=0, data_dir=tmp_path / "server", seed_catalog=True, web_dir=web_build
    )
    handle = start_in_background(config)
    options: dict[str, Any] = (
        {"viewport": {"width": 360, "height": 780}, "is_mobile": True, "has_touch": True}
        if size == "phone"
        else {"viewport": {"width": 1280, "height": 800}}
    )
    context = browser.new_context(base_url=handle.url, accept_downloads=True, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/")
        expect(page.get_by_test_id("task-list")).to_be_visible()
        first, second = _save_models(page, handle, [0, 1])
        handle.stop()  # the server goes away; the page stays open

        page.get_by_role("navigation", name="Main").get_by_role(
            "link", name="Model library"
        ).click()
        expect(page.get_by_role("heading", name="Model library")).to_be_visible()
        expect(page.get_by_test_id("navigation-error")).to_have_count(0)
        offline = page.get_by_test_id("library-offline")
        expect(offline).to_contain_text("The disco server cannot be reached right now")
        expect(offline).to_contain_text("you can still download or delete them")
        cards = page.get_by_test_id("library-list").locator("article")
        expect(cards).to_have_count(2)
        screenshot(page, f"library-offline-{size}")

        # the models are in this browser: download works without the server
        card = page.locator(f'article[data-model="{first}"]')
        with page.expect_download() as info:
            card.get_by_role("button", name="Download").click()
        downloaded = Weights.from_safetensors(Path(info.value.path()).read_bytes())
        assert downloaded.digest() == init_weights(catalog.get("mnist").model, 0).digest()

        # testing needs parts of the app never loaded in this page: it says so plainly
        card.get_by_role("button", name="Test / predict").click()
        expect(page.get_by_test_id("library-error")).to_contain_text(
            "because the disco server cannot be reached. You can still download or delete"
        )
        screenshot(page, f"library-offline-test-{size}")

        # ... and deleting works too
        page.once("dialog", lambda dialog: dialog.accept())
        card.get_by_role("button", name="Delete").click()
        expect(cards).to_have_count(1)
        expect(page.locator(f'article[data-model="{second}"]')).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(f'article[data-model="{second}"]').get_by_role("button", name="Delete").click()
        expect(page.get_by_test_id("library-empty")).to_be_visible()
        expect(offline).to_be_visible()
        assert not errors, errors
    finally:
        context.close()
        handle.stop()
