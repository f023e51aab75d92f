"""The federated wire protocol: message types and their binary codec (docs/protocol.md)."""

from disco.protocol.codec import DEFAULT_MAX_FRAME, decode, decode_weights, encode, encode_weights
from disco.protocol.messages import (
    PROTOCOL_VERSION,
    ClientMessage,
    ErrorCode,
    ErrorMessage,
    Hello,
    Leave,
    Message,
    Metrics,
    ModelUpdate,
    RoundResult,
    ServerMessage,
    SessionState,
    Status,
    UpdateAck,
    Welcome,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "ErrorCode",
    "ErrorMessage",
    "Hello",
    "Leave",
    "Message",
    "Metrics",
    "ModelUpdate",
    "RoundResult",
    "ServerMessage",
    "SessionState",
    "Status",
    "UpdateAck",
    "Welcome",
    "decode",
    "decode_weights",
    "encode",
    "encode_weights",
]
