"""The disco server: REST + WebSocket federated rounds + persistence, and how to run it.

``run_server(config)`` serves in the foreground (``disco serve``). ``start_in_background(config)``
serves from a thread on a loopback port and returns a `ServerHandle` (``.url``, ``.ws_url``,
``.port``, ``.stop()``) for tests, simulations and benchmarks.

Either way, stopping (SIGTERM, Ctrl-C, ``.stop()``) first drains the app (`Runtime.drain`: a round
whose close has started is finished and saved, and every participant is told the server is
restarting), then lets uvicorn close the connections with 1012 and shut down.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Any

import uvicorn

from disco.errors import ServerError
from disco.server.addresses import proxy_options
from disco.server.app import create_app
from disco.server.config import ServerConfig
from disco.server.logs import setup_logging
from disco.server.session import FederatedSession, Participant
from disco.server.store import RoundRecord, Store
from disco.server.tls import scheme, tls_options

__all__ = [
    "FederatedSession",
    "Participant",
    "RoundRecord",
    "ServerConfig",
    "ServerHandle",
    "Store",
    "create_app",
    "run_server",
    "start_in_background",
]

log = logging.getLogger("disco.server")


def _uvicorn_config(config: ServerConfig, **options: Any) -> uvicorn.Config:
    """uvicorn settings for `config`; frames up to 1.25 x max_frame_bytes reach the app.

    The app answers frames above ``max_frame_bytes`` with a ``too_large`` error; frames beyond
    the transport limit are cut by uvicorn with close code 1009.
    """
    return uvicorn.Config(
        create_app(config),
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
        ws_max_size=config.max_frame_bytes + config.max_frame_bytes // 4,
        ws_per_message_deflate=False,  # float32 tensors barely compress; deflate costs CPU
        log_level=config.log_level,
        timeout_graceful_shutdown=5,
        lifespan="on",
        **proxy_options(config.forwarded_allow_ips),
        **tls_options(config),  # https/wss when the config has a certificate (checked here)
        **options,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, draining the app before uvicorn's own shutdown closes the sockets."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting connections while draining
            server.close()
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)
        if runtime is not None:
            try:
                await runtime.drain()
            except Exception:  # never keep the server from shutting down
                log.exception("draining the server failed; shutting down anyway")
        await super().shutdown(sockets)


def run_server(config: ServerConfig) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); returns after a clean shutdown."""
    server = _Server(_uvicorn_config(config, **setup_logging(config)))
    main = threading.current_thread() is threading.main_thread()

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True  # before uvicorn handles signals (startup): stop once up

    # uvicorn raises the signal that stopped it again once done: after SIGTERM, which it has
    # handled (drained, saved, closed), that must not kill the process, so it lands here
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        with suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after a clean shutdown
            server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class ServerHandle:
    """A server running in a background thread; use as a context manager or call `stop`."""

    def __init__(self, config: ServerConfig, sock: socket.socket):
        self.config = config
        self.host, self.port = sock.getsockname()[:2]
        self._server = _Server(_uvicorn_config(config, log_config=None, access_log=False))
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"disco-server-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` when serving TLS)."""
        return f"{scheme(self.config)}://{self._netloc}"

    @property
    def ws_url(self) -> str:
        """URL of the federated WebSocket endpoint (``wss://`` when serving TLS)."""
        return f"{scheme(self.config).replace('http', 'ws')}://{self._netloc}/ws"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def _run(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on startup failure included
            self._error = exc
        finally:
            sock.close()

    def _start(self, timeout: float) -> None:
        self._thread.start()
        end = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                self.stop()
                why = repr(self._error) if self._error else f"not ready after {timeout} s"
                raise ServerError(f"the disco server failed to start ({why}); see the log")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (connected clients get close code 1012) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5.0)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_in_background(config: ServerConfig, timeout: float = 30.0) -> ServerHandle:
    """Start a server in a thread (``port=0`` picks a free port) and wait until it serves."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
    try:
        handle = ServerHandle(config, sock)
    except BaseException:  # e.g. a TLS certificate that cannot be used
        sock.close()
        raise
    handle._start(timeout)
    log.info("disco server listening on %s", handle.url)
    return handle
