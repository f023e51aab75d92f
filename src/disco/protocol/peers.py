"""The messages of decentralized sessions (capability ``decentralized``).

In a decentralized session the server never sees a model. It introduces the peers of each round,
relays their WebRTC signalling, holds a barrier until every peer's channels are open, decides which
updates every peer combines, and compares the digests the peers report:

    server → peer   plan      the round's peers (this one's neighbours), mixing weights, deadlines
    peer ↔ server   signal    SDP offer/answer or ICE candidate, relayed to/from another peer
    peer → server   ready     the round's peers this one has an open channel to
    server → peer   exchange  the barrier is passed: send the update to these peers
    peer → server   received  whose updates of the round this peer holds (repeated as it grows)
    server → peer   combine   combine exactly these peers' updates
    peer → server   digest    the digest of the model the peer ends the round with (a digest only)
    server → peer   resync    your model differs: fetch the agreed one from this peer

Between two peers, on their own channel (`disco.transport.Channel`), never through the server:

    peer_update     the sender's trained weights for the round, with their SHA-256 digest
    peer_ack        the update arrived whole and its digest matches
    model_request   send me the model that opens a round (a late joiner, a peer told to resync)
    model           that model, with its digest
    error           the request cannot be served (e.g. this peer holds another round's model)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from disco.protocol.messages import MAX_SAFE_INT, Metrics, _Msg
from disco.weights import Weights

__all__ = [
    "COMBINE_S",
    "CONNECT_S",
    "MAX_ROUND_PEERS",
    "Combine",
    "DigestReport",
    "Exchange",
    "ModelRequest",
    "PeerAck",
    "PeerInfo",
    "PeerModel",
    "PeerUpdate",
    "Ready",
    "Received",
    "Resync",
    "RoundPlan",
    "Signal",
]

CONNECT_S = 30.0
"""How long the server gives a round's channels to open (the plan's `connect_s`; §18.5)."""
COMBINE_S = 60.0
"""How long the server waits for a round's digests after `combine` (§18.5)."""
MAX_ROUND_PEERS = 10_000
"""Most peers one round may list (the largest `min_participants` a task may ask for)."""
MAX_SIGNAL = 65_536
"""Longest signalling payload (code points): an SDP with every candidate fits easily."""

PeerId = Field(min_length=1, max_length=64)
Digest = Field(pattern=r"^[0-9a-f]{64}$", description="lowercase hex SHA-256 (docs §12)")
PeerIds = Field(max_length=MAX_ROUND_PEERS)


def _distinct(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("peer ids must be distinct")
    return value


class PeerInfo(_Msg):
    """One peer of a round as another peer sees it."""

    id: str = PeerId
    name: str = Field(default="", max_length=100)
    kind: Literal["python", "browser"] = "python"
    weight: float = Field(ge=0, le=1, description="its mixing weight in a sparse round")


# -- server → peer ---------------------------------------------------------------------------
class RoundPlan(_Msg):
    """Round `round` starts: train on its model, open channels to `peers`."""

    type: Literal["plan"] = "plan"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    peers: list[PeerInfo] = Field(max_length=MAX_ROUND_PEERS, description="this one's neighbours")
    members: int = Field(ge=1, le=MAX_ROUND_PEERS, description="peers in the round, it included")
    topology: Literal["all_to_all", "sparse"]
    self_weight: float = Field(ge=0, le=1, description="its own mixing weight (sparse rounds)")
    digest: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="the digest of the round's model"
    )
    model_from: str | None = Field(
        default=None, min_length=1, max_length=64, description="fetch the round's model from it"
    )
    connect_s: float = Field(gt=0, le=86_400, description="time to open the channels")
    exchange_s: float = Field(gt=0, le=86_400, description="time for updates after `exchange`")

    @field_validator("peers")
    @classmethod
    def _distinct_peers(cls, value: list[PeerInfo]) -> list[PeerInfo]:
        _distinct([p.id for p in value])
        return value


class Signal(_Msg):
    """WebRTC signalling, relayed by the server: `peer` is the recipient when a peer sends it,
    the sender when the server delivers it."""

    type: Literal["signal"] = "signal"
    peer: str = PeerId
    kind: Literal["offer", "answer", "candidate"]
    data: str = Field(max_length=MAX_SIGNAL)


class Exchange(_Msg):
    """The barrier is passed: every listed peer has its channels open; exchange with them."""

    type: Literal["exchange"] = "exchange"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    peers: list[str] = PeerIds

    _check = field_validator("peers")(_distinct)


class Combine(_Msg):
    """Combine exactly these peers' updates of `round` (every one of them reached every peer)."""

    type: Literal["combine"] = "combine"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    peers: list[str] = PeerIds

    _check = field_validator("peers")(_distinct)


class Resync(_Msg):
    """This peer's model after `round` differs from the agreed one: fetch it from `peer`."""

    type: Literal["resync"] = "resync"
    round: int = Field(ge=1, le=MAX_SAFE_INT, description="the round the model opens")
    digest: str = Digest
    peer: str = PeerId


# -- peer → server ---------------------------------------------------------------------------
class Ready(_Msg):
    """The round's peers this one has an open channel to."""

    type: Literal["ready"] = "ready"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    connected: list[str] = PeerIds

    _check = field_validator("connected")(_distinct)


class Received(_Msg):
    """The peers whose updates of `round` this one holds, whole and checked (its own excluded)."""

    type: Literal["received"] = "received"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    peers: list[str] = PeerIds

    _check = field_validator("peers")(_distinct)


class DigestReport(_Msg):
    """The digest of the model this peer ends round `round` with (the model of round+1)."""

    type: Literal["digest"] = "digest"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    digest: str = Digest


# -- peer ↔ peer -----------------------------------------------------------------------------
class PeerUpdate(_Msg):
    """The sender's weights after training on round `round`'s model."""

    type: Literal["peer_update"] = "peer_update"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    num_samples: int = Field(ge=1, le=2**40)
    weights: Weights
    digest: str = Digest
    metrics: Metrics = Metrics()


class PeerAck(_Msg):
    """The update of `round` with `digest` arrived whole."""

    type: Literal["peer_ack"] = "peer_ack"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    digest: str = Digest


class ModelRequest(_Msg):
    """Send me the model that opens round `round`."""

    type: Literal["model_request"] = "model_request"
    round: int = Field(ge=0, le=MAX_SAFE_INT)


class PeerModel(_Msg):
    """The model that opens round `round`."""

    type: Literal["model"] = "model"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    weights: Weights
    digest: str = Digest
