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
model leaves, the next round starts over from the initial model. The class is pure asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from disco.decentralized.topology import ALL_TO_ALL_LIMIT, mixing_weights, peer_graph
from disco.errors import SessionError
from disco.protocol import (
    Combine,
    DigestReport,
    ErrorMessage,
    Exchange,
    PeerInfo,
    Ready,
    Received,
    Resync,
    RoundPlan,
    SessionState,
    Signal,
    Status,
    Welcome,
)
from disco.protocol.peers import MAX_ROUND_PEERS
from disco.server.session import Participant, identity_of
from disco.server.store import RoundRecord
from disco.task import Task
from disco.weights import Weights

__all__ = ["DecentralizedSession", "PeerMessage", "RecordRound"]

log = logging.getLogger("disco.server")

Phase = Literal["waiting", "connecting", "exchanging", "combining", "stopped"]
PeerMessage = Signal | Ready | Received | DigestReport
RecordRound = Callable[[str, RoundRecord], None]
"""Persist the history row of a closed round (no model); called in a worker thread."""

CONNECT_S = 30.0
COMBINE_S = 60.0
SIGNALS_PER_10_S = 400  # relayed signals per peer before it is told to slow down


@dataclass
class _Peer:
    connection: str
    identity: str
    participant: Participant
    order: int
    holds: tuple[int, str] | None = None  # the round whose model it holds, and that model's digest
    signals: list[float] = field(default_factory=list)


@dataclass
class _Round:
    number: int
    neighbours: dict[str, tuple[str, ...]]
    all_to_all: bool
    digest: str | None
    started: float
    phase: Phase = "connecting"
    ready: dict[str, set[str]] = field(default_factory=dict)
    exchange: set[str] = field(default_factory=set)
    received: dict[str, set[str]] = field(default_factory=dict)
    contributors: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # members that left (or came back anew) since
    digests: dict[str, str] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class DecentralizedSession:
    """Round pacing for one decentralized task; safe under concurrent joins, leaves, messages."""

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
        self._peers: dict[str, _Peer] = {}  # identity → peer
        self._by_connection: dict[str, str] = {}  # connection id → identity
        self._joined = 0
        self._round: _Round | None = None
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

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

    @property
    def state(self) -> SessionState:
        enough = self.participants >= self.task.training.min_participants
        return "enough_participants" if enough else "waiting_for_participants"

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
        connection = uuid.uuid4().hex[:12]
        identity = connection if key is None else identity_of(self.task.id, key)
        old = self._peers.get(identity)
        if old is not None:  # the same peer on a new connection: the old one no longer counts
            del self._by_connection[old.connection]
            self._drop_from_round(identity)  # the new connection has no plan: next round
        self._joined += 1
        holds = old.holds if old is not None else None
        self._peers[identity] = _Peer(connection, identity, participant, self._joined, holds)
        self._by_connection[connection] = identity
        log.info(
            "[%s] %s joined as %s (%d peers)",
            self.task.id,
            _who(participant),
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
            capabilities=["decentralized"],
        )
        await participant.send(welcome)
        await self._broadcast(self.status(), exclude=identity)
        await self._advance()
        return connection

    async def leave(self, connection: str) -> None:
        """Remove a peer (idempotent); its round goes on without it."""
        identity = self._by_connection.pop(connection, None)
        if identity is None:
            return
        peer = self._peers.pop(identity)
        log.info(
            "[%s] %s (%s) left (%d peers)",
            self.task.id,
            _who(peer.participant),
            identity,
            self.participants,
        )
        self._drop_from_round(identity)
        await self._broadcast(self.status())
        await self._advance()

    async def receive(self, connection: str, message: PeerMessage) -> None:
        """Handle a decentralized message from a joined connection."""
        identity = self._by_connection.get(connection)
        if identity is None:
            return
        peer = self._peers[identity]
        if isinstance(message, Signal):
            await self._relay(peer, message)
            return
        if isinstance(message, DigestReport) and (
            self._round is None or message.round != self._round.number
        ):
            if message.round < self._round_no:  # what a (re)joining peer holds
                peer.holds = (message.round + 1, message.digest)
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
                await self._broadcast(self.status())
        await self._advance()

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop pacing rounds (peers keep their models)."""
        del timeout
        self._stopped = True
        if self._round is not None and self._round.timer is not None:
            self._round.timer.cancel()

    # -- rounds ------------------------------------------------------------------------------
    async def _advance(self) -> None:
        """Move the round on as far as the reports allow (called after every event)."""
        while not self._stopped:
            rnd = self._round
            if rnd is None:
                if self.participants < self.task.training.min_participants or not self._peers:
                    return
                await self._start_round()
            elif rnd.phase == "connecting" and self._connected(rnd):
                await self._start_exchange(rnd, excluded=[])
            elif rnd.phase == "exchanging" and self._exchanged(rnd):
                await self._start_combining(rnd)
            elif rnd.phase == "combining" and self._combined(rnd):
                await self._close_round(rnd)
            else:
                return

    def _live(self, rnd: _Round, among: set[str] | None = None) -> set[str]:
        pool = set(rnd.neighbours) if among is None else among
        return {p for p in pool if p in self._peers and p not in rnd.gone}

    def _connected(self, rnd: _Round) -> bool:
        live = self._live(rnd)
        return all(self._missing(rnd, m, live) == set() for m in live)

    def _missing(self, rnd: _Round, member: str, live: set[str]) -> set[str]:
        """Live neighbours `member` has no channel with (both must report it open)."""
        mine = rnd.ready.get(member, set())
        return {
            n
            for n in rnd.neighbours[member]
            if n in live and not (n in mine and member in rnd.ready.get(n, set()))
        }

    def _exchanged(self, rnd: _Round) -> bool:
        live = self._live(rnd, rnd.exchange)
        return all(
            {n for n in rnd.neighbours[m] if n in live} <= rnd.received.get(m, set()) for m in live
        )

    def _combined(self, rnd: _Round) -> bool:
        return self._live(rnd, rnd.exchange) <= set(rnd.digests)

    async def _start_round(self) -> None:
        earliest = sorted(self._peers.values(), key=lambda p: p.order)[:MAX_ROUND_PEERS]
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
        rnd = _Round(
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
            weights = mixing_weights(graph, m)
            source = None
            if not from_initial and not self._holds_model(peer):
                pool = [h for h in holders if h in graph.neighbours[m]] or holders
                source = pool[(peer.order + number) % len(pool)]
            plan = RoundPlan(
                round=number,
                peers=[
                    PeerInfo(
                        id=n,
                        name=self._peers[n].participant.name,
                        kind=_kind(self._peers[n].participant.kind),
                        weight=weights[n],
                    )
                    for n in graph.neighbours[m]
                ],
                members=len(members),
                topology="all_to_all" if graph.all_to_all else "sparse",
                self_weight=weights[m],
                digest=rnd.digest,
                model_from=source,
                connect_s=self._connect_s,
                exchange_s=self._exchange_s,
            )
            await peer.participant.send(plan)

    def _holds_model(self, peer: _Peer) -> bool:
        """Whether `peer` holds the open round's model (any model of it after a sparse round)."""
        if peer.holds is None or peer.holds[0] != self._round_no:
            return False
        return self._agreed is None or peer.holds[1] == self._agreed

    async def _start_exchange(self, rnd: _Round, excluded: list[str]) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        rnd.phase = "exchanging"
        rnd.exchange = self._live(rnd) - set(excluded)
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

    async def _start_combining(self, rnd: _Round) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        rnd.phase = "combining"
        live = self._live(rnd, rnd.exchange)
        rnd.contributors = sorted(s for s in rnd.exchange if self._held_widely(rnd, s, live))
        rnd.timer = self._timer(self._combine_s, rnd, "combining")
        message = Combine(round=rnd.number, peers=rnd.contributors)
        for m in sorted(live):
            await self._peers[m].participant.send(message)

    @staticmethod
    def _held_widely(rnd: _Round, sender: str, live: set[str]) -> bool:
        """Whether more than half of the live members that should hold `sender`'s update (its
        neighbours, and itself) do: one peer that claims to hold nothing cannot shrink the round
        to its own update, and an update that reached only a few before its sender died is left
        out. A live member that lacks an update combined by the others ends with another digest
        and is told to resync."""
        expected = {m for m in live if m == sender or sender in rnd.neighbours[m]}
        held = {m for m in expected if m == sender or sender in rnd.received.get(m, set())}
        if sender in live and len(expected) <= 2:  # of two, neither can drop the other's update
            return True
        return 2 * len(held) > len(expected)

    async def _close_round(self, rnd: _Round) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        counts = Counter(rnd.digests.values())  # every member that reported, gone or not
        top = min(counts, key=lambda d: (-counts[d], d)) if counts else None
        # a strict majority, or no agreed model: a tie (one hostile peer of two) resyncs no one;
        # but a round that began from different models (after a sparse one, or one without a
        # majority) takes the most reported digest, so honest peers come together again
        majority = top is not None and 2 * counts[top] > len(rnd.digests)
        agreed = top if majority or (rnd.digest is None and len(rnd.digests) > 2) else None
        reported = {m: d for m, d in rnd.digests.items() if m in self._peers}  # still here
        if agreed is not None and agreed not in reported.values():
            # those who hold it have left: go on with the model most of those still here hold
            here = Counter(reported.values())
            agreed = min(here, key=lambda d: (-here[d], d)) if here else None
        for m, digest in rnd.digests.items():
            if m in self._peers:
                self._peers[m].holds = (rnd.number + 1, digest)
        self._round_no = rnd.number + 1
        self._round = None
        self._agreed = agreed if rnd.all_to_all else None
        differ = sorted(m for m, d in reported.items() if d != agreed)
        log.info(
            "[%s] round %d closed: %d contributors, %d digests%s",
            self.task.id,
            rnd.number,
            len(rnd.contributors),
            len(rnd.digests),
            f", {len(differ)} differ" if rnd.all_to_all and differ else "",
        )
        if rnd.all_to_all and agreed is not None:
            holders = sorted(m for m, d in reported.items() if d == agreed)
            for i, m in enumerate(differ):
                resync = Resync(round=self._round_no, digest=agreed, peer=holders[i % len(holders)])
                await self._peers[m].participant.send(resync)
        record = RoundRecord(
            round=rnd.number,
            contributors=len(rnd.contributors),
            num_samples=0,
            digest=top or "",
            duration_s=time.monotonic() - rnd.started,
            aggregation={
                **self.task.training.aggregation.model_dump(mode="json"),
                "topology": "all_to_all" if rnd.all_to_all else "sparse",
                "peers": len(rnd.exchange),
                "digests": len(rnd.digests),
                "agreeing": counts[top] if top is not None else 0,
            },
        )
        if self._record is not None:
            try:
                await asyncio.to_thread(self._record, self.task.id, record)
            except Exception:  # the history row is informative; the peers hold the model
                log.exception("[%s] could not record round %d", self.task.id, rnd.number)
        await self._broadcast(self.status())

    def _timer(self, seconds: float, rnd: _Round, phase: Phase) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            task = loop.create_task(self._expire(rnd, phase))
            self._tasks.add(task)  # kept until done; a failure is logged, not lost
            task.add_done_callback(self._done)

        return loop.call_later(seconds, fire)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("[%s] a round deadline failed", self.task.id, exc_info=task.exception())

    async def _expire(self, rnd: _Round, phase: Phase) -> None:
        """A phase's time is up: go on with the peers that made it."""
        if self._round is not rnd or rnd.phase != phase or self._stopped:
            return
        if phase == "connecting":
            live = self._live(rnd)
            out: list[str] = []
            while True:
                missing = {m: self._missing(rnd, m, live) for m in live}
                if not any(missing.values()):
                    break
                worst = max(
                    live,
                    key=lambda m: (len(missing[m]), m not in rnd.ready, self._peers[m].order),
                )
                live.discard(worst)
                out.append(worst)
            await self._start_exchange(rnd, excluded=out)
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
        if not self._live(rnd):  # nobody left in the round
            if rnd.timer is not None:
                rnd.timer.cancel()
            self._round = None

    # -- signalling ----------------------------------------------------------------------------
    async def _relay(self, peer: _Peer, signal: Signal) -> None:
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

    async def _broadcast(self, message: Status, exclude: str | None = None) -> None:
        for identity, peer in list(self._peers.items()):
            if identity != exclude:
                await peer.participant.send(message)


def _kind(kind: str) -> Literal["python", "browser"]:
    return "browser" if kind == "browser" else "python"


def _who(participant: Participant) -> str:
    return f"{participant.name or 'anonymous'}/{participant.kind}"
