"""A participant of a federated session: trains locally, sends its update, adopts the aggregate.

Life of the client (docs/protocol.md has the full state machine):
connecting → joined (Welcome: round r, global G_r) → training → sent (ModelUpdate r) →
waiting (UpdateAck, Status…) → RoundResult(r+1) → training … → after the last round: Leave.
A dropped connection is retried with back-off; on reconnect a pending update is sent again if the
server is still in its round, and a newer global model is adopted otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from disco.client.base import Client, ClientResult
from disco.data.dataset import Dataset
from disco.errors import ServerError, SessionError, UpdateRejected
from disco.privacy import privatize_update
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    ErrorMessage,
    Hello,
    Leave,
    Metrics,
    ModelUpdate,
    RoundResult,
    Status,
    UpdateAck,
    Welcome,
    decode,
    encode,
)
from disco.task import Task
from disco.training import EpochMetrics, EventCallback

__all__ = ["FederatedClient"]

log = logging.getLogger("disco.client")
StatusCallback = Callable[[Any], None]


def ws_url(server: str) -> str:
    """The WebSocket endpoint of a server given by its http(s) base URL."""
    base = server.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    return base if base.endswith("/ws") else base + "/ws"


class FederatedClient(Client):
    """Joins `task` on the server at `server_url` and trains with the others."""

    def __init__(
        self,
        task: Task,
        data: Dataset,
        server_url: str,
        *,
        seed: int = 0,
        name: str = "",
        callbacks: list[EventCallback] | None = None,
        on_message: StatusCallback | None = None,
        result_timeout_s: float = 3600.0,
        reconnect_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(task, data, seed=seed, name=name, callbacks=callbacks)
        self.url = ws_url(server_url)
        self.on_message = on_message
        self.result_timeout_s = result_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.bytes_up = 0
        self.bytes_down = 0
        self.client_id: str | None = None
        self._conn: ClientConnection | None = None
        self._rng = np.random.default_rng(seed)

    # -- transport ----------------------------------------------------------------------------
    async def _send(self, message: Any) -> None:
        frame = encode(message)
        if self._conn is None:
            raise SessionError("not connected")
        await self._conn.send(frame)
        self.bytes_up += len(frame)

    async def _recv(self, timeout: float) -> Any:
        if self._conn is None:
            raise SessionError("not connected")
        async with asyncio.timeout(timeout):  # (wait_for can swallow a cancellation on 3.11)
            frame = await self._conn.recv()
        if isinstance(frame, str):
            raise ServerError(f"server sent a text frame: {frame[:200]}")
        self.bytes_down += len(frame)
        message = decode(frame)
        if self.on_message is not None:
            self.on_message(message)
        if isinstance(message, ErrorMessage) and message.code in ("unknown_task", "version"):
            raise ServerError(f"server refused to join: {message.message}")
        return message

    async def _join(self) -> Welcome:
        """Connect (retrying with back-off until reconnect_timeout_s) and say hello."""
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay = 0.1
        while True:
            try:
                self._conn = await connect(self.url, max_size=DEFAULT_MAX_FRAME, open_timeout=10)
                await self._send(Hello(task_id=self.task.id, name=self.name, kind="python"))
                while True:
                    message = await self._recv(timeout=30)
                    if isinstance(message, Welcome):
                        self.client_id = message.client_id
                        message.weights.check_like(self.model.get_weights(), "global model")
                        return message
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                if isinstance(exc, InvalidURI) or time.monotonic() + delay > deadline:
                    raise ServerError(f"cannot reach the server at {self.url}: {exc}") from exc
                log.info("connection to %s failed (%s); retrying in %.1fs", self.url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _wait_result(self, pending: ModelUpdate) -> tuple[RoundResult | Welcome, bool]:
        """Wait for the round after `pending.round`; reconnect and resend if the link drops.

        Returns the message carrying the new global model and whether it is a fresh join.
        """
        deadline = time.monotonic() + self.result_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionError(
                    f"no round result after {self.result_timeout_s:.0f}s (round {pending.round})"
                )
            try:
                message = await self._recv(timeout=left)
            except TimeoutError:
                continue
            except ConnectionClosed:
                welcome = await self._join()
                if welcome.round > pending.round:
                    return welcome, True
                await self._send(pending.model_copy(update={"round": welcome.round}))
                continue
            if isinstance(message, RoundResult) and message.round > pending.round:
                return message, False
            if isinstance(message, ErrorMessage):
                if message.code in ("stale", "duplicate"):  # too late, or already counted
                    log.info("update for round %d: %s", pending.round, message.message)
                    continue
                raise UpdateRejected(f"[{message.code}] {message.message}")
            if isinstance(message, UpdateAck | Status):
                continue

    # -- the round loop -----------------------------------------------------------------------
    async def run(self, rounds: int | None = None) -> ClientResult:
        """Take part in `rounds` rounds (default: the task's), then leave."""
        start = time.perf_counter()
        rounds = self.task.training.rounds if rounds is None else rounds
        welcome = await self._join()
        weights, server_round = welcome.weights, welcome.round
        history: list[EpochMetrics] = []
        try:
            for _ in range(rounds):
                trained, epochs = await self.train(server_round, weights)
                history.extend(epochs)
                shared = trained
                privacy = self.task.training.privacy
                if privacy is not None:
                    shared = privatize_update(weights, trained, privacy, self._rng)
                    norm = (trained - weights).l2_norm()
                    log.info(
                        "round %d: update norm %.4g %s; noise std %.4g added",
                        server_round,
                        norm,
                        f"clipped to {privacy.clipping_radius:g}"
                        if norm > privacy.clipping_radius
                        else f"within the clipping radius {privacy.clipping_radius:g}",
                        privacy.noise_std,
                    )
                last = epochs[-1]
                metrics = Metrics(
                    train_loss=last.train_loss,
                    train_accuracy=last.train_accuracy,
                    val_loss=last.val_loss,
                    val_accuracy=last.val_accuracy,
                )
                update = ModelUpdate(
                    round=server_round,
                    # with privacy, nothing computed from the data leaves unprotected: no metrics,
                    # and every participant weighs the same (docs/privacy.md)
                    num_samples=len(self.train_data) if privacy is None else 1,
                    weights=shared,
                    metrics=metrics if privacy is None else Metrics(),
                )
                try:
                    await self._send(update)
                except ConnectionClosed:
                    pass  # _wait_result reconnects and resends
                result, _ = await self._wait_result(update)
                weights, server_round = result.weights, result.round
            await self._leave()
        finally:
            await self._close()
        self.model.set_weights(weights)
        return ClientResult(
            weights=weights,
            rounds=rounds,
            history=history,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            wall_s=time.perf_counter() - start,
            train_s=self._train_s,
            num_samples=len(self.train_data),
        )

    async def _leave(self) -> None:
        try:
            await self._send(Leave())
        except (ConnectionClosed, SessionError):
            pass

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
