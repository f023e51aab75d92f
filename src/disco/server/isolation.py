"""Cross-origin isolation of the web app's pages, so that the browser may train on several threads.

Browsers give a page ``SharedArrayBuffer``, hence multi-threaded WebAssembly (TF.js's wasm backend
with XNNPACK's thread pool), only when it is *cross-origin isolated*: its document is served with
``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``,
and it is a secure context (https, or http on localhost/127.0.0.1). The web app loads nothing but
its own files (scripts, styles, the wasm binaries, the tasks and models from ``/api``) and talks to
the server over WebSockets and to peers over WebRTC, which these headers do not touch; what they
forbid — embedding another site's images, frames or scripts without its consent, keeping a handle
on a cross-origin popup — it does not do.

Only the static files get the headers: ``/api`` (FastAPI's ``/api/docs`` page loads its scripts
from a CDN) and ``/metrics`` are left as they are. ``cross_origin_isolation = false`` in the server
configuration (``DISCO_CROSS_ORIGIN_ISOLATION=false``) turns them off, for a deployment that wraps
the app in a page of another origin; the app then trains on one thread.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ISOLATION_HEADERS", "CrossOriginIsolated"]

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    # the files may be loaded by the isolated pages (same origin: allowed anyway; explicit for
    # the pthread workers' scripts, which TF.js makes from blobs of the same page)
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Headers added to every HTTP response of the wrapped app (existing values are kept)."""


class CrossOriginIsolated:
    """ASGI wrapper: `app`'s HTTP responses carry `ISOLATION_HEADERS`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ISOLATION_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_isolated)
