"""The web app over https: a browser that trusts the server's certificate trains over wss.

The server has a certificate from a test CA (`tls_ca`). Chromium is told to trust that one
certificate (``--ignore-certificate-errors-spki-list`` with its public key's hash) — not to ignore
certificate errors — as a person's browser trusts a server whose CA is installed. A browser
without that flag refuses the page, which shows the trust is what makes it work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from disco import catalog
from disco.client import ServerAccess
from disco.server import ServerConfig, start_in_background

playwright_api = pytest.importorskip("playwright.sync_api")
from web_helpers import connect_digits, digits_subset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test CA
from tls_ca import make_authority  # noqa: E402

expect = playwright_api.expect
DISCO = Path(sys.executable).with_name("disco")
TOKEN = "tls-web-admin-token"


def test_browser_trusting_the_certificate_trains_with_python_over_wss(
    browser: Any,
    launch_chromium: Any,
    web_build: Path,
    mnist_files: Path,
    tmp_path: Path,
    screenshot: Any,
) -> None:
    authority = make_authority(tmp_path / "ca")
    config = ServerConfig(
        port=0,
        data_dir=tmp_path / "server",
        admin_token=TOKEN,
        seed_catalog=False,
        web_dir=web_build,
        tls_cert=authority.cert_file,
        tls_key=authority.key_file,
    )
    with start_in_background(config) as server:
        assert server.url.startswith("https://127.0.0.1:")
        access = ServerAccess(server.url, ca_file=authority.ca_file)
        doc = catalog.get("mnist").model_dump(mode="json")
        doc["id"], doc["display"]["title"] = "mnist_tls", "Digits over TLS"
        doc["training"].update(epochs=1, epochs_per_round=1, min_participants=2)
        with access.http(timeout=30) as http:
            made = http.post("/api/tasks", json=doc, headers={"Authorization": f"Bearer {TOKEN}"})
        assert made.status_code == 201, made.text

        # a browser that does not trust the certificate does not open the page at all
        untrusting = browser.new_context()
        with pytest.raises(playwright_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
            untrusting.new_page().goto(f"{server.url}/")
        untrusting.close()

        trust = f"--ignore-certificate-errors-spki-list={authority.spki_sha256}"
        trusting = launch_chromium([trust])
        python = None
        try:
            context = trusting.new_context(
                base_url=server.url, viewport={"width": 1280, "height": 800}
            )
            context.set_default_timeout(15_000)
            page = context.new_page()
            sockets: list[str] = []
            errors: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto("/#/tasks/mnist_tls/connect")
            assert page.evaluate("location.protocol") == "https:"
            connect_digits(page, mnist_files / "client_3", 30)
            page.get_by_test_id("step-next").click()
            expect(page.get_by_label("With others")).to_be_checked()
            page.get_by_test_id("start-training").click()
            status = page.get_by_test_id("training-status")
            expect(status).to_have_attribute(
                "data-phase", "waiting_for_participants", timeout=60_000
            )

            data = digits_subset(mnist_files / "client_1", tmp_path / "python", 30)
            env = {k: v for k, v in os.environ.items() if k != "DISCO_CA_FILE"}
            python = subprocess.Popen(
                [str(DISCO), "train", "--task", "mnist_tls", "--data", str(data),
                 "--server", server.url, "--ca-file", str(authority.ca_file),
                 "--name", "python-tls", "--max-wait", "120", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            expect(status).to_have_attribute("data-phase", "done", timeout=150_000)
            out, err = python.communicate(timeout=60)
            assert python.returncode == 0, err

            expect(page.get_by_test_id("counter-round")).to_have_text("1 / 1")
            log = page.get_by_test_id("training-log")
            expect(log).to_contain_text("a round closed with 2 contributor(s)")
            expect(page.get_by_test_id("shared-rounds")).to_contain_text(
                "The shared model has been trained for 1 round"
            )
            screenshot(page, "train-tls-done-desktop")

            # the page's WebSocket was the server's wss:// endpoint, and only that
            assert sockets and set(sockets) == {server.ws_url}, sockets
            assert re.fullmatch(r"wss://127\.0\.0\.1:\d+/ws", server.ws_url)
            assert not errors, errors
            with access.http(timeout=30) as http:
                model = http.get("/api/tasks/mnist_tls/model")
                history = http.get("/api/tasks/mnist_tls/rounds").json()
            assert (
                json.loads(out.strip().splitlines()[-1])["digest"]
                == (model.headers["X-Disco-Digest"])
            )
            assert sorted(p["kind"] for p in history[0]["participants"]) == ["browser", "python"]
        finally:
            if python is not None:
                python.kill()
                python.wait(10)
            trusting.close()
