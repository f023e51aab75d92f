"""Named float32 tensors: the one currency of model state in disco.

`Weights` is an immutable, ordered mapping from canonical weight names (``dense_1.kernel``) to
read-only little-endian float32 numpy arrays. Aggregators, privacy and the wire codec all work on
it; conversion to and from a framework model lives with the model realisation
(``disco.models.torch``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from disco.errors import WeightsError

__all__ = ["Array", "Weights"]

Array = npt.NDArray[np.float32]
_F32_LE = np.dtype("<f4")
_ArrayFn = Callable[[Array], npt.ArrayLike]
_BinaryFn = Callable[[Array, Array], npt.ArrayLike]


def _frozen(name: str, value: npt.ArrayLike) -> Array:
    """Return a read-only contiguous little-endian float32 copy of `value`."""
    try:
        arr = np.array(value, dtype=_F32_LE, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weight {name!r} is not numeric: {exc}") from exc
    arr.flags.writeable = False
    return arr


def _named(
    items: Iterable[tuple[str, npt.ArrayLike]], make: Callable[[str, npt.ArrayLike], Array]
) -> dict[str, Array]:
    """Name → `make(name, value)`, names checked: non-empty strings, no duplicates."""
    out: dict[str, Array] = {}
    for name, value in items:
        if not isinstance(name, str) or not name:
            raise WeightsError(f"weight names must be non-empty strings, got {name!r}")
        if name in out:
            raise WeightsError(f"duplicate weight name {name!r}")
        out[name] = make(name, value)
    return out


class Weights(Mapping[str, Array]):
    """An immutable ordered set of named float32 arrays."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Mapping[str, npt.ArrayLike] | Iterable[tuple[str, npt.ArrayLike]]):
        items = arrays.items() if isinstance(arrays, Mapping) else arrays
        self._arrays = _named(items, _frozen)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its arrays: read-only again where it is unpickled (another process)."""
        return (Weights, (list(self._arrays.items()),))

    @classmethod
    def adopt(cls, arrays: Iterable[tuple[str, Array]]) -> Weights:
        """Weights made of `arrays` without copying those that are already C-contiguous
        little-endian float32: the caller hands them over (they are made read-only) and must not
        keep writing to them. Saves a model-sized copy where memory is counted (aggregation)."""

        def owned(name: str, arr: npt.ArrayLike) -> Array:
            if isinstance(arr, np.ndarray) and arr.dtype == _F32_LE and arr.flags.c_contiguous:
                arr.flags.writeable = False
                return arr
            return _frozen(name, arr)

        weights = cls.__new__(cls)
        weights._arrays = _named(arrays, owned)
        return weights

    # -- mapping protocol -------------------------------------------------------------------
    def __getitem__(self, name: str) -> Array:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"Weights({len(self)} tensors, {self.size} values)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Weights):
            return NotImplemented
        return list(self.shapes.items()) == list(other.shapes.items()) and all(
            np.array_equal(a, other[n]) for n, a in self.items()
        )

    __hash__ = None  # type: ignore[assignment]

    # -- description ------------------------------------------------------------------------
    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape, in order."""
        return {n: tuple(a.shape) for n, a in self._arrays.items()}

    @property
    def size(self) -> int:
        """Total number of float32 values."""
        return sum(int(a.size) for a in self._arrays.values())

    @property
    def nbytes(self) -> int:
        """Total size of the values in bytes."""
        return 4 * self.size

    def digest(self) -> str:
        """SHA-256 over names, shapes and values: equal digests mean identical weights.

        For each tensor in order: name length (u32 LE), UTF-8 name, rank (u32 LE), dimensions
        (i64 LE each), values (float32 LE).
        """
        h = hashlib.sha256()
        for name, arr in self._arrays.items():
            encoded = name.encode()
            h.update(len(encoded).to_bytes(4, "little"))
            h.update(encoded)
            h.update(arr.ndim.to_bytes(4, "little"))
            h.update(np.asarray(arr.shape, dtype="<i8").tobytes())
            h.update(arr.tobytes())
        return h.hexdigest()

    def is_finite(self) -> bool:
        """True when no value is NaN or infinite."""
        return all(bool(np.isfinite(a).all()) for a in self._arrays.values())

    def check_like(self, reference: Weights, what: str = "weights") -> None:
        """Raise `WeightsError` unless names and shapes equal those of `reference`."""
        if list(self._arrays) != list(reference._arrays):
            missing = [n for n in reference if n not in self._arrays]
            extra = [n for n in self._arrays if n not in reference]
            if not missing and not extra:
                raise WeightsError(
                    f"{what} have the model's tensors in another order: expected "
                    f"{list(reference._arrays)}"
                )
            raise WeightsError(
                f"{what} do not match the model: missing {missing or 'none'}, "
                f"unexpected {extra or 'none'}"
            )
        for name, arr in self._arrays.items():
            want = reference[name].shape
            if arr.shape != want:
                raise WeightsError(
                    f"{what}: tensor {name!r} has shape {arr.shape}, the model expects {want}"
                )

    # -- arithmetic -------------------------------------------------------------------------
    def map(self, fn: _ArrayFn) -> Weights:
        """Apply `fn` to every array, keeping names."""
        return Weights((n, fn(a)) for n, a in self._arrays.items())

    def _zip(self, other: Weights, fn: _BinaryFn) -> Weights:
        other.check_like(self, "operand")
        return Weights((n, fn(a, other[n])) for n, a in self._arrays.items())

    def __add__(self, other: Weights) -> Weights:
        return self._zip(other, np.add)

    def __sub__(self, other: Weights) -> Weights:
        return self._zip(other, np.subtract)

    def __mul__(self, factor: float) -> Weights:
        f = np.float32(factor)
        return self.map(lambda a: a * f)

    __rmul__ = __mul__

    def l2_norm(self) -> float:
        """Euclidean norm of all values taken as one vector (computed in float64)."""
        total = 0.0
        for a in self._arrays.values():
            v = a.ravel().astype(np.float64)
            total += float(np.dot(v, v))
        return float(np.sqrt(total))

    def flatten(self) -> Array:
        """All values concatenated in order, as one vector."""
        if not self._arrays:
            return np.zeros(0, dtype=_F32_LE)
        return np.concatenate([a.ravel() for a in self._arrays.values()])

    def unflatten(self, vector: npt.ArrayLike) -> Weights:
        """Weights shaped like `self` from a flat vector of `self.size` values."""
        flat = np.asarray(vector, dtype=_F32_LE).ravel()
        if flat.size != self.size:
            raise WeightsError(f"flat vector has {flat.size} values, expected {self.size}")
        out, offset = [], 0
        for name, arr in self._arrays.items():
            out.append((name, flat[offset : offset + arr.size].reshape(arr.shape)))
            offset += arr.size
        return Weights(out)

    @classmethod
    def zeros_like(cls, reference: Weights) -> Weights:
        """Weights of zeros with the names and shapes of `reference`."""
        return reference.map(np.zeros_like)

    # -- files ------------------------------------------------------------------------------
    def to_safetensors(self) -> bytes:
        """The weights as safetensors bytes, tensor order kept in the ``disco.order`` metadata."""
        from safetensors.numpy import save

        return save(
            {n: np.ascontiguousarray(a) for n, a in self._arrays.items()},
            metadata={"disco.order": json.dumps(list(self._arrays))},
        )

    @classmethod
    def from_safetensors(cls, data: bytes) -> Weights:
        """Weights from safetensors bytes (order from the metadata when present)."""
        try:
            header_len = int.from_bytes(data[:8], "little")
            header = json.loads(data[8 : 8 + header_len])
            meta = header.get("__metadata__") or {}
            from safetensors.numpy import load

            tensors = load(data)
        except Exception as exc:  # safetensors raises several unrelated types
            raise WeightsError(f"not a valid safetensors model: {exc}") from exc
        names = list(tensors)
        try:
            order = json.loads(meta.get("disco.order", "null"))
        except ValueError:
            order = None
        if isinstance(order, list) and sorted(order) == sorted(names):
            names = order
        return cls((n, tensors[n]) for n in names)

    def save(self, path: str | Path) -> None:
        """Write the weights as a safetensors file, atomically (a temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(self.to_safetensors())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Weights:
        """Read weights written by `save` (or any float32 safetensors file)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
        try:
            return cls.from_safetensors(data)
        except WeightsError as exc:
            raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
