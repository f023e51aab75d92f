"""The web app's pages are cross-origin isolated (COOP/COEP), so that browsers train on threads.

Only the static files get the headers: the REST API is left alone (FastAPI's /api/docs page loads
its scripts from a CDN, which `require-corp` would block), and a setting turns them off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from disco.errors import ConfigError
from disco.server.config import ServerConfig
from disco.server.isolation import ISOLATION_HEADERS


def _web_app(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<title>disco web</title>")
    (web / "assets" / "tfjs-backend-wasm-threaded-simd.wasm").write_bytes(b"\0asm\1\0\0\0")
    return web


def test_web_app_files_are_cross_origin_isolated(start_server: Any, tmp_path: Path) -> None:
    """Prepare a built web app; its page and its wasm file carry COOP/COEP, the API does not."""
    server = start_server(web_dir=_web_app(tmp_path))

    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get("/")
        wasm = http.get("/assets/tfjs-backend-wasm-threaded-simd.wasm")
        api = http.get("/api/health")

    assert page.status_code == wasm.status_code == api.status_code == 200
    for response in (page, wasm):
        for name, value in ISOLATION_HEADERS.items():
            assert response.headers[name] == value
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert not any(name in api.headers for name in ISOLATION_HEADERS)


def test_isolation_can_be_turned_off(start_server: Any, tmp_path: Path) -> None:
    """Prepare a server with cross_origin_isolation off; the page comes without the headers."""
    server = start_server(web_dir=_web_app(tmp_path), cross_origin_isolation=False)

    page = httpx.get(f"{server.url}/", timeout=10)

    assert page.status_code == 200 and "disco web" in page.text
    assert not any(name in page.headers for name in ISOLATION_HEADERS)


def test_isolation_setting_from_the_environment() -> None:
    """DISCO_CROSS_ORIGIN_ISOLATION turns it off; a value that is not a boolean is refused."""
    assert ServerConfig.load(env={}).cross_origin_isolation is True
    off = ServerConfig.load(env={"DISCO_CROSS_ORIGIN_ISOLATION": "false"})
    assert off.cross_origin_isolation is False
    with pytest.raises(ConfigError, match="DISCO_CROSS_ORIGIN_ISOLATION"):
        ServerConfig.load(env={"DISCO_CROSS_ORIGIN_ISOLATION": "maybe"})
