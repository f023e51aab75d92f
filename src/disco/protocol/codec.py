"""Binary encoding of protocol messages: a msgpack map, tensors as raw little-endian float32.

A frame is one msgpack map with string keys in sorted order: ``v`` (protocol version), ``type``
and the message's fields; fields whose value is absent (None) are left out. A `Weights` value is a
map ``{"data": bin, "names": [str], "shapes": [[int]]}`` where ``data`` holds every tensor's
values, in order, as little-endian float32. Float fields are msgpack float64; a decoder accepts an
integer where a float is expected (JavaScript encoders write 1.0 as 1).
"""

from __future__ import annotations

import math
from typing import Any, cast

import msgpack
import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from disco.errors import ProtocolError, VersionError
from disco.protocol.messages import PROTOCOL_VERSION
from disco.protocol.union import Message
from disco.weights import Weights

__all__ = ["DEFAULT_MAX_FRAME", "decode", "decode_weights", "encode", "encode_weights"]

DEFAULT_MAX_FRAME = 256 * 2**20
"""Largest frame accepted by default (256 MiB)."""

_MESSAGE = TypeAdapter[Any](Message)
_MAX_TENSORS = 100_000
_MAX_RANK = 8


def encode_weights(weights: Weights) -> dict[str, Any]:
    """The msgpack-ready map of a `Weights` value."""
    parts = [np.ascontiguousarray(a, dtype="<f4").tobytes() for a in weights.values()]
    return {
        "data": b"".join(parts),
        "names": list(weights.keys()),
        "shapes": [list(s) for s in weights.shapes.values()],
    }


def decode_weights(value: Any) -> Weights:
    """A `Weights` value from its map; raise `ProtocolError` on any inconsistency."""
    if not isinstance(value, dict) or set(value) != {"data", "names", "shapes"}:
        raise ProtocolError("weights must be a map with exactly 'data', 'names' and 'shapes'")
    names, shapes, data = value["names"], value["shapes"], value["data"]
    if not isinstance(names, list) or not isinstance(shapes, list) or not isinstance(data, bytes):
        raise ProtocolError("weights: 'names' and 'shapes' must be arrays, 'data' binary")
    if len(names) > _MAX_TENSORS:
        raise ProtocolError(f"weights: {len(names)} tensors exceed the limit of {_MAX_TENSORS}")
    if len(names) != len(shapes):
        raise ProtocolError(f"weights: {len(names)} names but {len(shapes)} shapes")
    sizes = []
    for name, shape in zip(names, shapes, strict=True):
        if not isinstance(name, str) or not isinstance(shape, list) or len(shape) > _MAX_RANK:
            raise ProtocolError(f"weights: bad name or shape for tensor {name!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ProtocolError(f"weights: tensor {name!r} has invalid shape {shape}")
        sizes.append(math.prod(shape))
    if 4 * sum(sizes) != len(data):
        raise ProtocolError(
            f"weights: shapes need {4 * sum(sizes)} bytes of data, the frame has {len(data)}"
        )
    flat = np.frombuffer(data, dtype="<f4")
    out, offset = [], 0
    for name, shape, size in zip(names, shapes, sizes, strict=True):
        out.append((name, flat[offset : offset + size].reshape(shape)))
        offset += size
    try:
        return Weights(out)
    except Exception as exc:  # duplicate names
        raise ProtocolError(f"weights: {exc}") from exc


def _to_wire(value: Any) -> Any:
    if isinstance(value, Weights):
        return encode_weights(value)
    if isinstance(value, BaseModel):  # a nested message part: metrics, a peer of a round
        return _to_wire({name: getattr(value, name) for name in type(value).model_fields})
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value


def encode(message: Any) -> bytes:
    """Encode a protocol message as one binary frame."""
    fields = {name: getattr(message, name) for name in type(message).model_fields}
    fields["v"] = PROTOCOL_VERSION
    return cast(bytes, msgpack.packb(_to_wire(fields), use_bin_type=True))


def decode(frame: bytes, max_size: int = DEFAULT_MAX_FRAME) -> Any:
    """Decode one binary frame into a message; raise `ProtocolError` saying what is wrong."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError("frames must be binary")
    if len(frame) > max_size:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds the limit of {max_size}")
    try:
        obj = msgpack.unpackb(
            frame, raw=False, strict_map_key=True, max_bin_len=max_size, use_list=True
        )
    except Exception as exc:  # msgpack raises several unrelated types
        detail = str(exc) or type(exc).__name__
        raise ProtocolError(f"frame is not valid msgpack: {detail}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("frame must be a msgpack map")
    version = obj.pop("v", None)
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise VersionError(
            f"protocol version {version!r} is not supported; this peer speaks {PROTOCOL_VERSION}"
        )
    if "weights" in obj:
        obj["weights"] = decode_weights(obj["weights"])
    try:
        return _MESSAGE.validate_python(obj, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()
        )
        raise ProtocolError(f"invalid {obj.get('type', 'untyped')!r} message: {problems}") from exc
