"""Client addresses behind a reverse proxy: forwarded headers are trusted only when configured."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from disco.errors import ConfigError
from disco.protocol import Hello, encode
from disco.server import ServerConfig
from disco.server.addresses import client_address, proxy_options

pytestmark = pytest.mark.timeout(30)

FORWARDED = "203.0.113.7"


def _refused_from(ws_url: str, caplog: pytest.LogCaptureFixture) -> str:
    """Connect from 127.0.0.1 claiming to forward for `FORWARDED`, be refused (unknown task),
    and return the refusal's log line."""

    async def body() -> None:
        headers = {"X-Forwarded-For": FORWARDED, "X-Forwarded-Proto": "https"}
        async with connect(ws_url, additional_headers=headers, open_timeout=5) as ws:
            await ws.send(encode(Hello(task_id="nope")))
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4404

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="disco.server"):
        asyncio.run(body())
    (line,) = [r.getMessage() for r in caplog.records if "refused a connection" in r.message]
    return line


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Unset: the TCP peer's address, whatever the headers say; set to 127.0.0.1: the
    forwarded one; set to another proxy: the TCP peer's again."""
    default = start_server()
    assert "from 127.0.0.1 (unknown_task)" in _refused_from(default.ws_url, caplog)

    trusted = start_server(forwarded_allow_ips="127.0.0.1")
    assert f"from {FORWARDED} (unknown_task)" in _refused_from(trusted.ws_url, caplog)

    other = start_server(forwarded_allow_ips="10.0.0.1,10.0.0.0/8")
    assert "from 127.0.0.1 (unknown_task)" in _refused_from(other.ws_url, caplog)


def test_proxy_settings_are_checked_and_off_by_default() -> None:
    """uvicorn gets proxy_headers=False without the setting; bad entries fail loudly."""
    assert proxy_options(None) == {"proxy_headers": False}
    assert proxy_options("*") == {"proxy_headers": True, "forwarded_allow_ips": "*"}
    config = ServerConfig.load(env={"DISCO_FORWARDED_ALLOW_IPS": "10.0.0.1, 10.0.0.2"})
    assert config.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    for bad in ("proxy.local", "10.0.0.1,", "10.0.0.300"):
        with pytest.raises(ConfigError, match="forwarded_allow_ips"):
            ServerConfig.load(env={}, forwarded_allow_ips=bad)


def test_client_address_reads_any_connection_or_scope() -> None:
    """The host of the scope's client; "unknown" without one."""
    from starlette.requests import Request

    scope = {"type": "http", "client": ("192.0.2.1", 4321), "headers": []}
    assert client_address(scope) == "192.0.2.1"
    assert client_address(Request(scope)) == "192.0.2.1"
    assert client_address({"type": "http", "client": None}) == "unknown"
