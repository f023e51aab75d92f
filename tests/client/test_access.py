"""`ServerAccess`: one way to reach a server, with its invitation and its certificate authority."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from disco.client import ServerAccess
from disco.client.access import parse_invitation
from disco.errors import ConfigError

TOKEN = "dinv.abcdefgh23.Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gHj1k2L3m4N5o"


@pytest.mark.parametrize(
    ("given", "url", "ws"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws"),
        ("https://disco.example.org/", "https://disco.example.org", "wss://disco.example.org/ws"),
        ("ws://127.0.0.1:9/ws", "http://127.0.0.1:9", "ws://127.0.0.1:9/ws"),
        ("wss://h:1/ws", "https://h:1", "wss://h:1/ws"),
    ],
)
def test_addresses(given: str, url: str, ws: str) -> None:
    access = ServerAccess(given)
    assert (access.url, access.ws_url) == (url, ws)
    assert access.tls == url.startswith("https")
    assert (access.ssl_context is not None) == access.tls


def test_not_an_address() -> None:
    with pytest.raises(ConfigError, match="not a server address"):
        ServerAccess("127.0.0.1:8000")


@pytest.mark.parametrize(
    "text",
    [
        TOKEN,
        f"  {TOKEN}\n",
        f"https://disco.example.org/#/join/mnist?invitation={TOKEN}",
        f"http://127.0.0.1:8000/#/join/x-y?a=1&invitation={TOKEN}",
    ],
)
def test_an_invitation_is_the_token_or_a_link_holding_it(text: str) -> None:
    assert parse_invitation(text) == TOKEN
    server = text.strip().split("/#")[0] if "://" in text else "http://h:1"
    access = ServerAccess(server, invitation=text)
    assert access.headers == {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("text", ["", "dinv.short.x", "https://h/#/join/m", TOKEN[:-1]])
def test_not_an_invitation(text: str) -> None:
    with pytest.raises(ConfigError, match="not an invitation"):
        parse_invitation(text)


def test_environment_fills_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISCO_INVITATION", TOKEN)
    monkeypatch.setenv("DISCO_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="does not exist"):
        ServerAccess.from_env("https://h")
    monkeypatch.delenv("DISCO_CA_FILE")
    assert ServerAccess.from_env("https://h").invitation == TOKEN
    assert ServerAccess.from_env("https://h", "").invitation == TOKEN


def test_an_invitation_link_goes_only_to_the_server_that_made_it() -> None:
    link = f"https://disco.example.org/#/join/mnist?invitation={TOKEN}"
    assert ServerAccess("https://disco.example.org:443/", invitation=link).invitation == TOKEN
    with pytest.raises(
        ConfigError, match=re.escape("is for https://disco.example.org, not https://evil")
    ):
        ServerAccess("https://evil.example.net", invitation=link)
    with pytest.raises(ConfigError, match=re.escape("not http://disco.example.org")):
        ServerAccess("http://disco.example.org", invitation=link)
    assert ServerAccess("https://other.example.net", invitation=TOKEN).invitation == TOKEN


def test_the_invitation_stays_out_of_reprs() -> None:
    assert TOKEN not in repr(ServerAccess("http://h:1", invitation=TOKEN))
