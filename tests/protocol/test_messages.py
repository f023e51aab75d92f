"""Field validation of the protocol messages: bad values give errors that name the field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from disco.protocol import (
    ClientMessage,
    ErrorMessage,
    Hello,
    Leave,
    Message,
    Metrics,
    ModelUpdate,
    RoundResult,
    ServerMessage,
    Status,
    UpdateAck,
    Welcome,
)
from disco.weights import Weights

W = Weights({"w": [1.0, 2.0]})


def _update(**fields: Any) -> ModelUpdate:
    return ModelUpdate(**{"round": 0, "num_samples": 1, "weights": W, **fields})


def _status(**fields: Any) -> Status:
    base = {"round": 0, "participants": 1, "min_participants": 1, "reported": 0}
    return Status(**{**base, "state": "enough_participants", **fields})


@pytest.mark.parametrize(
    ("build", "field", "text"),
    [
        (lambda: _update(round=-1), "round", "greater than or equal to 0"),
        (lambda: _status(round=-3), "round", "greater than or equal to 0"),
        (lambda: UpdateAck(round=-1, reported=0, participants=0), "round", "greater than or equal"),
        (lambda: _update(num_samples=0), "num_samples", "greater than or equal to 1"),
        (lambda: _update(num_samples=2**40 + 1), "num_samples", "less than or equal to"),
        (lambda: Hello(task_id=""), "task_id", "at least 1 character"),
        (lambda: Hello(task_id="t" * 65), "task_id", "at most 64 characters"),
        (lambda: Hello(task_id="t", name="n" * 101), "name", "at most 100 characters"),
        (lambda: Hello(task_id="t", kind="android"), "kind", "'python' or 'browser'"),
        (lambda: Hello(task_id="t", participant_key="k" * 15), "participant_key", "at least 16"),
        (lambda: Hello(task_id="t", participant_key="k" * 129), "participant_key", "at most 128"),
        (lambda: Hello(task_id="t", participant_key="🚀" * 8), "participant_key", "at least 16"),
        (lambda: ErrorMessage(code="teapot", message="m"), "code", "Input should be 'malformed'"),
        (lambda: _status(state="full"), "state", "'waiting_for_participants' or"),
        (lambda: _status(min_participants=0), "min_participants", "greater than or equal to 1"),
        (
            lambda: RoundResult(round=0, weights=W, contributors=1, num_samples=1),
            "round",
            "greater than or equal to 1",
        ),
        (
            lambda: RoundResult(round=1, weights=W, contributors=0, num_samples=1),
            "contributors",
            "greater than or equal to 1",
        ),
        (lambda: Metrics(val_loss=math.nan), "val_loss", "metrics must be finite numbers"),
        (lambda: Metrics(train_loss=math.inf), "train_loss", "metrics must be finite numbers"),
        (lambda: _update(weights={"w": [1.0]}), "weights", "instance of Weights"),
        (lambda: Hello(), "task_id", "Field required"),
        (lambda: Hello(task_id="t", type="update"), "type", "Input should be 'hello'"),
    ],
)
def test_bad_field_names_the_field(build: Any, field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()

    message = str(info.value)
    assert field in message
    assert text in message


@pytest.mark.parametrize(
    "build",
    [
        lambda: Hello(task_id="t", room="lobby"),
        lambda: Leave(reason="bye"),
        lambda: _update(signature=b"x"),
        lambda: Metrics(f1=0.5),
        lambda: ErrorMessage(code="stale", message="m", detail="d"),
    ],
)
def test_extra_fields_are_refused(build: Any) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        build()


def test_messages_are_frozen() -> None:
    hello = Hello(task_id="t")

    with pytest.raises(ValidationError, match="frozen"):
        hello.task_id = "other"  # type: ignore[misc]


def test_defaults() -> None:
    assert Hello(task_id="t").model_dump() == {
        "type": "hello",
        "task_id": "t",
        "name": "",
        "kind": "python",
        "participant_key": None,
        "capabilities": [],
        "invitation": None,
    }
    assert _update().metrics == Metrics()
    assert ErrorMessage(code="malformed", message="m").round is None
    assert Metrics().model_dump() == dict.fromkeys(
        ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    )


def test_lengths_count_code_points() -> None:
    # The limits count Unicode code points (a JavaScript string's length counts UTF-16 units).
    assert Hello(task_id="🚀" * 64, name="🚀" * 100).name == "🚀" * 100


def test_type_tags_select_the_message() -> None:
    adapter = TypeAdapter[Any](Message)
    expected = {
        "hello": Hello,
        "update": ModelUpdate,
        "leave": Leave,
        "welcome": Welcome,
        "status": Status,
        "ack": UpdateAck,
        "result": RoundResult,
        "error": ErrorMessage,
    }
    for tag, cls in expected.items():
        assert cls.model_fields["type"].default == tag

    assert adapter.validate_python({"type": "leave"}) == Leave()
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        adapter.validate_python({"type": "join"})


def test_client_and_server_unions_are_disjoint() -> None:
    client, server = TypeAdapter[Any](ClientMessage), TypeAdapter[Any](ServerMessage)

    assert client.validate_python({"type": "hello", "task_id": "t"}) == Hello(task_id="t")
    with pytest.raises(ValidationError):
        client.validate_python({"type": "ack", "round": 0, "reported": 0, "participants": 0})
    with pytest.raises(ValidationError):
        server.validate_python({"type": "hello", "task_id": "t"})
