"""One decentralized session per task: the server introduces peers and paces rounds, never a model.

A round r goes through three phases, each bounded in time (docs/protocol.md §18):

``connecting``
    The server picks the round's members (every connected peer, once there are at least
    ``min_participants``), draws the topology (`disco.decentralized.topology`) and sends each a
    `RoundPlan`: its neighbours, mixing weights, the digest of the round's model and, for a peer
    that does not hold that model (a late joiner, a peer that fell behind), ``model_from``: a peer
    that does. Peers relay WebRTC signalling through the server (`Signal`) and report the channels
    they have open (`Ready`). The barrier passes when every live member has every live neighbour
    open; at ``connect_s`` the server excludes, one at a time, the peer with the most missing
    channels until the rest are fully connected.
``exchanging``
    `Exchange` lists the members that passed. Peers train, send their update to their neighbours
    and report whose updates they hold (`Received`). The phase ends when every live member holds
    the update of every live neighbour, when members drop out so that this holds, or at
    ``exchange_s`` (the task's ``round_deadline_s``).
``combining``
    `Combine` names the updates that more than half of the live members expected to hold them
    do hold (when every update reached everyone, all of them) — all combine exactly those, so in
    an all-to-all round they end with the same model, bit for bit, and no single peer can shrink
    the round by claiming it received nothing. Each reports the digest of its new model
    (`DigestReport`); the most reported digest is the round's. A peer whose digest differs (one
    that lacked an update the others combined) is told to `Resync` from one that holds the
    round's model. At ``combine_s`` the round closes with the digests that arrived.

A peer that leaves is dropped from its round at once, so no phase waits for it. The server keeps
the initial model only (served by ``GET /api/tasks/{id}/model``); if every peer holding the current
model leaves, the next round starts over from the initial model. The class is pure asyncio; it
keeps the round's state and sends the messages, and what it decides (the barriers, whom to
exclude, the combine set, the agreed digest, who resyncs) is in `disco.server.peer_rounds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from disco.decentralized.topology import ALL_TO_ALL_LIMIT, peer_graph
from disco.errors import SessionError
from disco.protocol import (
    Combine,
    DigestReport,
    ErrorMessage,
    Exchange,
    Ready,
    Received,
    Resync,
    SessionState,
    Signal,
    Status,
    Welcome,
)
from disco.protocol.peers import COMBINE_S, CONNECT_S, MAX_ROUND_PEERS
from disco.server import peer_rounds
from disco.server.participants import Participant, Peer, Peers, identity_of, state_of, who
from disco.server.peer_rounds import OpenRound, Phase
from disco.server.status import StatusCast
from disco.server.store import RoundRecord
from disco.task import Task
from disco.weights import Weights

__all__ = ["DecentralizedSession", "PeerMessage", "RecordRound"]

log = logging.getLogger("disco.server")

PeerMessage = Signal | Ready | Received | DigestReport
RecordRound = Callable[[str, RoundRecord], None]
"""Persist the history row of a closed round (no model); called in a worker thread."""

SIGNALS_PER_10_S = 400  # relayed signals per peer before it is told to slow down


class DecentralizedSession:
    """Round pacing for one decentralized task; safe under concurrent joins, leaves, messages."""

    capabilities: tuple[str, ...] = ("decentralized",)
    """The capabilities a peer must speak in this session (`Welcome.capabilities`)."""
    max_members = MAX_ROUND_PEERS
    """The most peers in one round (the earliest to join; the others wait for a later one)."""

    def __init__(
        self,
        task: Task,
        round: int,
        initial: Weights,
        *,
        digest: str | None = None,
        record: RecordRound | None = None,
        connect_s: float = CONNECT_S,
        combine_s: float = COMBINE_S,
        all_to_all_limit: int = ALL_TO_ALL_LIMIT,
        degree: int = 4,
    ):
        self.task = task
        self._round_no = round
        self._initial = initial
        self._initial_digest = initial.digest()
        self._agreed: str | None = digest or self._initial_digest  # the open round's model
        self._record = record
        self._connect_s, self._combine_s = connect_s, combine_s
        self._exchange_s = task.training.round_deadline_s
        self._limit, self._degree = all_to_all_limit, degree
        self._peers = Peers(task.id)
        self._round: OpenRound | None = None
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._status = StatusCast(
            self._broadcast_status, audience=lambda: len(self._peers)
        )  # coalesced

    # -- read-only view (the REST routes use the same names as the federated session) --------
    @property
    def round(self) -> int:
        return self._round_no

    @property
    def weights(self) -> Weights:
        """The only model the server keeps: the initial one."""
        return self._initial

    @property
    def digest(self) -> str:
        """The digest of the initial model (what ``GET /model`` serves)."""
        return self._initial_digest

    @property
    def agreed_digest(self) -> str | None:
        """The digest of the open round's model as the peers agreed it (None: sparse rounds)."""
        return self._agreed

    @property
    def phase(self) -> Phase:
        if self._stopped:
            return "stopped"
        return "waiting" if self._round is None else self._round.phase

    @property
    def participants(self) -> int:
        return len(self._peers)

    def has_room(self, key: str | None, limit: int) -> bool:
        """Whether a peer saying hello with `key` may join under a limit of `limit` peers (one
        already connected with that key always may: it is reconnecting)."""
        if self.participants < limit:
            return True
        return key is not None and identity_of(self.task.id, key) in self._peers

    @property
    def state(self) -> SessionState:
        return state_of(self.participants, self.task.training.min_participants)

    def status(self) -> Status:
        reported = 0 if self._round is None else len(self._round.digests)
        return Status(
            round=self._round_no,
            participants=self.participants,
            min_participants=self.task.training.min_participants,
            reported=reported,
            state=self.state,
        )

    def deadline_in(self) -> float | None:
        if self._round is None or self._round.timer is None:
            return None
        return self._round.timer.when() - asyncio.get_running_loop().time()

    # -- peers -------------------------------------------------------------------------------
    async def join(self, participant: Participant, key: str | None = None) -> str:
        """Add a peer, send it `Welcome` (no weights) and the others `Status`; start a round if
        there are enough peers and none is running. Returns its connection id."""
        if self._stopped:
            raise SessionError("the session is stopped")
        peer, replaced = self._peers.add(participant, key)
        connection, identity = peer.connection, peer.identity
        if replaced:  # the same peer on a new connection: the old one no longer counts
            self._drop_from_round(identity)  # the new connection has no plan: next round
        log.info(
            "[%s] %s joined as %s (%d peers)",
            self.task.id,
            who(participant),
            identity,
            self.participants,
        )
        welcome = Welcome(
            client_id=identity,
            task_id=self.task.id,
            round=self._round_no,
            participants=self.participants,
            min_participants=self.task.training.min_participants,
            state=self.state,
            capabilities=list(self.capabilities),
        )
        await participant.send(welcome)
        self._status.changed()
        await self._advance()
        return connection

    async def leave(self, connection: str) -> None:
        """Remove a peer (idempotent); its round goes on without it."""
        peer = self._peers.remove(connection)
        if peer is None:
            return
        log.info(
            "[%s] %s (%s) left (%d peers)",
            self.task.id,
            who(peer.participant),
            peer.identity,
            self.participants,
        )
        self._drop_from_round(peer.identity)
        self._status.changed()
        await self._advance()

    async def receive(self, connection: str, message: PeerMessage) -> None:
        """Handle a decentralized message from a joined connection."""
        peer = self._peers.at(connection)
        if peer is None:
            return
        identity = peer.identity
        if isinstance(message, Signal):
            await self._relay(peer, message)
            return
        if isinstance(message, DigestReport) and (
            self._round is None or message.round != self._round.number
        ):
            if message.round < self._round_no:  # what a (re)joining peer holds
                peer.holds = (message.round + 1, message.digest)
                await self._advance()  # a round may have waited for it
            return
        rnd = self._round
        if rnd is None or message.round != rnd.number:
            if message.round > self._round_no:
                text = f"round {message.round} has not started; the open round is {self._round_no}"
                await peer.participant.send(
                    ErrorMessage(code="future", message=text, round=self._round_no)
                )
            return  # an older round's report: harmless, ignored
        if identity not in rnd.neighbours or identity in rnd.gone:
            text = f"you are not a member of round {rnd.number}; wait for the next plan"
            await peer.participant.send(
                ErrorMessage(code="unexpected", message=text, round=rnd.number)
            )
            return
        own = set(rnd.neighbours[identity])
        if isinstance(message, Ready) and rnd.phase == "connecting":
            rnd.ready[identity] = set(message.connected) & own
        elif isinstance(message, Received) and rnd.phase == "exchanging":
            rnd.received[identity] = set(message.peers) & own
        elif isinstance(message, DigestReport) and rnd.phase == "combining":
            if identity in rnd.exchange:
                rnd.digests[identity] = message.digest
                self._status.changed()
        await self._advance()

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop pacing rounds (peers keep their models)."""
        del timeout
        self._stopped = True
        if self._round is not None and self._round.timer is not None:
            self._round.timer.cancel()
        await self._status.aclose()

    # -- rounds ------------------------------------------------------------------------------
    async def _advance(self) -> None:
        """Move the round on as far as the reports allow (called after every event)."""
        while not self._stopped:
            rnd = self._round
            if rnd is None:
                if self.participants < self.task.training.min_participants or not self._peers:
                    return
                if not self._may_start():
                    return
                await self._start_round()
            elif not await self._step(rnd):
                return

    def _may_start(self) -> bool:
        """Whether a round may start now that enough peers are here (always, here)."""
        return True

    async def _step(self, rnd: OpenRound) -> bool:
        """Start `rnd`'s next phase if its current one is done; whether it moved."""
        if rnd.phase == "connecting" and peer_rounds.connected(rnd, self._peers):
            await self._start_exchange(rnd, excluded=[])
        elif rnd.phase == "exchanging" and peer_rounds.exchanged(rnd, self._peers):
            await self._start_combining(rnd)
        elif rnd.phase == "combining" and peer_rounds.combined(rnd, self._peers):
            await self._close_round(rnd)
        else:
            return False
        return True

    async def _start_round(self) -> None:
        earliest = sorted(self._peers.values(), key=lambda p: p.order)[: self.max_members]
        members = sorted(p.identity for p in earliest)  # the rest wait for a later round
        graph = peer_graph(
            members,
            f"{self.task.id}:{self._round_no}".encode(),
            degree=self._degree,
            all_to_all_limit=self._limit,
        )
        number = self._round_no
        holders = [m for m in members if self._holds_model(self._peers[m])]
        if not holders and self._agreed != self._initial_digest:
            log.warning(
                "[%s] no peer holds the model of round %d; starting over from the initial model",
                self.task.id,
                number,
            )
            self._agreed = self._initial_digest
        from_initial = self._agreed == self._initial_digest  # every peer can fetch it by REST
        rnd = OpenRound(
            number=number,
            neighbours=dict(graph.neighbours),
            all_to_all=graph.all_to_all,
            digest=self._agreed,
            started=time.monotonic(),
        )
        self._round = rnd
        rnd.timer = self._timer(self._connect_s, rnd, "connecting")
        log.info(
            "[%s] round %d: %d peers, %s",
            self.task.id,
            number,
            len(members),
            "all to all" if graph.all_to_all else f"sparse, degree {self._degree}",
        )
        for m in members:
            peer = self._peers[m]
            source = None
            if not from_initial and not self._holds_model(peer):
                source = peer_rounds.model_source(holders, graph.neighbours[m], peer.order, number)
            plan = peer_rounds.round_plan(
                rnd,
                graph,
                m,
                lambda n: self._peers[n].participant,
                model_from=source,
                connect_s=self._connect_s,
                exchange_s=self._exchange_s,
            )
            await peer.participant.send(plan)

    def _holds_model(self, peer: Peer) -> bool:
        """Whether `peer` holds the open round's model (any model of it after a sparse round)."""
        return peer_rounds.holds_model(peer.holds, self._round_no, self._agreed)

    async def _start_exchange(self, rnd: OpenRound, excluded: list[str]) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        rnd.phase = "exchanging"
        rnd.exchange = peer_rounds.live(rnd, self._peers) - set(excluded)
        rnd.timer = self._timer(self._exchange_s, rnd, "exchanging")
        members = sorted(rnd.exchange)
        if excluded:
            log.warning(
                "[%s] round %d goes on without %s: channels to them did not open in %g s",
                self.task.id,
                rnd.number,
                ", ".join(excluded),
                self._connect_s,
            )
        for m in members:
            await self._peers[m].participant.send(Exchange(round=rnd.number, peers=members))
        for m in excluded:
            if m in self._peers:
                await self._peers[m].participant.send(Exchange(round=rnd.number, peers=[]))

    async def _start_combining(self, rnd: OpenRound) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        rnd.phase = "combining"
        live = peer_rounds.live(rnd, self._peers, rnd.exchange)
        rnd.contributors = peer_rounds.combine_set(rnd, live)
        rnd.timer = self._timer(self._combine_s, rnd, "combining")
        message = Combine(round=rnd.number, peers=rnd.contributors)
        for m in sorted(live):
            await self._peers[m].participant.send(message)

    async def _close_round(self, rnd: OpenRound) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        result = peer_rounds.outcome(rnd, self._peers)
        for m, digest in rnd.digests.items():
            if m in self._peers:
                self._peers[m].holds = (rnd.number + 1, digest)
        self._round_no = rnd.number + 1
        self._round = None
        self._agreed = result.agreed if rnd.all_to_all else None
        log.info(
            "[%s] round %d closed: %d contributors, %d digests%s",
            self.task.id,
            rnd.number,
            len(rnd.contributors),
            len(rnd.digests),
            f", {len(result.differ)} differ" if rnd.all_to_all and result.differ else "",
        )
        for m, holder in result.resyncs:
            assert result.agreed is not None
            resync = Resync(round=self._round_no, digest=result.agreed, peer=holder)
            await self._peers[m].participant.send(resync)
        record = peer_rounds.round_record(
            rnd, result, self._described(rnd), time.monotonic() - rnd.started
        )
        await self._save_record(record)
        self._status.changed()

    def _described(self, rnd: OpenRound) -> dict[str, Any]:
        """The `aggregation` of `rnd`'s history row: the task's rule settings."""
        del rnd
        return self.task.training.aggregation.model_dump(mode="json")

    async def _save_record(self, record: RoundRecord) -> None:
        if self._record is not None:
            try:
                await asyncio.to_thread(self._record, self.task.id, record)
            except Exception:  # the history row is informative; the peers hold the model
                log.exception("[%s] could not record round %d", self.task.id, record.round)

    def _timer(self, seconds: float, rnd: OpenRound, phase: Phase) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(seconds, lambda: self._spawn(self._expire(rnd, phase)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task kept until done (a failure is logged, not lost)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("[%s] a round deadline failed", self.task.id, exc_info=task.exception())

    async def _expire(self, rnd: OpenRound, phase: Phase) -> None:
        """A phase's time is up: go on with the peers that made it."""
        if self._round is not rnd or rnd.phase != phase or self._stopped:
            return
        if phase == "connecting":
            order = {identity: peer.order for identity, peer in self._peers.items()}
            await self._start_exchange(rnd, excluded=peer_rounds.excluded(rnd, self._peers, order))
        elif phase == "exchanging":
            log.warning(
                "[%s] round %d: updates still missing after %g s; combining what every peer holds",
                self.task.id,
                rnd.number,
                self._exchange_s,
            )
            await self._start_combining(rnd)
        elif phase == "combining":
            await self._close_round(rnd)
        await self._advance()

    def _drop_from_round(self, identity: str) -> None:
        rnd = self._round
        if rnd is None or identity not in rnd.neighbours:
            return
        rnd.gone.add(identity)
        if not peer_rounds.live(rnd, self._peers):  # nobody left in the round
            if rnd.timer is not None:
                rnd.timer.cancel()
            self._round = None

    # -- signalling ----------------------------------------------------------------------------
    async def _relay(self, peer: Peer, signal: Signal) -> None:
        now = time.monotonic()
        peer.signals = [t for t in peer.signals if now - t < 10.0]
        if len(peer.signals) >= SIGNALS_PER_10_S:
            text = f"more than {SIGNALS_PER_10_S} signals in 10 s; slow down"
            await peer.participant.send(ErrorMessage(code="unexpected", message=text))
            return
        peer.signals.append(now)
        target = self._peers.get(signal.peer)
        if target is None or target is peer:
            text = f"there is no peer {signal.peer!r} in this session"
            await peer.participant.send(ErrorMessage(code="unknown_peer", message=text))
            return
        await target.participant.send(
            Signal(peer=peer.identity, kind=signal.kind, data=signal.data)
        )

    async def _broadcast_status(self) -> None:
        """The session's status to every peer (`StatusCast` decides when)."""
        message = self.status()
        for peer in list(self._peers.values()):
            await peer.participant.send(message)
