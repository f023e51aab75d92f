"""Every error disco raises on purpose.

Each message says what was wrong and, where it helps, what to do about it.

    DiscoError
    ├── ConfigError            bad configuration value (file, environment, flag)
    ├── TaskError              invalid task definition, unknown task id
    ├── DataError              unreadable or inconsistent data files
    ├── ModelError             invalid portable model or unknown layer
    ├── WeightsError           weights container misuse: shape/name mismatch, NaN, bad file
    ├── PrivacyError           invalid privacy parameters
    ├── SecureAggregationError secure aggregation cannot go on: scale, key, share or mask refused
    ├── AggregationError       nothing to aggregate, inconsistent updates
    ├── ProtocolError          malformed or unexpected wire message
    │   └── VersionError       peer speaks another protocol version
    ├── ServerError            the server answered with an error or cannot be reached
    │   ├── AuthError          missing or wrong admin token
    │   └── UpdateRejected     the server refused an update (stale, duplicate, wrong shape, NaN)
    ├── SessionError           illegal state transition or a wait that timed out
    │   └── WaitExpired        a participant stopped waiting for the others (keeps its model)
    └── StoreError             damaged or unreadable server store (database, model files)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from disco.weights import Weights

__all__ = [
    "AggregationError",
    "AuthError",
    "ConfigError",
    "DataError",
    "DiscoError",
    "ModelError",
    "PrivacyError",
    "ProtocolError",
    "SecureAggregationError",
    "ServerError",
    "SessionError",
    "StoreError",
    "TaskError",
    "UpdateRejected",
    "VersionError",
    "WaitExpired",
    "WeightsError",
]


class DiscoError(Exception):
    """Base class of every error raised on purpose by disco."""


class ConfigError(DiscoError):
    """A configuration value is missing or invalid."""


class TaskError(DiscoError):
    """A task definition is invalid, or a task id is unknown."""


class DataError(DiscoError):
    """Data files cannot be read or do not match what the task expects."""


class ModelError(DiscoError):
    """A portable model is invalid or weights do not fit it."""


class WeightsError(DiscoError):
    """Weights have the wrong names, shapes or values."""


class PrivacyError(DiscoError):
    """Privacy parameters are invalid."""


class SecureAggregationError(DiscoError):
    """Secure aggregation cannot go on: the round's numbers do not fit the 32-bit ring, a key or
    share is malformed, or a share fails to decrypt."""


class AggregationError(DiscoError):
    """Updates cannot be aggregated."""


class ProtocolError(DiscoError):
    """A wire message is malformed or unexpected."""


class VersionError(ProtocolError):
    """The peer speaks an incompatible protocol version."""


class ServerError(DiscoError):
    """The server answered with an error or cannot be reached."""


class AuthError(ServerError):
    """The admin token is missing or wrong."""


class UpdateRejected(ServerError):
    """The server refused a model update; the message says why."""


class SessionError(DiscoError):
    """An illegal state transition, or a wait that timed out."""


class WaitExpired(SessionError):
    """A participant waited `wait_for_others_s` for the others and stopped.

    It keeps `weights`: the last global model the server combined (`kept == "global"`, trained
    for `shared_rounds` rounds), or its own locally trained model when nothing was combined since
    it joined (`kept == "local"`). `rounds_done` counts the rounds it completed.
    """

    def __init__(
        self,
        message: str,
        *,
        weights: Weights,
        kept: Literal["global", "local"],
        rounds_done: int,
        shared_rounds: int,
    ) -> None:
        super().__init__(message)
        self.weights = weights
        self.kept = kept
        self.rounds_done = rounds_done
        self.shared_rounds = shared_rounds

    def __reduce__(self) -> tuple[Any, ...]:  # its keyword arguments, across processes
        kwargs = {k: getattr(self, k) for k in ("weights", "kept", "rounds_done", "shared_rounds")}
        return (functools.partial(WaitExpired, **kwargs), (str(self),))


class StoreError(DiscoError):
    """The server's store (database or model files) is damaged or cannot be read."""
