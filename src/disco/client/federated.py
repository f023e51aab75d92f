"""A participant of a federated session: trains locally, sends its update, adopts the aggregate.

Life of the client (docs/protocol.md has the full state machine):
connecting → joined (Welcome: round r, global G_r) → training → sent (ModelUpdate r) →
waiting (UpdateAck, Status…) → RoundResult(r+1) → training … → after the last round: Leave.

* A dropped connection is retried with back-off; on reconnect a pending update is sent again if
  the server is still in its round, and a newer global model is adopted otherwise (a server that
  shuts down says so first, `ErrorMessage` ``restarting``, then closes with 1012). Every `Hello`
  carries the same ``participant_key`` (a random secret made once per client), so the server
  knows a reconnecting participant as the one it was: a resent update counts once, and
  aggregators that remember participants (centered clipping's momentum) keep its history.
* Messages are read while training: an update whose round closed meanwhile is dropped, and the
  participant continues from the newer model (as the browser does).
* After its update, a participant waits at most ``wait_for_others_s`` (the task's setting) for
  the round to close, logging every 30 s how many participants are missing; then it stops with
  `WaitExpired`, which carries the model it keeps.

Numbering: "your round k of N" counts this participant's rounds from 1; the server's round r
(0-based on the wire) is how many rounds the shared model has been trained for.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from websockets.exceptions import InvalidHandshake, InvalidURI

from disco.client.access import ServerAccess
from disco.client.base import Client, ClientResult
from disco.client.link import Link, LinkClosed, Traffic
from disco.client.secure import secure_round
from disco.client.update import PreparedUpdate, prepare_update
from disco.data.dataset import Dataset
from disco.data.text import TextWindows
from disco.errors import ServerError, SessionError, UpdateRejected, WaitExpired
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    ClientMessage,
    ErrorMessage,
    Hello,
    Leave,
    ModelUpdate,
    RoundResult,
    ServerMessage,
    Status,
    UpdateAck,
    Welcome,
)
from disco.task import Task
from disco.training import EpochMetrics, EventCallback
from disco.weights import Weights

__all__ = ["FederatedClient"]

log = logging.getLogger("disco.client")
StatusCallback = Callable[[Any], None]
WAIT_LOG_S = 30.0
"""While waiting for others, a log line this often (seconds)."""


def _model_of(message: Welcome | RoundResult) -> Weights:
    """The global model a message carries (a federated `Welcome` always has one)."""
    if message.weights is None:
        raise ServerError(
            f"the server sent no model for task {message.task_id!r}"
            if isinstance(message, Welcome)
            else "the server sent a round result without a model"
        )
    return message.weights


def _rounds(n: int) -> str:
    return f"{n} round{'' if n == 1 else 's'}"


def _more(n: int) -> str:
    return f"{n} more participant{'' if n == 1 else 's'}"


class FederatedClient(Client):
    """Joins `task` on `server` (a URL or a `ServerAccess`) and trains with the others."""

    def __init__(
        self,
        task: Task,
        data: Dataset | TextWindows,
        server: str | ServerAccess,
        *,
        seed: int = 0,
        name: str = "",
        callbacks: list[EventCallback] | None = None,
        on_message: StatusCallback | None = None,
        wait_for_others_s: float | None = None,
        reconnect_timeout_s: float = 60.0,
        noise: np.random.Generator | None = None,
    ) -> None:
        super().__init__(task, data, seed=seed, name=name, callbacks=callbacks)
        self.access = ServerAccess.of(server)
        self.url = self.access.ws_url
        self.on_message = on_message
        self.wait_for_others_s = (
            task.training.wait_for_others_s if wait_for_others_s is None else wait_for_others_s
        )
        if not (self.wait_for_others_s > 0 and math.isfinite(self.wait_for_others_s)):
            raise SessionError(
                f"wait_for_others_s must be a finite number of seconds > 0, "
                f"got {self.wait_for_others_s}"
            )
        self.reconnect_timeout_s = reconnect_timeout_s
        self.client_id: str | None = None
        """This participant's identity in the session (from the last Welcome)."""
        self._key = secrets.token_urlsafe(24)  # participant_key: the same in every Hello
        self.status: Status | None = None
        """The session as the server last described it (participants, reported, state)."""
        self._traffic = Traffic()
        self._link: Link | None = None
        self._global: tuple[int, Weights] | None = None  # the last shared model and its round
        self._trained: Weights | None = None  # the last model trained here
        self._restarts = 0  # restart notices seen (`restarting`, close 1012; one restart may
        # count twice): a secure round's state did not survive them (disco.client.secure)
        self.rounds_done = 0
        """Rounds this participant completed in the current `run`."""
        # privacy noise must be unpredictable: fresh OS entropy unless a generator is given
        # (simulations pass a seeded one to be reproducible)
        self._noise = noise if noise is not None else np.random.default_rng()

    @property
    def bytes_up(self) -> int:
        """Bytes sent so far (frames)."""
        return self._traffic.bytes_up

    @property
    def bytes_down(self) -> int:
        """Bytes received so far (frames)."""
        return self._traffic.bytes_down

    # -- transport ----------------------------------------------------------------------------
    def _observe(self, message: ServerMessage) -> None:
        """Track the session's counters from every message as it arrives, then pass it on."""
        if isinstance(message, ErrorMessage) and message.code == "restarting":
            self._restarts += 1
        if isinstance(message, RoundResult) and self.status is not None:
            self.status = self.status.model_copy(update={"round": message.round, "reported": 0})
        if isinstance(message, Welcome | Status):
            reported = message.reported if isinstance(message, Status) else 0
            self.status = Status(
                round=message.round,
                participants=message.participants,
                min_participants=message.min_participants,
                reported=reported,
                state=message.state,
            )
        elif isinstance(message, UpdateAck) and self.status is not None:
            self.status = self.status.model_copy(
                update={"reported": message.reported, "participants": message.participants}
            )
        if self.on_message is not None:
            self.on_message(message)

    @property
    def link(self) -> Link:
        if self._link is None:
            raise SessionError("not connected")
        return self._link

    async def _next(self, timeout: float) -> ServerMessage:
        message = await self.link.next(timeout)
        if isinstance(message, ErrorMessage) and message.code in ("unknown_task", "version"):
            raise ServerError(f"server refused to join: {message.message}")
        return message

    async def _join(self) -> Welcome:
        """Connect (retrying with back-off until reconnect_timeout_s) and say hello."""
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay = 0.1
        while True:
            try:
                if self._link is not None:
                    await self._link.close()
                channel = await self.access.connect(max_frame=DEFAULT_MAX_FRAME, timeout=10)
                self._link = Link(channel, self._traffic, self._observe)
                secure = self.task.training.secure_aggregation is not None
                hello = Hello(
                    task_id=self.task.id,
                    name=self.name,
                    kind="python",
                    participant_key=self._key,
                    capabilities=["secure_aggregation"] if secure else [],
                    invitation=self.access.invitation,
                )
                await self._link.send(hello)
                while True:
                    message = await self._next(timeout=30)
                    if isinstance(message, ErrorMessage) and message.code == "restarting":
                        raise LinkClosed(message.message, 1012)  # back soon: try again
                    if isinstance(message, ErrorMessage) and message.code == "limited":
                        raise LinkClosed(message.message, 4429)  # later may do: retry
                    if isinstance(message, ErrorMessage):
                        raise ServerError(
                            f"server refused to join: [{message.code}] {message.message}"
                        )
                    if isinstance(message, Welcome):
                        if secure and "secure_aggregation" not in message.capabilities:
                            raise ServerError(
                                f"task {self.task.id!r} uses secure aggregation, but the server "
                                "runs it without: nothing was sent; check the server's task"
                            )
                        self.client_id = message.client_id
                        model = _model_of(message)
                        model.check_like(self.model.get_weights(), "global model")
                        return message
            except InvalidURI as exc:
                raise ServerError(f"{self.url} is not a server address: {exc}") from exc
            except (OSError, LinkClosed, InvalidHandshake, TimeoutError) as exc:
                if isinstance(exc, LinkClosed) and exc.fatal is not None:
                    raise ServerError(f"{exc.fatal} ({exc})") from exc
                if isinstance(exc, LinkClosed) and exc.code == 1012:
                    self._restarts += 1
                if time.monotonic() + delay > deadline:
                    raise self.access.unreachable(exc) from exc
                log.info("connection to %s failed (%s); retrying in %.1fs", self.url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _send(self, message: ClientMessage) -> None:
        try:
            await self.link.send(message)
        except LinkClosed:
            pass  # waiting notices the closed link, reconnects and resends

    # -- waiting for the round to close -------------------------------------------------------
    def _missing(self) -> str:
        """Who the round waits for, in words, from the last status."""
        s = self.status
        if s is None:
            return "waiting for the server"
        if s.participants < s.min_participants:
            need = s.min_participants - s.participants
            return f"{_more(need)} needed ({s.participants} of {s.min_participants} connected)"
        if s.reported < s.min_participants:
            return (
                f"{s.reported} of {s.min_participants} required updates in "
                f"({s.participants} connected)"
            )
        in_ = f"{s.reported} updates in ({s.participants} connected)"
        return f"{in_}; the round closes at its deadline"

    async def _wait_result(
        self, pending: ModelUpdate, k: int, n: int, kept: Callable[[], WaitExpired]
    ) -> RoundResult | Welcome:
        """Wait for the round after `pending.round`; reconnect and resend if the link drops.

        Gives up with `kept()` (a `WaitExpired`) after `wait_for_others_s` without a new round.
        """
        started = time.monotonic()
        give_up = started + self.wait_for_others_s
        next_log = started + WAIT_LOG_S
        log.info(
            "your round %d of %d: update sent; waiting for others: %s; stopping in %.0f s",
            *(k, n, self._missing(), self.wait_for_others_s),
        )
        while True:
            now = time.monotonic()
            if now >= give_up:
                newer = self._newer_result(pending.round)  # arrived just in time
                if newer is not None:
                    return newer
                raise kept()
            if now >= next_log:
                log.info(
                    "your round %d of %d: waiting for others: %s; stopping in %.0f s",
                    *(k, n, self._missing(), give_up - now),
                )
                next_log = now + WAIT_LOG_S
            try:
                message = await self._next(timeout=min(give_up, next_log) - now)
            except TimeoutError:
                continue
            except LinkClosed as exc:
                if exc.fatal is not None:
                    raise UpdateRejected(f"{exc.fatal} ({exc})") from exc
                log.warning("connection lost (%s); reconnecting", exc)
                welcome = await self._join()
                if welcome.round > pending.round:
                    log.info("round closed meanwhile; continuing from the newer shared model")
                    return welcome
                log.info("your round %d of %d: sending the update again", k, n)
                pending = pending.model_copy(update={"round": welcome.round})
                await self._send(pending)
                continue
            if isinstance(message, RoundResult) and message.round > pending.round:
                return message
            if isinstance(message, ErrorMessage):
                if message.code in ("stale", "duplicate"):  # too late, or already counted
                    log.info("your round %d of %d: %s", k, n, message.message)
                    continue
                if message.code == "restarting":  # the link closes next: reconnect, resend
                    log.info("your round %d of %d: %s", k, n, message.message)
                    continue
                raise UpdateRejected(f"[{message.code}] {message.message}")
            if isinstance(message, UpdateAck):
                log.info(
                    "your round %d of %d: update accepted (%d of %d reported)",
                    *(k, n, message.reported, message.participants),
                )

    def _newer_result(self, round: int) -> RoundResult | None:
        """The newest round result already received for a round after `round`, if any."""
        taken = self.link.take(lambda m: isinstance(m, RoundResult) and m.round > round)
        results = [m for m in taken if isinstance(m, RoundResult)]
        return results[-1] if results else None

    # -- the round loop -----------------------------------------------------------------------
    async def run(self, rounds: int | None = None) -> ClientResult:
        """Take part in `rounds` rounds (default: the task's), then leave.

        Raises `WaitExpired` (carrying the model kept) when a round does not close within
        `wait_for_others_s` after this participant's update.
        """
        start = time.perf_counter()
        training = self.task.training
        rounds = training.rounds if rounds is None else rounds
        history: list[EpochMetrics] = []
        done = 0
        try:
            welcome = await self._join()
            weights, server_round = _model_of(welcome), welcome.round
            self._global, self._trained, self.rounds_done = (server_round, weights), None, 0
            log.info(
                "joined task %s as %s: the shared model has been trained for %s; "
                "you take part in %s (%d of %d participants needed are connected)",
                *(self.task.id, welcome.client_id, _rounds(welcome.round), _rounds(rounds)),
                *(welcome.participants, welcome.min_participants),
            )
            while done < rounds:
                k = done + 1
                log.info(
                    "your round %d of %d: training %s on the shared model (%s so far)",
                    *(k, rounds, training.round_work(k), _rounds(server_round)),
                )
                if training.secure_aggregation is not None:
                    server_round, weights, epoch_metrics, combined = await secure_round(
                        self, server_round, weights, k, rounds
                    )
                    history.extend(epoch_metrics)
                    done += 1
                    self.rounds_done = done
                    if combined:  # an aborted round leaves the shared model as it was
                        self._global = (server_round, weights)
                    log.info(
                        "your round %d of %d done; the shared model has been trained for %s",
                        *(k, rounds, _rounds(server_round)),
                    )
                    continue
                trained, epoch_metrics = await self.train(server_round, weights, k)
                self._trained = trained
                history.extend(epoch_metrics)
                newer = self._newer_result(server_round)
                if newer is not None:
                    log.warning(
                        "your round %d of %d: the round closed while you trained; your update is "
                        "dropped and you continue from the newer shared model",
                        *(k, rounds),
                    )
                    weights, server_round, done = newer.weights, newer.round, done + 1
                    self._global, self.rounds_done = (server_round, weights), done
                    continue
                last = epoch_metrics[-1]
                prepared = prepare_update(
                    weights,
                    trained,
                    len(self.train_data),
                    {
                        "train_loss": last.train_loss,
                        "train_accuracy": last.train_accuracy,
                        "val_loss": last.val_loss,
                        "val_accuracy": last.val_accuracy,
                    },
                    training.privacy,
                    self._noise,
                )
                if prepared.dropped_metrics:
                    log.warning(
                        "your round %d of %d: metrics %s are not finite; they are not reported",
                        *(k, rounds, ", ".join(prepared.dropped_metrics)),
                    )
                if training.privacy is not None:
                    log.info(
                        "your round %d of %d: %s",
                        *(k, rounds, prepared.describe_privacy(training.privacy)),
                    )
                prepared = await self._outgoing(server_round, weights, prepared)
                update = ModelUpdate(
                    round=server_round,
                    num_samples=prepared.num_samples,
                    weights=prepared.weights,
                    metrics=prepared.metrics,
                )
                await self._send(update)
                expired = functools.partial(self._expired, rounds)
                result = await self._wait_result(update, k, rounds, expired)
                weights, server_round, done = _model_of(result), result.round, done + 1
                self._global, self.rounds_done = (server_round, weights), done
                if isinstance(result, RoundResult):
                    log.info(
                        "your round %d of %d done: %d contributor(s); the shared model has been "
                        "trained for %s",
                        *(k, rounds, result.contributors, _rounds(result.round)),
                    )
            await self._send(Leave())
            log.info("done: %s; left the session", _rounds(rounds))
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

    async def _outgoing(
        self, round: int, received: Weights, prepared: PreparedUpdate
    ) -> PreparedUpdate:
        """The update to send for server round `round`, trained from `received`.

        An honest participant sends `prepared` as the pipeline made it; simulated attackers
        (`disco.simulation.attacks`) override this one hook.
        """
        return prepared

    def kept_model(self) -> tuple[Literal["global", "local"], Weights, int] | None:
        """The model to keep if the session ends now, as (kind, weights, shared rounds).

        The last shared model when it has training behind it (``"global"``), else the model
        trained here (``"local"``); None before either exists. The same rule as the browser.
        """
        if self._global is not None and self._global[0] > 0:
            return "global", self._global[1], self._global[0]
        if self._trained is not None:
            return "local", self._trained, 0 if self._global is None else self._global[0]
        return None

    def _expired(self, rounds: int) -> WaitExpired:
        """The error to stop with when the wait for others runs out."""
        kept = self.kept_model()
        if kept is None:  # unreachable: a participant waits only after it trained
            raise SessionError("stopped waiting for the others before training anything")
        kind, weights, shared = kept
        which = (
            f"the last shared model ({_rounds(shared)} of training)"
            if kind == "global"
            else "the model trained on your data (nothing was combined yet)"
        )
        message = (
            f"stopped waiting for the others after {self.wait_for_others_s:g} s: no round closed; "
            f"{self._missing()}. You completed {self.rounds_done} of {rounds} rounds with the "
            f"others and keep {which}."
        )
        log.warning(message)
        self.model.set_weights(weights)
        return WaitExpired(
            message, weights=weights, kept=kind, rounds_done=self.rounds_done, shared_rounds=shared
        )

    async def _close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
