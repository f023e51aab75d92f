"""The messages every session uses: joining, federated rounds, errors.

Messages are frozen pydantic models keyed by a string ``type``. They travel as binary WebSocket
frames encoded by `disco.protocol.codec` (msgpack envelope, tensors as raw little-endian float32).
The messages of decentralized sessions (capability ``decentralized``) are in
`disco.protocol.peers`. docs/protocol.md describes each message and the session's state
transitions.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from disco.weights import Weights

__all__ = [
    "CAPABILITIES",
    "PROTOCOL_VERSION",
    "Capability",
    "ErrorCode",
    "ErrorMessage",
    "Hello",
    "Leave",
    "Metrics",
    "ModelUpdate",
    "RoundResult",
    "SessionState",
    "Status",
    "UpdateAck",
    "Welcome",
]

PROTOCOL_VERSION = 2
"""Version carried by every frame; a peer speaking another version is refused."""

CAPABILITIES = ("decentralized", "secure_aggregation")
"""The optional parts of the protocol this implementation speaks (`Hello.capabilities`)."""

Capability = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""A capability name: lowercase ASCII letters, digits and ``_``, at most 32 characters."""
MAX_CAPABILITIES = 32

MAX_SAFE_INT = 2**53 - 1
"""Largest integer every implementation (JavaScript included) represents exactly."""

SessionState = Literal["waiting_for_participants", "enough_participants"]
ErrorCode = Literal[
    "malformed",  # the frame is not a valid message
    "version",  # unsupported protocol version
    "unexpected",  # a valid message that is not allowed now (e.g. update before hello)
    "unknown_task",
    "stale",  # update for a round that already closed
    "duplicate",  # second update from the same participant (same key) in one round
    "future",  # update for a round that has not started
    "shape",  # update does not fit the task's model
    "not_finite",  # update contains NaN or infinity
    "out_of_range",  # update the aggregation cannot take (e.g. a change beyond its bounds)
    "too_large",  # frame exceeds the server's size limit
    "unsupported",  # needs a capability this connection did not agree on
    "unknown_peer",  # a signal for a peer that is not in the session
    "forbidden",  # no valid invitation for this task on a private instance
    "limited",  # a limit of the server was reached (participants, connection rate)
    "restarting",  # the server is shutting down; reconnect and go on in the same round
]


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Metrics(_Msg):
    """Training metrics a participant reports with its update (NaN-free; absent = unknown)."""

    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None

    @field_validator("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("metrics must be finite numbers")
        return value


# -- client → server -------------------------------------------------------------------------
class Hello(_Msg):
    """First message of a participant: which task it joins and what it is."""

    type: Literal["hello"] = "hello"
    task_id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=100, description="display name, may be empty")
    kind: Literal["python", "browser"] = "python"
    participant_key: str | None = Field(
        default=None,
        min_length=16,
        max_length=128,
        description=(
            "a random secret the participant keeps for the whole run; reconnecting with it makes "
            "it the same participant (absent: every connection is a new participant)"
        ),
    )
    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=MAX_CAPABILITIES,
        description="optional parts of the protocol the client speaks (unknown names are ignored)",
    )
    invitation: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the invitation token that lets this participant join a private instance",
    )

    @field_validator("capabilities")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("capabilities must be distinct")
        return value


class ModelUpdate(_Msg):
    """The participant's weights after local training on the global model of `round`."""

    type: Literal["update"] = "update"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    num_samples: int = Field(
        ge=1, le=2**40, description="training samples behind the update (its FedAvg weight)"
    )
    weights: Weights
    metrics: Metrics = Metrics()


class Leave(_Msg):
    """The participant leaves on purpose (a dropped connection means the same)."""

    type: Literal["leave"] = "leave"


# -- server → client -------------------------------------------------------------------------
class Welcome(_Msg):
    """Answer to `Hello`: the participant's identity in the session and the current model."""

    type: Literal["welcome"] = "welcome"
    client_id: str = Field(
        description="the participant's identity in the session (the same after a reconnect "
        "with the same participant_key)"
    )
    task_id: str
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    weights: Weights | None = Field(
        default=None,
        description="the open round's global model; absent in a decentralized session, whose "
        "models travel between peers only",
    )
    participants: int = Field(ge=0, le=MAX_SAFE_INT)
    min_participants: int = Field(ge=1, le=MAX_SAFE_INT)
    state: SessionState
    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=MAX_CAPABILITIES,
        description="the capabilities in use on this connection (announced by the client and "
        "used by the session)",
    )


class Status(_Msg):
    """The session changed: someone joined or left, or an update arrived."""

    type: Literal["status"] = "status"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    participants: int = Field(ge=0, le=MAX_SAFE_INT)
    min_participants: int = Field(ge=1, le=MAX_SAFE_INT)
    reported: int = Field(ge=0, description="updates received in this round")
    state: SessionState


class UpdateAck(_Msg):
    """The server accepted an update for `round`; the participant now waits for the result."""

    type: Literal["ack"] = "ack"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    reported: int = Field(ge=0, le=MAX_SAFE_INT)
    participants: int = Field(ge=0, le=MAX_SAFE_INT)


class RoundResult(_Msg):
    """A round closed: the new global model, which opens round `round`."""

    type: Literal["result"] = "result"
    round: int = Field(ge=1, description="the round this model opens (closed round + 1)")
    weights: Weights
    contributors: int = Field(ge=1)
    num_samples: int = Field(ge=1)
    metrics: Metrics = Metrics()


class ErrorMessage(_Msg):
    """Something the participant sent was refused; nothing else changed."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    round: int | None = None
