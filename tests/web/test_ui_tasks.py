"""The Tasks page in a real browser: each task in plain words, and who is training it right now."""

from __future__ import annotations

import time
from typing import Any

import pytest

from disco import catalog
from disco.server import ServerHandle

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import get_json  # noqa: E402

expect = playwright_api.expect

# a page whose visibility the test sets: window.__setVisible(false) hides it, true shows it
VISIBILITY = """
let visible = true;
Object.defineProperty(Document.prototype, "visibilityState", {
  configurable: true, get: () => (visible ? "visible" : "hidden"),
});
Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => !visible });
window.__setVisible = (v) => {
  visible = v;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""


@pytest.fixture(scope="module")
def p2p_task(publish: Any) -> str:
    """A colour-image task trained peer to peer, with clipped and noised updates."""
    doc = catalog.get("cifar10").model_dump(mode="json")
    doc["id"] = "p2p_photos"
    doc["display"]["title"] = "Photos, peer to peer"
    doc["training"]["scheme"] = "decentralized"
    doc["training"]["privacy"] = {"clipping_radius": 1.0, "noise_multiplier": 0.8}
    return publish(doc)


def _size(page: Any) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"


def test_each_task_is_described_in_plain_words(
    any_page: Any, server: ServerHandle, p2p_task: str, screenshot: Any
) -> None:
    tasks = {t["id"]: t for t in get_json(f"{server.url}/api/tasks")}
    any_page.goto("/")
    expect(any_page.locator("article.task-card")).to_have_count(len(tasks))

    mnist = any_page.locator('article[data-task="mnist"]')
    expect(mnist.locator(".fact-data")).to_have_text("Images, 28×28 grey")
    expect(mnist.locator(".fact-scheme")).to_have_text("Together, through the server")
    expect(mnist.locator(".fact-privacy")).to_have_text("Privacy: files stay on your device")
    rounds = catalog.get("mnist").training.rounds
    # one participant's part, apart from how far the shared model has come (it goes on)
    expect(mnist.locator(".fact-rounds")).to_contain_text(
        f"{rounds} rounds of sharing each time you take part"
    )
    titanic = any_page.locator('article[data-task="titanic"]')
    columns = len(tasks["titanic"]["training"]["input_columns"])
    expect(titanic.locator(".fact-data")).to_have_text(f"Table (CSV), {columns} columns")

    p2p = any_page.locator(f'article[data-task="{p2p_task}"]')
    expect(p2p.locator(".fact-data")).to_have_text("Images, 32×32 colour")
    expect(p2p.locator(".fact-scheme")).to_have_text("Together, directly between participants")
    expect(p2p.locator(".fact-note")).to_contain_text("The server keeps no model of this task")
    expect(p2p.locator(".fact-privacy")).to_have_text("Privacy: updates clipped and noised")

    for card in any_page.locator("article.task-card").all():  # no jargon left
        expect(card).not_to_contain_text("Federated")
        expect(card).not_to_contain_text("Peer to peer")
        expect(card).not_to_contain_text("Standard")
    expect(mnist.locator(".fact-online")).to_have_text("Nobody yet; a round needs 2")
    expect(mnist.locator(".fact-round")).to_have_text("Not trained yet")
    screenshot(any_page, f"tasks-plain-{_size(any_page)}")

    # the task's own header uses the same words
    p2p.get_by_role("link", name="Join: Photos, peer to peer").click()
    expect(any_page.get_by_test_id("task-title")).to_have_text("Photos, peer to peer")
    expect(any_page.get_by_text("Privacy: updates clipped and noised")).to_be_visible()
    expect(any_page.get_by_text("Together, directly between participants").first).to_be_visible()


def _wait_for_requests(page: Any, asked: list[str], count: int, within_s: float = 10.0) -> None:
    """Wait until `count` status requests were routed (every card's, in flight ones included)."""
    deadline = time.monotonic() + within_s
    while len(asked) < count:
        waited = f"waited {within_s} s for {count} status requests, saw {len(asked)}"
        assert time.monotonic() < deadline, waited
        page.wait_for_timeout(50)  # lets the route handlers run
    assert len(asked) == count, f"expected {count} status requests, saw {len(asked)}"


def test_live_status_refreshes_while_visible_and_fails_per_card(desktop: Any) -> None:
    answers = {"participants": 2, "min_participants": 3, "round": 4}
    asked: list[str] = []

    def status(route: Any) -> None:
        asked.append(route.request.url)
        if "/api/tasks/titanic/" in route.request.url:
            route.abort()  # this card's status fails; the others carry on
        elif "/api/tasks/mnist/" in route.request.url:
            route.fulfill(json={"task_id": "mnist", "state": "waiting_for_participants", **answers})
        else:
            route.fallback()

    desktop.add_init_script(VISIBILITY)
    desktop.clock.install()
    desktop.route("**/api/tasks/*/status", status)
    desktop.goto("/")
    card = desktop.locator('article[data-task="mnist"]')
    online, done = card.locator(".fact-online"), card.locator(".fact-round")
    expect(online).to_have_text("2 people; a round needs 3")
    expect(done).to_have_text("Trained for 4 rounds so far")
    expect(card.locator("dt").filter(has_text="Shared model")).to_be_visible()
    titanic = desktop.locator('article[data-task="titanic"]')
    expect(titanic.locator(".fact-live")).to_have_count(0)
    expect(titanic.locator(".fact-data")).to_be_visible()
    other = desktop.locator('article[data-task="fashion_mnist"]')
    expect(other.locator(".fact-online")).to_contain_text("Nobody yet")

    cards = desktop.locator("article.task-card").count()
    answers.update(participants=3, round=5)
    desktop.clock.run_for(10_500)  # about every 10 s
    expect(online).to_have_text("3 people")
    expect(done).to_have_text("Trained for 5 rounds so far")
    _wait_for_requests(desktop, asked, 2 * cards)  # the whole refresh, not just this card

    desktop.evaluate("window.__setVisible(false)")
    before = len(asked)
    desktop.clock.run_for(35_000)  # nothing is asked while the page is hidden
    assert len(asked) == before
    answers.update(participants=1, round=6)
    desktop.evaluate("window.__setVisible(true)")  # back: asked again at once
    expect(online).to_have_text("1 person; a round needs 3")
    expect(done).to_have_text("Trained for 6 rounds so far")
