"""The binary codec against the shared test vectors, hand-made frames and random round trips."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from disco.errors import ProtocolError, VersionError
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    ErrorCode,
    ErrorMessage,
    Leave,
    Message,
    Metrics,
    ModelUpdate,
    PeerInfo,
    RoundPlan,
    RoundResult,
    Welcome,
    decode,
    decode_weights,
    encode,
    encode_weights,
)
from disco.weights import Weights

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((VECTORS_DIR / f"protocol_v{PROTOCOL_VERSION}.json").read_text("utf-8"))
CLASSES = {
    cls.model_fields["type"].default: cls for cls in typing.get_args(typing.get_args(Message)[0])
}


# -- the JSON form of docs/protocol.md, read independently of the generator --------------------
def weights_from_json(obj: dict[str, Any]) -> Weights:
    """Weights from {"names", "shapes", "values" | "bits"}."""
    if "bits" in obj:
        flat = [np.array([int(b, 16) for b in t], dtype="<u4").view("<f4") for t in obj["bits"]]
    else:
        flat = [np.array(t, dtype=np.float64) for t in obj["values"]]
        for values in flat:  # every decimal given is exactly one float32
            assert np.array_equal(values.astype("<f4").astype(np.float64), values)
        flat = [v.astype("<f4") for v in flat]
    return Weights(
        (name, values.reshape(shape))
        for name, shape, values in zip(obj["names"], obj["shapes"], flat, strict=True)
    )


def _binary(value: Any) -> Any:
    """``{"bin": hex}`` as bytes, inside maps and lists too."""
    if isinstance(value, dict):
        if set(value) == {"bin"}:
            return bytes.fromhex(value["bin"])
        return {k: _binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary(v) for v in value]
    return value


def message_from_json(obj: dict[str, Any]) -> Any:
    """A message from its JSON form: absent fields take their defaults; binary is
    ``{"bin": hex}``."""
    fields = {k: v if k in ("weights", "metrics") else _binary(v) for k, v in obj.items()}
    cls = CLASSES[fields.pop("type")]
    if "weights" in fields:
        fields["weights"] = weights_from_json(fields["weights"])
    if "metrics" in fields:
        fields["metrics"] = Metrics(**fields["metrics"])
    if cls is RoundPlan:
        fields["peers"] = [PeerInfo(**p) for p in fields["peers"]]
    return cls(**fields)


def assert_same(decoded: Any, expected: Any) -> None:
    """Equal messages; weights bit for bit (so NaN compares equal to itself) and by digest."""
    assert type(decoded) is type(expected)
    for name in type(expected).model_fields:
        got, want = getattr(decoded, name), getattr(expected, name)
        if isinstance(want, Weights):
            assert got.shapes == want.shapes
            assert got.flatten().tobytes() == want.flatten().tobytes()
            assert got.digest() == want.digest()
            if want.is_finite():
                assert got == want
        else:
            assert got == want
            assert type(got) is type(want)


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


# -- the vectors file ---------------------------------------------------------------------------
def test_vectors_file_is_what_the_code_produces() -> None:
    script = VECTORS_DIR / "generate.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_vectors_cover_every_message_type_and_error_code() -> None:
    messages = [v["message"] for v in VECTORS["valid"]]
    assert {m["type"] for m in messages} == set(CLASSES)
    codes = {m["code"] for m in messages if m["type"] == "error"}
    assert codes == set(typing.get_args(ErrorCode))
    assert VECTORS["protocol_version"] == PROTOCOL_VERSION


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_encodes_to_its_bytes(vector: dict[str, Any]) -> None:
    message = message_from_json(vector["message"])

    frame = encode(message)

    assert frame.hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_decodes_to_its_message(vector: dict[str, Any]) -> None:
    expected = message_from_json(vector["message"])

    decoded = decode(bytes.fromhex(vector["hex"]))

    assert_same(decoded, expected)
    if "digest" in vector:
        assert decoded.weights.digest() == vector["digest"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_keys_are_sorted_at_every_level(vector: dict[str, Any]) -> None:
    def check(value: Any) -> None:
        if isinstance(value, list) and value and isinstance(value[0], tuple):  # a map
            keys = [k for k, _ in value]
            assert keys == sorted(keys)
            for _, v in value:
                check(v)

    check(msgpack.unpackb(bytes.fromhex(vector["hex"]), object_pairs_hook=list))


@pytest.mark.parametrize("vector", VECTORS["decode_only"], ids=_ids(VECTORS["decode_only"]))
def test_decode_only_vector_decodes_to_its_message(vector: dict[str, Any]) -> None:
    expected = message_from_json(vector["message"])

    decoded = decode(bytes.fromhex(vector["hex"]))

    assert_same(decoded, expected)
    assert encode(decoded).hex() != vector["hex"]  # not the canonical form


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vector_is_refused(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])

    with pytest.raises(ProtocolError) as info:
        decode(frame)

    assert vector["error"] in str(info.value)
    assert isinstance(info.value, VersionError) == (vector["code"] == "version")


# -- hand-made frames ---------------------------------------------------------------------------
def _update_frame(metrics: dict[str, Any]) -> bytes:
    weights = {"data": np.float32(0.5).tobytes(), "names": ["w"], "shapes": [[]]}
    obj = {
        "metrics": metrics,
        "num_samples": 3,
        "round": 2,
        "type": "update",
        "v": PROTOCOL_VERSION,
    }
    return msgpack.packb({**obj, "weights": weights}, use_bin_type=True)


def test_decode_accepts_integers_in_float_fields() -> None:
    frame = _update_frame({"train_loss": 1, "val_loss": -7, "val_accuracy": 2**40})

    message = decode(frame)

    assert message.metrics == Metrics(train_loss=1.0, val_loss=-7.0, val_accuracy=2.0**40)
    assert all(type(v) is float for v in message.metrics.model_dump().values() if v is not None)


def test_encode_writes_float_fields_as_float64_even_when_integral() -> None:
    metrics = Metrics(train_loss=1, val_loss=-0.0)
    update = ModelUpdate(round=0, num_samples=1, weights=Weights({"w": [1.0]}), metrics=metrics)

    frame = encode(update)

    assert b"\xaatrain_loss\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00" in frame
    assert b"\xa8val_loss\xcb\x80\x00\x00\x00\x00\x00\x00\x00" in frame


def test_decode_rejects_frames_above_max_size() -> None:
    frame = encode(ModelUpdate(round=0, num_samples=1, weights=Weights({"w": np.ones(1000)})))

    assert decode(frame, max_size=len(frame)).num_samples == 1
    with pytest.raises(ProtocolError, match=f"frame of {len(frame)} bytes exceeds the limit"):
        decode(frame, max_size=len(frame) - 1)
    assert DEFAULT_MAX_FRAME == 256 * 2**20


def test_decode_accepts_bytearray_and_memoryview_but_not_text() -> None:
    frame = encode(Leave())

    assert decode(bytearray(frame)) == Leave()
    assert decode(memoryview(frame)) == Leave()
    with pytest.raises(ProtocolError, match="frames must be binary"):
        decode(frame.decode("latin-1"))  # type: ignore[arg-type]


def test_weights_map_layout() -> None:
    weights = Weights({"k": [[1.0, 2.0], [3.0, 4.0]], "b": np.float32(-1.0)})

    wire = encode_weights(weights)

    assert list(wire) == ["data", "names", "shapes"]
    assert wire["names"] == ["k", "b"] and wire["shapes"] == [[2, 2], []]
    assert wire["data"] == np.array([1, 2, 3, 4, -1], "<f4").tobytes()  # C order, little-endian
    assert decode_weights(wire) == weights


def test_decoded_weights_are_read_only_float32() -> None:
    result = RoundResult(round=1, weights=Weights({"w": [1.0, 2.0]}), contributors=1, num_samples=1)
    frame = encode(result)

    array = decode(frame).weights["w"]

    assert array.dtype == np.dtype("<f4") and not array.flags.writeable


# -- round-trip properties ----------------------------------------------------------------------
def _random_weights(rng: np.random.Generator, max_values: int = 2_000) -> Weights:
    tensors = []
    for i in range(int(rng.integers(0, 6))):
        rank = int(rng.integers(0, 9))
        shape = tuple(int(d) for d in rng.integers(0, 5, size=rank))
        while math.prod(shape) > max_values:
            shape = shape[1:]
        kind = rng.integers(0, 3)
        if kind == 0:
            values = rng.standard_normal(shape)
        elif kind == 1:  # any bit pattern that is not NaN: exercises subnormals, inf, -0.0
            bits = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype("<u4")
            values = np.where(np.isnan(bits.view("<f4")), 0, bits.view("<f4"))
        else:
            values = rng.uniform(-3e38, 3e38, size=shape)
        tensors.append((f"layer_{i}.{'é' * int(rng.integers(0, 3))}w", values))
    return Weights(tensors)


def test_random_round_trips() -> None:
    rng = np.random.default_rng(20250101)
    for _ in range(200):
        weights = _random_weights(rng)
        metrics = Metrics(train_loss=float(rng.standard_normal()), val_accuracy=float(rng.random()))
        messages = [
            ModelUpdate(
                round=int(rng.integers(0, 2**53)),
                num_samples=int(rng.integers(1, 2**40)),
                weights=weights,
                metrics=metrics,
            ),
            Welcome(
                client_id=str(rng.integers(1 << 30)),
                task_id="t",
                round=int(rng.integers(0, 1000)),
                weights=weights,
                participants=int(rng.integers(0, 100)),
                min_participants=int(rng.integers(1, 100)),
                state="enough_participants",
            ),
        ]
        for message in messages:
            frame = encode(message)
            decoded = decode(frame)
            assert decoded == message
            assert decoded.weights.digest() == weights.digest()
            assert encode(decoded) == frame


def test_large_tensor_round_trip() -> None:
    rng = np.random.default_rng(7)
    weights = Weights(
        {"big": rng.standard_normal((1000, 1000)), "bias": rng.standard_normal(1000)}
    )  # about 4 MB
    update = ModelUpdate(round=5, num_samples=60_000, weights=weights)

    frame = encode(update)
    decoded = decode(frame)

    assert len(frame) < weights.nbytes + 200  # raw float32, no per-value overhead
    assert decoded == update
    assert decoded.weights.digest() == weights.digest()


# -- strict wire types and an unambiguous digest ----------------------------------------------
@pytest.mark.parametrize(
    "change",
    [{"v": True}, {"v": 1.0}, {"round": "2"}, {"round": True}, {"num_samples": 3.0}],
    ids=["bool-version", "float-version", "string-round", "bool-round", "float-num_samples"],
)
def test_decode_refuses_wrong_wire_types(change: dict[str, Any]) -> None:
    obj = msgpack.unpackb(_update_frame({}), raw=False)
    frame = msgpack.packb({**obj, **change}, use_bin_type=True)

    with pytest.raises(ProtocolError):
        decode(frame)


def test_digest_separates_names_from_values() -> None:
    ascii_bits = np.array([0x41414141], "<u4").view("<f4")  # the bytes b"AAAA"
    first = Weights([("a", ascii_bits.reshape(())), ("b", np.float32(2))])
    second = Weights([("aAAAAb", np.float32(2))])

    assert first != second
    assert first.digest() != second.digest()


def test_every_error_code_round_trips() -> None:
    for code in typing.get_args(ErrorCode):
        message = ErrorMessage(code=code, message=f"{code} — ✓")
        assert decode(encode(message)) == message
