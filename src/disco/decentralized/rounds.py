"""One round of a decentralized session, as a peer lives it (docs/protocol.md §18.6).

`PeerRounds` is the part of `PeerClient` (`disco.decentralized.peer`, whose docstring walks
through a round) that takes part in a planned round: it gets the round's model (held, initial,
or fetched from a peer), trains while the channels to its neighbours open, sends its update
after the barrier, combines what `Combine` lists (`disco.decentralized.combine`) and reports the
new model's digest. A peer that cannot get the round's model, or that the barrier left out, sits
the round out. `_resync` fetches the agreed model from the peer a `Resync` names.

The client supplies the connection to the server (`_send`, `_until`) and the orders it heard
(`Exchange`, `Combine`, by round). Every wait is bounded by the plan's deadlines plus `SLACK_S`;
where each round's time went is kept as a `RoundTiming`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from disco.aggregation import Aggregator
from disco.client.base import Client
from disco.client.update import prepare_update
from disco.decentralized.combine import combine_updates, refusal
from disco.decentralized.connector import Connector
from disco.decentralized.exchange import PeerExchange
from disco.decentralized.secure import SecureMessage, secure_keys, secure_peer_round
from disco.errors import DiscoError, ServerError
from disco.protocol import (
    Combine,
    DigestReport,
    ErrorMessage,
    Exchange,
    Hello,
    Leave,
    PeerMasked,
    PeerUpdate,
    Ready,
    Received,
    Resync,
    RoundPlan,
    SecureKeys,
    SecureReveal,
    SecureShares,
    Signal,
)
from disco.protocol.peers import COMBINE_S, CONNECT_S
from disco.protocol.secure import SHARES_S, UNMASK_S
from disco.secure.participant import SecureParticipant
from disco.task import Task
from disco.training import EpochMetrics
from disco.transport import ChannelClosed
from disco.weights import Weights

__all__ = ["SLACK_S", "PeerRounds", "RoundTiming", "ToServer", "round_bound_s"]

log = logging.getLogger("disco.client.peers")

ToServer = (
    Hello
    | Leave
    | Signal
    | Ready
    | Received
    | DigestReport
    | SecureKeys
    | SecureShares
    | SecureReveal
)
"""What a peer sends the server."""

SLACK_S = 30.0
"""Added to the server's deadlines before a peer gives up waiting for the server itself."""


def round_bound_s(task: Task) -> float:
    """The longest a round of `task` can run on the server: its three phases (§18.5), and the
    shares and unmasking phases of a secure round (§19.1), plus the slack a peer allows for each."""
    bound = CONNECT_S + task.training.round_deadline_s + COMBINE_S + 2 * SLACK_S
    if task.training.secure_aggregation is not None:
        bound += SHARES_S + UNMASK_S + 2 * SLACK_S
    return bound


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


class PeerRounds(Client):
    """The rounds of a peer; `PeerClient` sets the state below and talks to the server."""

    client_id: str | None
    weights: Weights | None  # the model this peer holds now
    timings: list[RoundTiming]  # one per round it took part in
    _aggregator: Aggregator
    _rng: np.random.Generator
    _connector: Connector | None
    _exchange: PeerExchange
    _initial: Weights | None  # the task's initial model, fetched before the first round
    _rounds: dict[int, _Round]
    _exchanges: dict[int, Exchange]  # the server's go-ahead, by round
    _combines: dict[int, Combine]  # the server's choice of updates, by round
    _secure: dict[int, dict[type, SecureMessage | ErrorMessage]]  # secure rounds' messages

    @abstractmethod
    async def _send(self, message: ToServer) -> None:
        """Send `message` to the server."""

    @abstractmethod
    async def _until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `done()`; `SessionError` saying `what` it waited for after `timeout` s,
        `ServerError` if the connection to the server ends first."""

    async def _round(self, plan: RoundPlan, k: int, history: list[EpochMetrics]) -> int:
        """Take part in the planned round; 1 if this peer combined it, 0 if it sat it out."""
        r, t0 = plan.round, time.perf_counter()
        timing = RoundTiming(round=r)
        rnd = self._rounds[r] = _Round(plan)
        self._exchange.accepting = {r}
        self._exchange.forget_before(r)
        neighbours = [p.id for p in plan.peers]
        secure = None
        if self.task.training.secure_aggregation is not None:  # keys before any `ready` (§19.1)
            secure = await secure_keys(self, plan)
        connecting = asyncio.ensure_future(self._connect_all(rnd, neighbours, timing, t0))
        try:
            base = await self._round_model(plan, timing)
        except ServerError:  # the server is gone: the run ends, not just this round
            connecting.cancel()
            raise
        except (DiscoError, ChannelClosed, TimeoutError, OSError) as exc:
            log.warning(
                "round %d: cannot get the round's model (%s); sitting this round out", r, exc
            )
            connecting.cancel()
            self._forget(r)
            return 0
        self._exchange.models[r] = base
        log.info(
            "round %d (your round %d): training %s with %d peer(s)",
            *(r, k, self.task.training.round_work(k), len(neighbours)),
        )
        t_train = time.perf_counter()
        training = asyncio.ensure_future(self.train(r, base, k))
        if secure is not None:
            return await self._secure_round(
                plan, secure, base, training, connecting, (timing, t0), history
            )
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

    async def _secure_round(
        self,
        plan: RoundPlan,
        secure: SecureParticipant,
        base: Weights,
        training: asyncio.Future[tuple[Weights, list[EpochMetrics]]],
        connecting: asyncio.Future[None],
        timed: tuple[RoundTiming, float],
        history: list[EpochMetrics],
    ) -> int:
        """A secure round from the barrier on (`disco.decentralized.secure`); training runs."""
        r, (timing, t0) = plan.round, timed
        try:
            await self._until(
                lambda: r in self._exchanges,
                plan.connect_s + SLACK_S,
                f"the server's go-ahead for round {r}",
            )
        finally:
            connecting.cancel()
        done = await secure_peer_round(self, plan, secure, base, training, history, timing)
        self._forget(r)
        if done:  # one timing per round combined, as in a plain round
            timing.total_s = time.perf_counter() - t0
            timing.neighbours = len(plan.peers)
            self.timings.append(timing)
            log.info("round %d unmasked the sum of %d peer(s)", r, timing.contributors)
        return done

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
                except ServerError:  # its signals cannot reach the server: no use retrying
                    raise
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

    async def _send_update(
        self, peer: str, update: PeerUpdate | PeerMasked, timeout: float
    ) -> None:
        """Send this peer's update (or masked input) of the round to `peer`; a failure is
        logged: the round goes on without it there."""
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
        rule = self.task.training.aggregation.rule
        return refusal(rule, self._exchange.models.get(round), weights)

    def _forget(self, r: int) -> None:
        for orders in (self._rounds, self._exchanges, self._combines, self._secure):
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
        return combine_updates(self._aggregator, self.client_id, plan, base, own, combine, received)

    async def _resync(self, order: Resync) -> None:
        """Fetch the agreed model of `order.round` from `order.peer`."""
        assert self._connector is not None
        try:
            channel = await self._connector.connect(order.peer, 60.0, initiate=True)
            model = await self._exchange.fetch(order.peer, channel, order.round, 60.0)
        except ServerError:
            raise
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
