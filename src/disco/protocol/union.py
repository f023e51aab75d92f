"""Which messages travel where: client → server, server → client, peer ↔ peer."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from disco.protocol.messages import (
    ErrorMessage,
    Hello,
    Leave,
    ModelUpdate,
    RoundResult,
    Status,
    UpdateAck,
    Welcome,
)
from disco.protocol.peers import (
    Combine,
    DigestReport,
    Exchange,
    ModelRequest,
    PeerAck,
    PeerModel,
    PeerUpdate,
    Ready,
    Received,
    Resync,
    RoundPlan,
    Signal,
)
from disco.protocol.secure import (
    PeerMasked,
    SecureAbort,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureReveals,
    SecureSetup,
    SecureShares,
    SecureUnmask,
)

__all__ = [
    "DECENTRALIZED_TYPES",
    "PEER_TYPES",
    "ClientMessage",
    "Message",
    "PeerMessage",
    "ServerMessage",
]

ClientMessage = Annotated[
    Hello
    | ModelUpdate
    | Leave
    | Signal
    | Ready
    | Received
    | DigestReport
    | SecureKeys
    | SecureShares
    | SecureInput
    | SecureReveal,
    Field(discriminator="type"),
]
ServerMessage = Annotated[
    Welcome
    | Status
    | UpdateAck
    | RoundResult
    | ErrorMessage
    | RoundPlan
    | Signal
    | Exchange
    | Combine
    | Resync
    | SecureSetup
    | SecureInbox
    | SecureUnmask
    | SecureAbort
    | SecureReveals,
    Field(discriminator="type"),
]
PeerMessage = Annotated[
    PeerUpdate | PeerAck | ModelRequest | PeerModel | PeerMasked | ErrorMessage,
    Field(discriminator="type"),
]
Message = Annotated[
    Hello
    | ModelUpdate
    | Leave
    | Welcome
    | Status
    | UpdateAck
    | RoundResult
    | ErrorMessage
    | RoundPlan
    | Signal
    | Ready
    | Exchange
    | Received
    | Combine
    | DigestReport
    | Resync
    | PeerUpdate
    | PeerAck
    | ModelRequest
    | PeerModel
    | SecureKeys
    | SecureSetup
    | SecureShares
    | SecureInbox
    | SecureInput
    | SecureUnmask
    | SecureReveal
    | SecureAbort
    | SecureReveals
    | PeerMasked,
    Field(discriminator="type"),
]
"""Every message of the protocol; `disco.protocol.decode` returns one of them."""

DECENTRALIZED_TYPES = frozenset(
    {"plan", "signal", "ready", "exchange", "received", "combine", "digest", "resync"}
)
"""Message types between server and client that belong to capability ``decentralized``."""
PEER_TYPES = frozenset({"peer_update", "peer_ack", "model_request", "model", "peer_masked"})
"""Message types that travel only between two peers (``error`` may too)."""
