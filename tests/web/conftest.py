"""Browser end-to-end fixtures: a real disco server serving the built web app, headless Chromium.

- `server`: a `disco` server on a free loopback port with the built-in tasks and an admin token,
  serving the packaged build of web/ (``cd web && npm run build``, or ``make web``).
- `browser`: one Chromium (/usr/bin/chromium, or DISCO_CHROMIUM) for the whole session.
- `phone` / `desktop` / `any_page`: a fresh page at 360x780 (touch, mobile) or 1280x800.
  Uncaught page errors fail the test.
- `page_log(page)`: every request body and WebSocket frame of such a page (privacy checks).
- `screenshot(page, name)`: a full-page PNG in tests/output/screenshots/ (git-ignored).

What the browser tests need is never skipped over: without playwright the whole folder fails to
collect, and without Chromium or the built web app every browser test fails, each time with the
command that installs what is missing (`browser_problems`).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from disco.data import write_samples
from disco.server import ServerConfig, ServerHandle, start_in_background

ROOT = Path(__file__).resolve().parents[2]
# the built web app; DISCO_WEB_DIR points the tests at another build (`vite build --outDir DIR`)
STATIC = Path(os.environ.get("DISCO_WEB_DIR", ROOT / "src" / "disco" / "server" / "static"))
SCREENSHOTS = ROOT / "tests" / "output" / "screenshots"
CHROMIUM = os.environ.get("DISCO_CHROMIUM", "/usr/bin/chromium")
ADMIN_TOKEN = "web-test-admin-token"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",  # WebRTC between peers on this machine …
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # … with their real loopback address
]
PHONE = {"viewport": {"width": 360, "height": 780}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}

INSTALL_CHROMIUM = (
    "install it with `apt-get install -y chromium` (or run .ci/run, which installs what a fresh "
    "machine lacks), or point DISCO_CHROMIUM at a Chromium binary"
)
INSTALL_PLAYWRIGHT = "run `make setup`, which installs the dev extras (`pip install -e '.[dev]'`)"
NOT_BUILT = (
    f"the web app is not built ({STATIC / 'index.html'} is missing): run `make web` "
    "(or `cd web && npm run build`)"
)


def browser_problems(playwright_error: str | None = None) -> list[str]:
    """What the browser tests lack, each with the command that installs it (empty: nothing)."""
    problems = []
    if playwright_error is not None:
        problems.append(f"playwright is not installed ({playwright_error}): {INSTALL_PLAYWRIGHT}")
    if not Path(CHROMIUM).is_file():
        problems.append(f"Chromium not found at {CHROMIUM}: {INSTALL_CHROMIUM}")
    if not (STATIC / "index.html").is_file():
        problems.append(NOT_BUILT)
    return problems


try:
    import playwright.sync_api as playwright_api
except ImportError as exc:  # fail the folder, with the fix, rather than skip it
    _playwright_error: str | None = str(exc)
else:
    _playwright_error = None
if _playwright_error is not None:
    pytest.fail("; ".join(browser_problems(_playwright_error)), pytrace=False)


@dataclass
class PageLog:
    """What a page sent and received, and what went wrong in it."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # method, url, body
    frames_sent: list[bytes] = field(default_factory=list)
    frames_received: list[bytes] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def bytes_sent(self) -> bytes:
        """Every request body and WebSocket frame the page sent, concatenated."""
        return b"".join([b for _, _, b in self.requests] + self.frames_sent)


_LOGS: dict[int, PageLog] = {}


def _as_bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def _record(page: Any) -> PageLog:
    log = PageLog()
    _LOGS[id(page)] = log

    def on_request(request: Any) -> None:
        body = request.post_data_buffer or b""
        log.requests.append((request.method, request.url, body))

    def on_websocket(ws: Any) -> None:
        ws.on("framesent", lambda payload: log.frames_sent.append(_as_bytes(payload)))
        ws.on("framereceived", lambda payload: log.frames_received.append(_as_bytes(payload)))

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            log.console_errors.append(msg.text)

    page.on("request", on_request)
    page.on("websocket", on_websocket)
    page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
    page.on("console", on_console)
    return log


def take_screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as tests/output/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """`screenshot(page, name)`: a full-page PNG in tests/output/screenshots/."""
    return take_screenshot


@pytest.fixture
def page_log() -> Callable[[Any], PageLog]:
    """`page_log(page)`: requests, WebSocket frames and errors of a `phone`/`desktop` page."""
    return lambda page: _LOGS[id(page)]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A disco server with the built-in tasks, serving the built web app."""
    if not (STATIC / "index.html").is_file():
        pytest.fail(NOT_BUILT, pytrace=False)
    config = ServerConfig(
        port=0,
        data_dir=tmp_path_factory.mktemp("disco-web-server"),
        admin_token=ADMIN_TOKEN,
        seed_catalog=True,
        web_dir=STATIC,
    )
    with start_in_background(config) as handle:
        yield handle


@pytest.fixture(scope="session")
def web_build() -> Path:
    """The folder of the built web app under test (for servers a test starts itself)."""
    return STATIC


@pytest.fixture(scope="session")
def admin_token() -> str:
    """The `server`'s admin token (task creation)."""
    return ADMIN_TOKEN


@pytest.fixture(scope="session")
def publish(server: ServerHandle, admin_token: str) -> Callable[[dict[str, Any]], str]:
    """`publish(doc)`: create the task `doc` on `server` (admin token); returns its id."""

    def create(doc: dict[str, Any]) -> str:
        req = urllib.request.Request(
            f"{server.url}/api/tasks",
            data=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as res:
            assert res.status == 201, res.status
        return str(doc["id"])

    return create


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (fails, naming the fix, when it cannot start)."""
    problems = browser_problems()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def launch_chromium(browser: Any) -> Callable[[list[str]], Any]:
    """`launch_chromium(extra_args)`: another headless Chromium like `browser`, started with
    `extra_args` too (the caller closes it)."""
    return lambda extra: browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra]
    )


def _page(browser: Any, server: ServerHandle, options: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, accept_downloads=True, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    log = _record(page)
    try:
        yield page
    finally:
        context.close()
        _LOGS.pop(id(page), None)
    assert not log.page_errors, f"uncaught errors in the page: {log.page_errors}"


@pytest.fixture
def phone(browser: Any, server: ServerHandle) -> Iterator[Any]:
    """A fresh page at phone size (360x780, touch)."""
    yield from _page(browser, server, PHONE)


@pytest.fixture
def desktop(browser: Any, server: ServerHandle) -> Iterator[Any]:
    """A fresh page at desktop size (1280x800)."""
    yield from _page(browser, server, DESKTOP)


@pytest.fixture(params=["phone", "desktop"])
def any_page(request: pytest.FixtureRequest) -> Any:
    """The test once at phone size and once at desktop size."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def breast_cancer_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real breast-cancer CSV files: client_1/data.csv, client_2/data.csv, test/data.csv."""
    out = tmp_path_factory.mktemp("breast-cancer")
    write_samples("breast_cancer", 2, out)
    return out


@pytest.fixture(scope="session")
def mnist_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST digits as PNG files, one folder per label: client_1..3/, test/."""
    out = tmp_path_factory.mktemp("mnist")
    write_samples("mnist", 3, out)
    return out
