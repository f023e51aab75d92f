"""A peer of a decentralized session: trains locally, exchanges updates with its peers directly.

The server only paces (`disco.server.decentralized`); models travel peer to peer. One round, as
this peer lives it (docs/decentralized.md, docs/protocol.md §18):

1. `RoundPlan`: the round's model is the one it holds, the initial one (fetched from the server
   by REST before the first round), or one fetched from the peer named in ``model_from``; its
   digest must match the plan's.
2. Training starts at once; meanwhile the channels to the round's neighbours open (or are
   reused) and each one opened is reported (`Ready`).
3. `Exchange` (the barrier passed): the update goes to every neighbour that passed it; every valid
   update received is acknowledged and reported to the server (`Received`).
4. `Combine`: exactly the listed updates are combined — with the task's aggregation rule in an
   all-to-all round (every peer gets the same model, bit for bit), by Metropolis–Hastings mixing
   in a sparse round — and the new model's digest goes to the server (`DigestReport`).

A `Resync` makes it fetch the agreed model from the named peer. Every wait is bounded by the
plan's deadlines plus `SLACK_S`, or between rounds by the task's ``wait_for_others_s`` — never
less than a whole round of others can take (`round_bound_s`), so a peer that sits out a round
(it joined while one was running) does not give up before that round ends.

This module is the peer's side of the session: joining, the server's messages, the run from
round to round, byte counts. A round itself is `PeerRounds` (`disco.decentralized.rounds`);
how the updates are combined, `disco.decentralized.combine`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from disco.client.access import ServerAccess
from disco.client.base import ClientResult
from disco.client.link import Link, LinkClosed, Traffic
from disco.data.dataset import Dataset
from disco.data.text import TextWindows
from disco.decentralized.combine import peer_aggregator
from disco.decentralized.connector import Connector, OnChannel, RtcConnector, SendSignal
from disco.decentralized.exchange import PeerExchange
from disco.decentralized.rounds import SLACK_S as SLACK_S
from disco.decentralized.rounds import PeerRounds, RoundTiming, ToServer, round_bound_s
from disco.errors import DiscoError, ServerError, SessionError
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    Combine,
    ErrorMessage,
    Exchange,
    Hello,
    Leave,
    Received,
    Resync,
    RoundPlan,
    SecureAbort,
    SecureInbox,
    SecureReveals,
    SecureSetup,
    SecureUnmask,
    ServerMessage,
    Signal,
    Status,
    Welcome,
)
from disco.task import Task
from disco.training import EpochMetrics, EventCallback
from disco.weights import Weights

__all__ = ["ConnectorFactory", "PeerClient", "RoundTiming"]

log = logging.getLogger("disco.client.peers")

ConnectorFactory = Callable[[str, OnChannel, SendSignal], Connector]
"""Makes this peer's connector from (its id, on_channel, send_signal)."""


class PeerClient(PeerRounds):
    """Joins decentralized `task` on `server` (a URL or a `ServerAccess`) and trains with its
    peers."""

    def __init__(
        self,
        task: Task,
        data: Dataset | TextWindows,
        server: str | ServerAccess,
        *,
        seed: int = 0,
        name: str = "",
        callbacks: list[EventCallback] | None = None,
        connector: ConnectorFactory | None = None,
        ice_servers: Sequence[Any] = (),
        noise: np.random.Generator | None = None,
        wait_for_others_s: float | None = None,
        on_message: Callable[[ServerMessage], None] | None = None,
    ) -> None:
        super().__init__(task, data, seed=seed, name=name, callbacks=callbacks)
        if task.training.scheme != "decentralized":
            raise SessionError(f"task {task.id!r} is {task.training.scheme}, not decentralized")
        self.access = ServerAccess.of(server)
        self.url = self.access.ws_url
        self.wait_for_others_s = wait_for_others_s or task.training.wait_for_others_s
        self._make_connector = connector or (
            lambda me, on_channel, send: RtcConnector(me, on_channel, send, ice_servers=ice_servers)
        )
        self._key = secrets.token_urlsafe(24)
        self._rng = noise if noise is not None else np.random.default_rng()
        self._aggregator = peer_aggregator(task)  # the same buckets on every peer
        self._traffic = Traffic()
        self._link: Link | None = None
        self._connector: Connector | None = None
        self._exchange = PeerExchange(
            self.model.get_weights(),
            self._updated,
            self._acceptable,
            secure=task.training.secure_aggregation is not None,
        )
        self._control: asyncio.Queue[RoundPlan | Resync] = asyncio.Queue()
        self._rounds = {}  # the rounds in progress (`PeerRounds`)
        self._exchanges: dict[int, Exchange] = {}  # the server's go-ahead, by round
        self._combines: dict[int, Combine] = {}  # the server's choice of updates, by round
        self._secure = {}  # a secure round's messages from the server, by round and type
        self._changed = asyncio.Event()
        self._initial: Weights | None = None
        self._welcome: Welcome | None = None
        self._refused: ErrorMessage | None = None
        self.client_id: str | None = None
        self.status: Status | None = None
        self.on_message = on_message
        self.rounds_done = 0
        """Rounds this peer combined."""
        self.timings: list[RoundTiming] = []
        """One entry per round this peer took part in."""
        self.weights: Weights | None = None
        """The model this peer holds now."""

    # -- traffic ---------------------------------------------------------------------------
    @property
    def bytes_to_server(self) -> int:
        return self._traffic.bytes_up + self._traffic.bytes_down

    @property
    def bytes_to_peers(self) -> int:
        """Bytes sent to other peers (updates, models, acknowledgements)."""
        return self._exchange.traffic.bytes_up

    @property
    def bytes_from_peers(self) -> int:
        return self._exchange.traffic.bytes_down

    @property
    def bytes_up(self) -> int:
        """Bytes sent, to the server and to peers."""
        return self._traffic.bytes_up + self.bytes_to_peers

    @property
    def bytes_down(self) -> int:
        return self._traffic.bytes_down + self.bytes_from_peers

    def kept_model(self) -> tuple[Literal["global", "local"], Weights, int] | None:
        """The model to keep if the session ends now: the last combined one (None before)."""
        if self.rounds_done == 0 or self.weights is None:
            return None
        return "global", self.weights, self.rounds_done

    # -- server messages -------------------------------------------------------------------
    def _observe(self, message: ServerMessage) -> None:
        """Called by the link's reader for every server message, in order."""
        if isinstance(message, Signal):
            assert self._connector is not None
            asyncio.get_running_loop().create_task(self._connector.on_signal(message))
        elif isinstance(message, RoundPlan | Resync):
            self._control.put_nowait(message)
        elif isinstance(message, Exchange):
            self._exchanges[message.round] = message
            if self._exchange.holders(message.round):  # updates that came before it
                self._updated(message.round)
        elif isinstance(message, Combine):
            self._combines[message.round] = message
        elif isinstance(message, SecureSetup | SecureInbox | SecureUnmask | SecureReveals):
            self._secure.setdefault(message.round, {})[type(message)] = message
        elif isinstance(message, SecureAbort):
            self._secure.setdefault(message.round, {})[SecureAbort] = message
        elif isinstance(message, Status):
            self.status = message
        elif isinstance(message, Welcome):
            self._welcome = message
        elif isinstance(message, ErrorMessage) and self._welcome is None:
            self._refused = message
        elif isinstance(message, ErrorMessage):
            log.warning("the server says: [%s] %s", message.code, message.message)
            if message.round is not None and message.round in self._secure:
                self._secure[message.round][ErrorMessage] = message  # a secure round's refusal
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:  # a display callback must not end the session
                log.exception("the on_message callback failed on a %r message", message.type)
        self._changed.set()

    async def _send(self, message: ToServer) -> None:
        """Send `message` to the server; `ServerError` if the connection to it is gone (a peer
        stops when the server goes away, whichever of sending or waiting notices it first)."""
        assert self._link is not None
        try:
            await self._link.send(message)
        except LinkClosed as exc:
            raise ServerError(f"the connection to the server closed: {exc}") from exc

    def _updated(self, round: int) -> None:
        """A valid update of `round` arrived: tell the server whose updates this peer holds."""
        self._changed.set()
        if round not in self._exchanges or self._link is None:
            return
        peers = self._exchange.holders(round)
        task = asyncio.get_running_loop().create_task(
            self._send(Received(round=round, peers=peers))
        )
        task.add_done_callback(lambda t: t.exception())  # a closed link shows in the main loop

    async def _until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `done()`; `SessionError` saying `what` it waited for after `timeout` s,
        `ServerError` if the connection to the server ends first."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionError(f"waited {timeout:g} s for {what}; the server did not say")
            if self._link is not None and self._link.ended is not None:
                raise ServerError(
                    f"the connection to the server closed while waiting for {what}: "
                    f"{self._link.ended}"
                )
            self._changed.clear()
            self._exchange.changed.clear()
            waits: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(e.wait()) for e in (self._changed, self._exchange.changed)
            ]
            if self._link is not None:
                waits.append(asyncio.ensure_future(self._link.wait_ended()))
            _, pending = await asyncio.wait(
                waits, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for w in pending:
                w.cancel()

    # -- joining ---------------------------------------------------------------------------
    async def _join(self) -> Welcome:
        channel = await self.access.connect(max_frame=DEFAULT_MAX_FRAME, timeout=10)
        self._link = Link(channel, self._traffic, self._observe, keep=False)
        await self._send(
            Hello(
                task_id=self.task.id,
                name=self.name,
                kind="python",
                participant_key=self._key,
                capabilities=self._capabilities,
                invitation=self.access.invitation,
            )
        )
        try:
            await self._until(
                lambda: self._welcome is not None or self._refused is not None,
                30,
                "the server's welcome",
            )
        except ServerError:
            if self._refused is None:
                raise
        if self._refused is not None:
            refused = self._refused
            raise ServerError(f"server refused to join: [{refused.code}] {refused.message}")
        assert self._welcome is not None
        missing = set(self._capabilities) - set(self._welcome.capabilities)
        if missing:
            raise ServerError(
                f"the server does not run task {self.task.id!r} with {sorted(missing)}: it is "
                "not the task this peer was given"
            )
        return self._welcome

    @property
    def _capabilities(self) -> list[str]:
        """What this peer must speak: secure aggregation too when the task uses it."""
        secure = self.task.training.secure_aggregation is not None
        return ["decentralized", "secure_aggregation"] if secure else ["decentralized"]

    async def _initial_model(self) -> Weights:
        """The task's initial model, the only one the server keeps."""
        async with self.access.async_http(timeout=60) as http:
            response = await http.get(f"/api/tasks/{self.task.id}/model")
        if response.status_code != 200:
            raise ServerError(f"could not fetch the initial model ({response.status_code})")
        weights = Weights.from_safetensors(response.content)
        weights.check_like(self.model.get_weights(), "initial model")
        if weights.digest() != response.headers.get("x-disco-digest"):
            raise ServerError("the initial model does not match the digest the server gave")
        return weights

    # -- the run -------------------------------------------------------------------------------
    async def run(self, rounds: int | None = None) -> ClientResult:
        """Take part in `rounds` rounds (default: the task's), then leave."""
        start = time.perf_counter()
        rounds = self.task.training.rounds if rounds is None else rounds
        history: list[EpochMetrics] = []
        try:
            welcome = await self._join()
            self.client_id = welcome.client_id
            self._connector = self._make_connector(
                welcome.client_id, self._exchange.watch, self._send
            )
            self._initial = await self._initial_model()
            self.weights = self._initial
            log.info(
                "joined decentralized task %s as %s (%d peers; a round needs %d)",
                self.task.id,
                welcome.client_id,
                welcome.participants,
                welcome.min_participants,
            )
            done = 0
            between = max(self.wait_for_others_s, round_bound_s(self.task))
            while done < rounds:
                try:
                    async with asyncio.timeout(between):
                        order = await self._next_control()
                except TimeoutError:
                    raise SessionError(
                        f"no round started in {between:g} s ({self._waiting_for()})"
                    ) from None
                if isinstance(order, Resync):
                    await self._resync(order)
                    continue
                trained = await self._round(order, done + 1, history)
                done += trained
                self.rounds_done = done
            assert self.weights is not None
            self.model.set_weights(self.weights)
            return ClientResult(
                weights=self.weights,
                rounds=done,
                history=history,
                bytes_up=self.bytes_up,
                bytes_down=self.bytes_down,
                wall_s=time.perf_counter() - start,
                train_s=self._train_s,
                num_samples=len(self.train_data),
            )
        finally:
            await self._close()

    async def _next_control(self) -> RoundPlan | Resync:
        """The next plan or resync order; `ServerError` if the server went away."""
        link = self._link
        assert link is not None
        if not self._control.empty():
            return self._control.get_nowait()
        getter = asyncio.ensure_future(self._control.get())
        ended = asyncio.ensure_future(link.wait_ended())
        try:
            await asyncio.wait([getter, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (getter, ended):
                if not f.done():
                    f.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise ServerError(f"the connection to the server closed: {ended.result()}")

    def _waiting_for(self) -> str:
        if self.status is None:
            return "no word from the server"
        s = self.status
        return f"{s.participants} peers connected, a round needs {s.min_participants}"

    async def _close(self) -> None:
        if self._link is not None:
            try:
                await self._send(Leave())
            except (DiscoError, OSError):
                pass
            await self._link.close()
        await self._exchange.aclose()
        if self._connector is not None:
            await self._connector.aclose()
