"""Who takes part in a session: its connections, and the participant identity each speaks for.

A connection is not a participant. A participant that says hello with a ``participant_key`` (a
secret it keeps for the whole run) is ``"p-" + sha256(f"{task}:{key}")[:16]`` (`identity_of`) in
the task's session, whichever connection it comes on: after a reconnect it is the same
participant to the round (its update counts once) and to the aggregator (which may remember it
across rounds). A connection without a key is a participant of its own, known by its connection
id (`new_connection` gives both). The federated and the decentralized session share these rules;
they differ in what a second connection of a live identity means:

* `Connections` (federated): two live connections with one key are one participant, connected as
  long as either is; "connected participants" counts identities.
* `Peers` (decentralized): a peer has one connection; a new one replaces the older, which
  no longer counts. The peer comes last in the join order again, and keeps what model it holds.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from disco.protocol import ServerMessage, SessionState
from disco.server.store import ContributorRecord

__all__ = [
    "Connections",
    "Joined",
    "Participant",
    "Peer",
    "Peers",
    "identity_of",
    "new_connection",
    "state_of",
    "who",
]

_KNOWN_LIMIT = 100_000  # keyed identities remembered for "rejoined" log lines (most recent)


class Participant(Protocol):
    """A connected client as the session sees it."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    async def send(self, message: ServerMessage) -> None:
        """Deliver one message (should not block for long; it is bounded by a timeout)."""


def identity_of(task_id: str, key: str) -> str:
    """The participant's identity in task `task_id`'s session, from its ``participant_key``."""
    return "p-" + hashlib.sha256(f"{task_id}:{key}".encode()).hexdigest()[:16]


def new_connection(task_id: str, key: str | None) -> tuple[str, str]:
    """A new connection id, and the identity the connection speaks for: `identity_of` its key,
    or without a key the connection id itself."""
    connection = uuid.uuid4().hex[:12]
    return connection, connection if key is None else identity_of(task_id, key)


def who(someone: Participant | ContributorRecord) -> str:
    """``name/kind`` for logs, with unprintable characters replaced."""
    name = "".join(c if c.isprintable() else "?" for c in someone.name) or "anonymous"
    return f"{name}/{someone.kind}"


def state_of(participants: int, min_participants: int) -> SessionState:
    """Whether enough participants are connected to train."""
    enough = participants >= min_participants
    return "enough_participants" if enough else "waiting_for_participants"


@dataclass(frozen=True)
class Joined:
    """A connection `Connections.add` took in."""

    connection: str
    identity: str
    back: bool  # a keyed identity seen before: a reconnect (or a second connection)
    also: bool  # another connection of the same identity is live


class Connections:
    """The connections of one federated session and the identities they are.

    Connections are keyed by connection id (what the WebSocket layer holds), everything else by
    identity. An identity is connected while any of its connections is.
    """

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._connections: dict[str, Participant] = {}  # connection id → its participant
        self._identity: dict[str, str] = {}  # connection id → identity
        self._live: dict[str, int] = {}  # identity → its live connections
        self._keyed: set[str] = set()  # connections that said hello with a key
        self._known: dict[str, None] = {}  # keyed identities seen, oldest first (for the logs)

    @property
    def identities(self) -> KeysView[str]:
        """The connected identities (one may have several connections)."""
        return self._live.keys()

    def participant(self, connection: str) -> Participant | None:
        """The participant on `connection` (None: not joined, or gone)."""
        return self._connections.get(connection)

    def identity(self, connection: str) -> str:
        """The identity a joined `connection` speaks for."""
        return self._identity[connection]

    def keyed(self, connection: str) -> bool:
        """Whether `connection` said hello with a ``participant_key``."""
        return connection in self._keyed

    def participants(self, exclude: str | None = None) -> list[Participant]:
        """The participant of every connection but `exclude` (a connection id)."""
        return [p for c, p in self._connections.items() if c != exclude]

    def participants_of(self, identity: str) -> list[Participant]:
        """The participant of every live connection of `identity`."""
        return [p for c, p in self._connections.items() if self._identity[c] == identity]

    def add(self, participant: Participant, key: str | None) -> Joined:
        """Take in a new connection of `participant`: the identity of `key`, or a new one."""
        connection, identity = new_connection(self.task_id, key)
        back = identity in self._known
        also = identity in self._live  # another live connection of the same one
        self._connections[connection] = participant
        self._identity[connection] = identity
        self._live[identity] = self._live.get(identity, 0) + 1
        if key is not None:
            self._keyed.add(connection)
            self._known.pop(identity, None)
            self._known[identity] = None  # now the most recent
            if len(self._known) > _KNOWN_LIMIT:
                del self._known[next(iter(self._known))]
        return Joined(connection, identity, back, also)

    def remove(self, connection: str) -> tuple[Participant, str] | None:
        """Drop `connection` (idempotent: None when it is not here); its participant and the
        identity it spoke for."""
        participant = self._connections.pop(connection, None)
        if participant is None:
            return None
        identity = self._identity.pop(connection)
        self._live[identity] -= 1
        if not self._live[identity]:
            del self._live[identity]
        self._keyed.discard(connection)
        return participant, identity


@dataclass
class Peer:
    """A peer of a decentralized session, on its one live connection."""

    connection: str
    identity: str
    participant: Participant
    order: int  # when it joined: the earliest peers take part in a round first
    holds: tuple[int, str] | None = None  # the round whose model it holds, and that model's digest
    signals: list[float] = field(default_factory=list)  # when it sent its recent signals


class Peers(Mapping[str, Peer]):
    """The peers of one decentralized session, by identity (a `Mapping`); one connection each."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._peers: dict[str, Peer] = {}  # identity → peer
        self._by_connection: dict[str, str] = {}  # connection id → identity
        self._joined = 0

    def __getitem__(self, identity: str) -> Peer:
        return self._peers[identity]

    def __iter__(self) -> Iterator[str]:
        return iter(self._peers)

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, identity: object) -> bool:
        return identity in self._peers

    def at(self, connection: str) -> Peer | None:
        """The peer on `connection` (None: not joined, replaced, or gone)."""
        identity = self._by_connection.get(connection)
        return None if identity is None else self._peers[identity]

    def add(self, participant: Participant, key: str | None) -> tuple[Peer, bool]:
        """Take in a new connection of `participant`; the peer, and whether it replaced an older
        connection of the same peer (which no longer counts)."""
        connection, identity = new_connection(self.task_id, key)
        old = self._peers.get(identity)
        if old is not None:
            del self._by_connection[old.connection]
        self._joined += 1
        holds = old.holds if old is not None else None
        peer = Peer(connection, identity, participant, self._joined, holds)
        self._peers[identity] = peer
        self._by_connection[connection] = identity
        return peer, old is not None

    def remove(self, connection: str) -> Peer | None:
        """Drop `connection`'s peer (idempotent: None when no peer is on it)."""
        identity = self._by_connection.pop(connection, None)
        return None if identity is None else self._peers.pop(identity)
