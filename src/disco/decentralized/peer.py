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
plan's deadlines plus `SLACK_S`, or by the task's ``wait_for_others_s`` between rounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np

from disco.aggregation import Update, build_aggregator
from disco.aggregation.fold import MAX_CHANGE
from disco.client.base import Client, ClientResult
from disco.client.federated import ws_url
from disco.client.link import Link, LinkClosed, Traffic
from disco.client.update import prepare_update
from disco.data.dataset import Dataset
from disco.decentralized.connector import Connector, OnChannel, RtcConnector, SendSignal
from disco.decentralized.exchange import PeerExchange
from disco.errors import AggregationError, DiscoError, ServerError, SessionError
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    Combine,
    DigestReport,
    ErrorMessage,
    Exchange,
    Hello,
    Leave,
    PeerUpdate,
    Ready,
    Received,
    Resync,
    RoundPlan,
    ServerMessage,
    Signal,
    Status,
    Welcome,
)
from disco.task import Task
from disco.training import EpochMetrics, EventCallback
from disco.transport import ChannelClosed, WebSocketChannel
from disco.weights import Weights

__all__ = ["ConnectorFactory", "PeerClient", "RoundTiming"]

log = logging.getLogger("disco.client.peers")

SLACK_S = 30.0
"""Added to the server's deadlines before a peer gives up waiting for the server itself."""

ConnectorFactory = Callable[[str, OnChannel, SendSignal], Connector]
"""Makes this peer's connector from (its id, on_channel, send_signal)."""


@dataclass
class RoundTiming:
    """Where one round's time went, in seconds (for logs and benchmarks)."""

    round: int
    model_s: float = 0.0  # getting the round's model (0 when held)
    connect_s: float = 0.0  # plan → every neighbour's channel open
    train_s: float = 0.0
    exchange_s: float = 0.0  # update sent → combine received
    combine_s: float = 0.0
    total_s: float = 0.0
    neighbours: int = 0
    contributors: int = 0
    digest: str = ""


@dataclass
class _Round:
    plan: RoundPlan
    connected: set[str] = field(default_factory=set)


class PeerClient(Client):
    """Joins decentralized `task` on the server at `server_url` and trains with its peers."""

    def __init__(
        self,
        task: Task,
        data: Dataset,
        server_url: str,
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
        self.server_url = server_url.rstrip("/")
        self.url = ws_url(server_url)
        self.wait_for_others_s = wait_for_others_s or task.training.wait_for_others_s
        self._make_connector = connector or (
            lambda me, on_channel, send: RtcConnector(me, on_channel, send, ice_servers=ice_servers)
        )
        self._key = secrets.token_urlsafe(24)
        self._rng = noise if noise is not None else np.random.default_rng()
        # every peer forms the same buckets: the bucketing secret is the task's, not random
        secret = hashlib.sha256(f"disco-peers:{task.id}".encode()).hexdigest()
        self._aggregator = build_aggregator(task.training, secret=secret)
        self._traffic = Traffic()
        self._link: Link | None = None
        self._connector: Connector | None = None
        self._exchange = PeerExchange(self.model.get_weights(), self._updated, self._acceptable)
        self._control: asyncio.Queue[RoundPlan | Resync] = asyncio.Queue()
        self._rounds: dict[int, _Round] = {}
        self._exchanges: dict[int, Exchange] = {}  # the server's go-ahead, by round
        self._combines: dict[int, Combine] = {}  # the server's choice of updates, by round
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
            if self._exchange.updates.get(message.round):  # updates that came before it
                self._updated(message.round)
        elif isinstance(message, Combine):
            self._combines[message.round] = message
        elif isinstance(message, Status):
            self.status = message
        elif isinstance(message, Welcome):
            self._welcome = message
        elif isinstance(message, ErrorMessage) and self._welcome is None:
            self._refused = message
        elif isinstance(message, ErrorMessage):
            log.warning("the server says: [%s] %s", message.code, message.message)
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:  # a display callback must not end the session
                log.exception("the on_message callback failed on a %r message", message.type)
        self._changed.set()

    async def _send(
        self, message: Hello | Leave | Signal | Ready | Received | DigestReport
    ) -> None:
        assert self._link is not None
        await self._link.send(message)

    def _updated(self, round: int) -> None:
        """A valid update of `round` arrived: tell the server whose updates this peer holds."""
        self._changed.set()
        if round not in self._exchanges or self._link is None:
            return
        peers = sorted(self._exchange.updates.get(round, {}))
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
        channel = await WebSocketChannel.connect(self.url, max_frame=DEFAULT_MAX_FRAME, timeout=10)
        self._link = Link(channel, self._traffic, self._observe, keep=False)
        await self._send(
            Hello(
                task_id=self.task.id,
                name=self.name,
                kind="python",
                participant_key=self._key,
                capabilities=["decentralized"],
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
        return self._welcome

    async def _initial_model(self) -> Weights:
        """The task's initial model, the only one the server keeps."""
        url = f"{self.server_url}/api/tasks/{self.task.id}/model"
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.get(url)
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
            while done < rounds:
                try:
                    async with asyncio.timeout(self.wait_for_others_s):
                        order = await self._next_control()
                except TimeoutError:
                    raise SessionError(
                        f"no round started in {self.wait_for_others_s:g} s ({self._waiting_for()})"
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
            except (LinkClosed, DiscoError, OSError):
                pass
            await self._link.close()
        await self._exchange.aclose()
        if self._connector is not None:
            await self._connector.aclose()

    # -- one round -------------------------------------------------------------------------------
    async def _round(self, plan: RoundPlan, k: int, history: list[EpochMetrics]) -> int:
        """Take part in the planned round; 1 if this peer combined it, 0 if it sat it out."""
        r, t0 = plan.round, time.perf_counter()
        timing = RoundTiming(round=r)
        rnd = self._rounds[r] = _Round(plan)
        self._exchange.accepting = {r}
        self._exchange.forget_before(r)
        neighbours = [p.id for p in plan.peers]
        connecting = asyncio.ensure_future(self._connect_all(rnd, neighbours, timing, t0))
        try:
            base = await self._round_model(plan, timing)
        except (DiscoError, ChannelClosed, TimeoutError, OSError) as exc:
            log.warning(
                "round %d: cannot get the round's model (%s); sitting this round out", r, exc
            )
            connecting.cancel()
            self._forget(r)
            return 0
        self._exchange.models[r] = base
        epochs = self.task.training.epochs_in_round(k)
        log.info(
            "round %d (your round %d): training %d epoch(s) with %d peer(s)",
            r,
            k,
            epochs,
            len(neighbours),
        )
        t_train = time.perf_counter()
        training = asyncio.ensure_future(self.train(r, base, epochs))
        try:
            await self._until(
                lambda: r in self._exchanges,
                plan.connect_s + SLACK_S,
                f"the server's go-ahead for round {r}",
            )
            trained, epochs_done = await training
        finally:
            connecting.cancel()
        timing.train_s = time.perf_counter() - t_train
        history.extend(epochs_done)
        exchange = self._exchanges[r]
        if self.client_id not in exchange.peers:
            log.warning("round %d: left out (channels to the peers did not open in time)", r)
            self._forget(r)
            return 0
        last = epochs_done[-1] if epochs_done else None
        metrics = (
            {}
            if last is None
            else {
                "train_loss": last.train_loss,
                "train_accuracy": last.train_accuracy,
                "val_loss": last.val_loss,
                "val_accuracy": last.val_accuracy,
            }
        )
        prepared = prepare_update(
            base, trained, len(self.train_data), metrics, self.task.training.privacy, self._rng
        )
        own = PeerUpdate(
            round=r,
            num_samples=prepared.num_samples,
            weights=prepared.weights,
            digest=prepared.weights.digest(),
            metrics=prepared.metrics,
        )
        targets = [n for n in neighbours if n in exchange.peers]
        log.info("round %d: sending the update to %d peer(s)", r, len(targets))
        t_exchange = time.perf_counter()
        await asyncio.gather(*(self._send_update(n, own, plan.exchange_s) for n in targets))
        await self._until(
            lambda: r in self._combines,
            plan.exchange_s + SLACK_S,
            f"the server's list of updates to combine in round {r}",
        )
        timing.exchange_s = time.perf_counter() - t_exchange
        combine = self._combines[r]
        t_combine = time.perf_counter()
        received = dict(self._exchange.updates.get(r, {}))
        new = await asyncio.to_thread(self._combine, plan, base, own, combine, received)
        timing.combine_s = time.perf_counter() - t_combine
        self.weights = new
        self._exchange.models[r + 1] = new
        digest = new.digest()
        await self._send(DigestReport(round=r, digest=digest))
        timing.total_s = time.perf_counter() - t0
        timing.contributors = len(combine.peers)
        timing.neighbours = len(neighbours)
        timing.digest = digest
        self.timings.append(timing)
        self._forget(r)
        log.info(
            "round %d combined %d update(s) in %.1f s (model %s…)",
            r,
            timing.contributors,
            timing.total_s,
            digest[:12],
        )
        return 1

    async def _round_model(self, plan: RoundPlan, timing: RoundTiming) -> Weights:
        """The model round `plan.round` starts from."""
        t = time.perf_counter()
        held = self._exchange.models.get(plan.round)
        if held is not None and plan.digest is not None and held.digest() == plan.digest:
            return held  # e.g. fetched by a resync just before
        if plan.model_from is not None:
            neighbours = {p.id for p in plan.peers}
            assert self._connector is not None
            peer = plan.model_from
            channel = await self._connector.connect(
                peer, plan.connect_s, initiate=peer not in neighbours
            )
            model = await self._exchange.fetch(peer, channel, plan.round, plan.connect_s)
            if plan.digest is not None and model.digest() != plan.digest:
                raise DiscoError(f"the model from {peer} is not the round's model")
            log.info("round %d: got the round's model from peer %s", plan.round, peer)
            timing.model_s = time.perf_counter() - t
            return model
        if held is not None and plan.digest is None:
            return held
        assert self._initial is not None
        if plan.digest is None or plan.digest == self._initial.digest():
            return self._initial
        raise DiscoError(f"this peer does not hold the model of round {plan.round}")

    async def _connect_all(
        self, rnd: _Round, neighbours: list[str], timing: RoundTiming, t0: float
    ) -> None:
        """Open (or reuse) a channel to every neighbour; report each one that opens."""
        connector = self._connector
        assert connector is not None
        plan = rnd.plan
        deadline = time.monotonic() + plan.connect_s

        async def one(peer: str) -> None:
            while time.monotonic() < deadline:  # retry a failed attempt while there is time
                try:
                    await connector.connect(peer, deadline - time.monotonic())
                except (TimeoutError, DiscoError, ChannelClosed, OSError, ValueError) as exc:
                    log.info("round %d: channel to %s not open yet (%s)", plan.round, peer, exc)
                    await asyncio.sleep(0.5)
                    continue
                rnd.connected.add(peer)
                await self._send(Ready(round=plan.round, connected=sorted(rnd.connected)))
                return

        if not neighbours:
            await self._send(Ready(round=plan.round, connected=[]))
        await asyncio.gather(*(one(p) for p in neighbours))
        timing.connect_s = time.perf_counter() - t0

    async def _send_update(self, peer: str, update: PeerUpdate, timeout: float) -> None:
        assert self._connector is not None
        channel = self._connector.channel(peer)
        if channel is None:
            log.info("round %d: no channel to %s; its update is not sent", update.round, peer)
            return
        try:
            await self._exchange.send(channel, update, timeout=timeout)
        except (DiscoError, ChannelClosed, TimeoutError) as exc:
            log.info("round %d: sending the update to %s failed (%s)", update.round, peer, exc)

    def _acceptable(self, round: int, weights: Weights) -> str | None:
        """Why the task's rule cannot take `weights` as an update of `round` (None: it can)."""
        base = self._exchange.models.get(round)
        if base is None or self.task.training.aggregation.rule != "mean":
            return None
        change = max(
            (float(np.max(np.abs(w - base[n]))) for n, w in weights.items() if w.size), default=0.0
        )
        if not change < MAX_CHANGE:
            return f"a value changed by {change:g} in one round; the mean takes less than 256"
        return None

    def _forget(self, r: int) -> None:
        for orders in (self._rounds, self._exchanges, self._combines):
            for old in [k for k in orders if k <= r]:
                del orders[old]

    def _combine(
        self,
        plan: RoundPlan,
        base: Weights,
        own: PeerUpdate,
        combine: Combine,
        received: dict[str, PeerUpdate],
    ) -> Weights:
        """The model this peer ends the round with (runs in a worker thread)."""
        assert self.client_id is not None
        received[self.client_id] = own
        chosen = [p for p in sorted(combine.peers) if p in received]
        if plan.topology == "all_to_all":
            if not chosen:
                return base
            updates = [
                Update(p, received[p].weights - base, received[p].num_samples) for p in chosen
            ]
            try:
                return self._aggregator.aggregate(base, updates, round=plan.round).weights
            except AggregationError as exc:  # every peer fails alike: all keep the round's model
                log.warning("round %d: the updates could not be combined (%s)", plan.round, exc)
                return base
        weights = {p.id: p.weight for p in plan.peers if p.id in chosen}
        own_weight = 1.0 - sum(weights.values())
        mixed = {name: own_weight * own.weights[name].astype(np.float64) for name in own.weights}
        for p, w in weights.items():
            for name in mixed:
                mixed[name] += w * received[p].weights[name].astype(np.float64)
        return Weights([(name, value.astype(np.float32)) for name, value in mixed.items()])

    async def _resync(self, order: Resync) -> None:
        """Fetch the agreed model of `order.round` from `order.peer`."""
        assert self._connector is not None
        try:
            channel = await self._connector.connect(order.peer, 60.0, initiate=True)
            model = await self._exchange.fetch(order.peer, channel, order.round, 60.0)
        except (DiscoError, ChannelClosed, TimeoutError, OSError) as exc:
            log.warning(
                "resync from %s failed (%s); the next round fetches it again", order.peer, exc
            )
            return
        if model.digest() != order.digest:
            log.warning("the model from %s is not the agreed one; not taken", order.peer)
            return
        self.weights = model
        self._exchange.models[order.round] = model
        await self._send(DigestReport(round=order.round - 1, digest=order.digest))
        log.info("resynced the model of round %d from %s", order.round, order.peer)
