"""A private instance in the browser: a person without an invitation is told plainly that the
server is private and how to join; the person who runs it makes an invitation on the MNIST
task's page; a fresh browser opens the join link and trains with an invited Python participant
until a round closes; once revoked, that browser is refused in plain words. Phone-sized pages.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disco.protocol import Hello, decode
from disco.server import ServerConfig, ServerHandle, start_in_background

playwright_api = pytest.importorskip("playwright.sync_api")
from conftest import PHONE  # noqa: E402
from web_helpers import connect_digits, digits_subset  # noqa: E402

expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")
ADMIN = "private-web-admin-token"
REFUSED = (
    "This invitation is no longer valid: it was revoked or has expired. "
    "Ask the person who invited you for a new link."
)
LINK = re.compile(
    r"^(http://[^/]+)/#/join/mnist\?invitation=(dinv\.[a-z2-7]{10}\.[A-Za-z0-9_-]{43})$"
)


@pytest.fixture
def private_server(tmp_path: Path, web_build: Path) -> Iterator[ServerHandle]:
    """A private instance (access="invitation") with the built-in tasks and an admin token."""
    config = ServerConfig(
        port=0,
        data_dir=tmp_path / "server",
        admin_token=ADMIN,
        access="invitation",
        seed_catalog=True,
        web_dir=web_build,
    )
    with start_in_background(config) as handle:
        yield handle


class Person:
    """One browser context at phone size: its page, its WebSocket frames and its errors."""

    def __init__(self, browser: Any, server: ServerHandle) -> None:
        self.context = browser.new_context(base_url=server.url, **PHONE)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.frames: list[bytes] = []
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("websocket", self._watch)

    def _watch(self, ws: Any) -> None:
        ws.on("framesent", lambda p: self.frames.append(p if isinstance(p, bytes) else p.encode()))

    def fits(self) -> None:
        """Nothing of the page is cut off sideways at phone width."""
        width = self.page.viewport_size["width"]
        assert self.page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.fixture
def people(browser: Any, private_server: ServerHandle) -> Iterator[Any]:
    """`people()`: a fresh phone-sized browser context for each person (closed at the end)."""
    made: list[Person] = []

    def make() -> Person:
        made.append(Person(browser, private_server))
        return made[-1]

    yield make
    for person in made:
        person.context.close()
    for person in made:
        assert not person.errors, f"uncaught errors in the page: {person.errors}"


def test_private_server_invite_train_revoke(
    private_server: ServerHandle,
    people: Any,
    mnist_files: Path,
    tmp_path: Path,
    screenshot: Any,
) -> None:
    # (a) a first-time visitor without an invitation: the server is private, here is how to join
    visitor = people()
    page = visitor.page
    page.goto("/")
    private = page.get_by_test_id("private-server")
    expect(private).to_contain_text("This server is private")
    expect(private).to_contain_text("Only invited people can take part in its tasks")
    expect(page.get_by_label("Your invitation link")).to_be_visible()
    expect(page.get_by_test_id("operator-token")).not_to_be_visible()  # folded, for the operator
    expect(page.get_by_test_id("task-list")).to_have_count(0)
    visitor.fits()
    screenshot(page, "private-server-phone")
    cut_short = f"{private_server.url}/#/join/mnist?invitation=dinv.abc"
    page.get_by_label("Your invitation link").fill(cut_short)
    page.get_by_test_id("invitation-join").click()
    expect(page.get_by_test_id("invitation-problem")).to_contain_text(
        "This is not an invitation link"
    )
    page.goto("/#/tasks/mnist")
    expect(page.get_by_test_id("task-private")).to_contain_text("This task is private")

    # (b) the person who runs the server: every task with the admin token, then an invitation
    admin = people()
    page = admin.page
    page.goto("/")
    page.get_by_test_id("operator-access").locator("summary").click()
    page.get_by_test_id("operator-token").fill(ADMIN)
    page.get_by_test_id("operator-show").click()
    expect(page.get_by_test_id("task-list")).to_be_visible()
    page.get_by_role("link", name="Join: Handwritten digits (MNIST)").click()
    expect(page.get_by_test_id("task-title")).to_have_text("Handwritten digits (MNIST)")
    panel = page.get_by_test_id("invite-panel")
    panel.locator("summary").click()
    expect(page.get_by_test_id("invite-admin-token")).to_have_value(ADMIN)  # kept for the tab
    page.get_by_label("Who is it for? (optional)").fill("Ward 4")
    page.get_by_label("The link works for").select_option(label="7 days")
    page.get_by_test_id("invite-create").click()
    created = page.get_by_test_id("invite-created")
    expect(created).to_contain_text("Invitation created for Ward 4")
    expect(created).to_contain_text("It is shown only this once")
    link = page.get_by_test_id("invite-link").input_value()
    found = LINK.match(link)
    assert found and found[1] == private_server.url, link
    token = found[2]
    row = page.get_by_test_id("invitation-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Ward 4")
    expect(row).to_contain_text("used 0 times")
    expect(row.get_by_test_id("invitation-status")).to_have_text("active")
    created.scroll_into_view_if_needed()
    admin.fits()
    screenshot(page, "invite-created-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "invite-created-desktop")
    page.set_viewport_size(PHONE["viewport"])

    # (c) a fresh browser opens the link: the invitation is kept, the address bar loses it
    invited = people()
    page = invited.page
    page.goto(link)
    expect(page.get_by_test_id("task-title")).to_have_text("Handwritten digits (MNIST)")
    assert "invitation" not in page.url, page.url
    kept = json.loads(page.evaluate("localStorage.getItem('disco.invitations')"))
    assert kept == {"mnist": token}
    expect(page.get_by_test_id("invite-admin-token")).not_to_be_visible()  # folded, for the admin
    page.get_by_test_id("step-next").click()
    connect_digits(page, mnist_files / "client_3", 20)
    page.get_by_test_id("step-next").click()
    expect(page.get_by_label("With others")).to_be_checked()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=60_000)

    # ... with one invited Python participant, until a round closes
    python_data = digits_subset(mnist_files / "client_1", tmp_path / "py", 30)
    python = subprocess.run(
        [str(DISCO), "train", "--task", "mnist", "--server", private_server.url, "--json",
         "--invitation", link, "--data", str(python_data), "--name", "python-1", "--rounds", "1"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert python.returncode == 0, python.stderr
    log = page.get_by_test_id("training-log")
    expect(log).to_contain_text("a round closed with 2 contributor(s)", timeout=60_000)
    invited.fits()
    screenshot(page, "invited-training-phone")
    # the invitation went in the Hello and in headers, never in an address after the link
    hellos = [m for m in map(decode, invited.frames) if isinstance(m, Hello)]
    assert hellos and {h.invitation for h in hellos} == {token}
    assert not [url for url in invited.urls[1:] if "dinv." in url]

    # (d) revoked: the browser training with it is refused, and so is the task's page
    page = admin.page
    page.get_by_test_id("invitation-revoke").click()
    page.get_by_test_id("invitation-revoke-confirm").click()
    expect(row.get_by_test_id("invitation-status")).to_have_text("revoked")
    expect(row).to_contain_text("used")

    page = invited.page
    expect(status).to_have_text("You need a valid invitation", timeout=60_000)
    expect(page.get_by_test_id("training-message")).to_contain_text(REFUSED)
    screenshot(page, "invitation-revoked-training-phone")
    page.goto("/#/tasks/mnist")
    page.reload()
    closed = page.get_by_test_id("task-private")
    expect(closed.locator("h1")).to_have_text("This task is private")
    expect(page.get_by_test_id("invitation-refused")).to_have_text(REFUSED)
    expect(page.get_by_test_id("invitation-refused-detail")).to_contain_text("revoked")
    invited.fits()
    screenshot(page, "invitation-revoked-phone")
    page.goto("/")
    expect(page.get_by_test_id("private-server")).to_contain_text(REFUSED)
