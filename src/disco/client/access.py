"""How a participant reaches a server: its address, its invitation, and whom it trusts for TLS.

Every connection a Python participant opens to a server — the task's REST routes, the model
download, the WebSocket — goes through one `ServerAccess`, so that a private instance
(invitations) and a server behind TLS with a private certificate authority need no special
case anywhere else. The invitation travels as ``Authorization: Bearer <token>`` on REST and as
`Hello.invitation` on the WebSocket; it is never put in an address (addresses end up in logs).
Mirrors the browser's `web/src/core/client/server.ts`.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from disco.errors import ConfigError, ServerError

if TYPE_CHECKING:
    import httpx

    from disco.transport import WebSocketChannel

__all__ = ["INVITATION_PATTERN", "ServerAccess", "parse_invitation", "refusal"]

INVITATION_PATTERN = re.compile(r"dinv\.[a-z2-7]{10}\.[A-Za-z0-9_-]{43}")
"""An invitation token: ``dinv.<id>.<secret>`` (the id is public, the secret is not)."""

_IN_LINK = re.compile(r"[?&#]invitation=(" + INVITATION_PATTERN.pattern + ")")


@dataclass(frozen=True)
class ServerAccess:
    """A server's base URL (``http(s)://host:port``), an invitation token for a private
    instance, and a CA bundle to verify an ``https`` server with (default: the system's)."""

    url: str
    invitation: str | None = field(default=None, repr=False)  # a credential: not in reprs
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        url = self.url.strip().rstrip("/")
        if url.endswith("/ws"):
            url = url[: -len("/ws")]
        if url.startswith("ws://") or url.startswith("wss://"):
            url = "http" + url[len("ws") :]
        if not (url.startswith("http://") or url.startswith("https://")):
            raise ConfigError(f"{self.url!r} is not a server address: use http(s)://host:port")
        object.__setattr__(self, "url", url)
        if self.invitation is not None:
            origin = _link_origin(self.invitation)
            if origin is not None and origin != _origin(url):
                raise ConfigError(
                    f"this invitation link is for {origin}, not {_origin(url)}: give the server "
                    "it came from (an invitation is sent only to the server that made it)"
                )
            object.__setattr__(self, "invitation", parse_invitation(self.invitation))
        if self.ca_file is not None:
            ca = Path(self.ca_file)
            if not ca.is_file():
                raise ConfigError(f"CA file {ca} does not exist")
            object.__setattr__(self, "ca_file", ca)

    @classmethod
    def of(cls, server: str | ServerAccess) -> ServerAccess:
        """`server` as a `ServerAccess` (a plain URL: no invitation, the system's CAs)."""
        return server if isinstance(server, ServerAccess) else cls(server)

    @classmethod
    def from_env(
        cls, url: str, invitation: str | None = None, ca_file: str | Path | None = None
    ) -> ServerAccess:
        """As given, else ``DISCO_INVITATION`` and ``DISCO_CA_FILE`` from the environment."""
        invitation = invitation or os.environ.get("DISCO_INVITATION") or None
        ca = ca_file or os.environ.get("DISCO_CA_FILE") or None
        return cls(url, invitation, Path(ca) if ca else None)

    @property
    def ws_url(self) -> str:
        """The federated WebSocket endpoint (``ws://`` or ``wss://``)."""
        return "ws" + self.url[len("http") :] + "/ws"

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")

    @property
    def headers(self) -> dict[str, str]:
        """Headers for the REST routes (the invitation, when there is one)."""
        return {"Authorization": f"Bearer {self.invitation}"} if self.invitation else {}

    def __getstate__(self) -> dict[str, Any]:
        """What a copy in another process needs: not the SSL context (made again there)."""
        return {k: v for k, v in self.__dict__.items() if k != "ssl_context"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """How an ``https``/``wss`` connection verifies the server; None for plain http."""
        if not self.tls:
            return None
        if self.ca_file is None:
            return ssl.create_default_context()
        try:  # that bundle instead of the system's authorities, as curl's --cacert
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"CA file {self.ca_file} cannot be read: {exc}") from exc

    def _http_options(self, timeout: float) -> dict[str, Any]:
        options: dict[str, Any] = {"base_url": self.url, "headers": self.headers}
        options["timeout"] = timeout
        if self.ssl_context is not None:
            options["verify"] = self.ssl_context
        return options

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """A blocking HTTP client for this server (paths relative to its base URL)."""
        import httpx

        return httpx.Client(**self._http_options(timeout))

    def async_http(self, timeout: float = 30.0) -> httpx.AsyncClient:
        """An asyncio HTTP client for this server (paths relative to its base URL)."""
        import httpx

        return httpx.AsyncClient(**self._http_options(timeout))

    async def connect(self, *, max_frame: int, timeout: float) -> WebSocketChannel:
        """Open the WebSocket to this server (verified as `ssl_context` says); a `ServerError`
        at once when the server's certificate is not trusted (trying again cannot help)."""
        from disco.transport import WebSocketChannel

        try:
            return await WebSocketChannel.connect(
                self.ws_url, max_frame=max_frame, timeout=timeout, ssl=self.ssl_context
            )
        except ssl.SSLCertVerificationError as exc:
            raise self.unreachable(exc) from exc

    def unreachable(self, exc: BaseException) -> ServerError:
        """Why this server could not be reached, in words: its certificate is not trusted (and
        what to do), a plain ``http`` address of a server that answers only TLS, or `exc`."""
        untrusted = _untrusted_certificate(exc)
        if untrusted is not None:
            reason = (untrusted.verify_message or str(untrusted)).rstrip(".")
            if untrusted.verify_code in _NAME_MISMATCH:
                return ServerError(
                    f"the server's certificate is not for this address ({reason}): use the "
                    f"address it was made for instead of {self.url} (often its DNS name)"
                )
            if self.ca_file is None:
                return ServerError(
                    f"the server's certificate is not trusted ({reason}): {self.url} does not "
                    "prove who it is with a certificate this machine trusts; if it uses its own "
                    "certificate authority, give that authority's certificate with --ca-file PEM "
                    "(or DISCO_CA_FILE; in Python, ServerAccess(url, ca_file=...))"
                )
            return ServerError(
                f"the server's certificate is not trusted ({reason}): {self.url} does not prove "
                f"who it is with a certificate signed by the authorities in {self.ca_file}; check "
                "that this --ca-file holds the certificate authority that signed the server's "
                "certificate, and that the address is the one the certificate names"
            )
        hint = ""
        if not self.tls and _no_http_answer(exc):
            hint = (
                "; nothing a plain http client can read came back: if the server serves TLS, "
                "use its https:// address"
            )
        why = str(exc).rstrip(".") or type(exc).__name__
        return ServerError(f"cannot reach the server at {self.url}: {why}{hint}")


_NAME_MISMATCH = (62, 64)
"""OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH."""


def _untrusted_certificate(exc: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind `exc` (itself, or its cause), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _no_http_answer(exc: BaseException) -> bool:
    """Whether the server closed the connection without an HTTP answer, as a TLS-only server
    does when a plain http/ws client talks to it."""
    import httpx
    from websockets.exceptions import InvalidMessage

    return isinstance(exc, httpx.RemoteProtocolError | InvalidMessage)


def parse_invitation(text: str) -> str:
    """The invitation token in `text`: the token itself or a join link holding it."""
    text = text.strip()
    if INVITATION_PATTERN.fullmatch(text):
        return text
    found = _IN_LINK.search(text)
    if found is None:
        raise ConfigError(
            "that is not an invitation: give the token (dinv.…) or the join link that holds it"
        )
    return found.group(1)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of `url`, the default port left out."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{host}{port}"


def _link_origin(text: str) -> str | None:
    """The origin of a join link (None: `text` is a bare token or not a link)."""
    text = text.strip()
    if not (text.startswith("http://") or text.startswith("https://")):
        return None
    try:
        return _origin(text.split("#", 1)[0])
    except ValueError:
        return None


def refusal(response: httpx.Response) -> str:
    """What a server's error answer says, in its words (``{"error": ...}``) when it has them."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{body['error']} (HTTP {response.status_code})"
    return f"HTTP {response.status_code} {response.text[:200]}".rstrip()
