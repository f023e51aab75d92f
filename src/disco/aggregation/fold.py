"""FedAvg's fold: add updates to int64 sums in fixed point, exactly (for `aggregation.mean`).

An update of weights w, made from the global model g, with sample count n, adds to each sum

    t = rint(float64(w − g) · n · 2^24)

(w − g in float32, as the update's change is; its product with n · 2^24 is exact in float64, so
the only rounding is rint's, to the nearest integer, ties to even). An update some of whose
changes are not below ``MAX_CHANGE`` (256) in absolute value, or not finite, is refused whole.

Two implementations compute the same sums bit for bit (the tests compare them on edge cases):
the compiled one-pass loop in ``_fold.c``, built when the package is installed (`KIND` is
"avx2" or "scalar"), and numpy, used where no C compiler was available (`KIND` is "numpy").
The compiled loop folds several updates a chunk of values at a time, so that the sums and the
global model are read from memory once for all of them rather than once per update.

Sums change modulo 2^64, as integer arithmetic on the machine does; an update is taken back by
folding it with −n, which restores the sums exactly. The caller bounds the counts so that no sum
ever really wraps (`disco.aggregation.mean`).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from disco.weights import Array

__all__ = [
    "KIND",
    "MAX_CHANGE",
    "MAX_COUNT",
    "NOT_FINITE",
    "OK",
    "OUT_OF_RANGE",
    "address",
    "fold",
    "fold_at",
    "fold_numpy",
    "terms",
]

MAX_CHANGE = 256.0
"""A change of one value in one round must be below this, in absolute value."""
SCALE = 2.0**24
"""Sums are in units of 2^-24 of a change (times the count)."""
OK, OUT_OF_RANGE, NOT_FINITE = 0, 1, 2
"""An update's status after a fold."""

Ints = npt.NDArray[np.int64]
Status = npt.NDArray[np.int32]

MAX_COUNT = 2**19
"""The largest count a fold takes: |change| < 2^8, so |change · count · 2^24| < 2^51, where
the compiled loop's rounding (adding 1.5 · 2^52) is exact."""
_CHUNK = 1 << 14  # values per step of the compiled loop: sums, model and updates stay in cache
_NUMPY_CHUNK = 1 << 17


def _load() -> tuple[ctypes.CDLL | None, str]:
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_fold{suffix}"
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            lib.disco_fold_kind.restype = ctypes.c_char_p
            lib.disco_fold_kind.argtypes = []
            pointer, size = ctypes.c_void_p, ctypes.c_size_t
            lib.disco_fold_force_scalar.restype = None
            lib.disco_fold_force_scalar.argtypes = [ctypes.c_int]
            lib.disco_fold.restype = None
            lib.disco_fold.argtypes = [
                size,
                pointer,
                pointer,
                size,
                pointer,
                pointer,
                pointer,
                size,
            ]
            return lib, lib.disco_fold_kind().decode()
    return None, "numpy"


_LIB, KIND = _load()
"""Which fold runs: "avx2" or "scalar" (compiled), or "numpy" (no compiled fold installed)."""


def fold(
    sums: Ints, base: Array | None, values: Sequence[Array], counts: Sequence[int], status: Status
) -> None:
    """Add each update `values[j]` (float32, the shape of `sums`; changes if `base` is None)
    with count `counts[j]` to the int64 `sums`, in place. `status[j]` (int32) is set to why an
    update was refused; a refused update adds nothing, and one refused on entry is skipped."""
    _check(sums, base, values, counts, status)
    if _LIB is None:
        fold_numpy(sums, base, values, counts, status)
        return
    k = len(values)
    pointers = (ctypes.c_void_p * k)(*(v.ctypes.data for v in values))
    count_array = np.asarray(counts, dtype=np.int64)
    _LIB.disco_fold(
        sums.size,
        None if base is None else base.ctypes.data,
        sums.ctypes.data,
        k,
        pointers,
        count_array.ctypes.data,
        status.ctypes.data,
        _CHUNK,
    )


def address(array: Array | Ints) -> int:
    """Where a contiguous float32 or int64 array's values start in memory, for `fold_at`."""
    if array.dtype not in (np.float32, np.int64) or not array.flags.c_contiguous:
        raise ValueError("the compiled fold reads contiguous float32 and int64 arrays only")
    return int(array.ctypes.data)


def fold_at(
    size: int, base: int, sums: int, values: Sequence[int], counts: Sequence[int]
) -> list[int]:
    """`fold` for callers that fold the same arrays many times (`disco.aggregation.sums`): the
    `size` values at these `address`es — the model (0: the values are changes), the int64 sums,
    each update's float32 values — with every update's status returned. The caller has checked
    the arrays: nothing is checked here. Only with a compiled fold (`KIND` is not "numpy")."""
    if _LIB is None:
        raise RuntimeError("the compiled fold is not installed: use fold()")
    k = len(values)
    status = (ctypes.c_int32 * k)()
    _LIB.disco_fold(
        size,
        base or None,
        sums,
        k,
        (ctypes.c_void_p * k)(*values),
        (ctypes.c_int64 * k)(*counts),
        status,
        _CHUNK,
    )
    return list(status)


@contextmanager
def scalar_loops() -> Iterator[None]:
    """Run the compiled scalar loops inside (as on a machine without AVX2), for the tests."""
    if _LIB is None:
        raise RuntimeError("the compiled fold is not installed")
    _LIB.disco_fold_force_scalar(1)
    try:
        yield
    finally:
        _LIB.disco_fold_force_scalar(0)


def fold_numpy(
    sums: Ints, base: Array | None, values: Sequence[Array], counts: Sequence[int], status: Status
) -> None:
    """`fold` in numpy (the same sums, bit for bit; several passes over memory)."""
    _check(sums, base, values, counts, status)
    with np.errstate(over="ignore", invalid="ignore"):
        for j, (w, count) in enumerate(zip(values, counts, strict=True)):
            if status[j] != OK:
                continue
            for start in range(0, sums.size, _NUMPY_CHUNK):
                stop = min(start + _NUMPY_CHUNK, sums.size)
                change = _change(w, base, start, stop)
                far = ~(np.abs(change) < MAX_CHANGE)
                if far.any():
                    first = start + int(np.argmax(far))
                    status[j] = OUT_OF_RANGE if np.isfinite(w[first]) else NOT_FINITE
                    _add_terms(sums, w, base, -count, 0, start)  # take back what was added
                    break
                _add_terms(sums, w, base, count, start, stop)


def terms(values: Array, base: Array | None, count: int) -> Ints:
    """What one update adds to the sums (int64), for values already checked to be in range."""
    out = np.zeros(values.size, dtype=np.int64)
    _add_terms(out, values, base, count, 0, values.size)
    return out


def _change(w: Array, base: Array | None, start: int, stop: int) -> Array:
    return w[start:stop] if base is None else np.subtract(w[start:stop], base[start:stop])


def _add_terms(sums: Ints, w: Array, base: Array | None, count: int, start: int, stop: int) -> None:
    for lo in range(start, stop, _NUMPY_CHUNK):
        hi = min(lo + _NUMPY_CHUNK, stop)
        t = _change(w, base, lo, hi).astype(np.float64)
        t *= count * SCALE
        np.rint(t, out=t)
        with np.errstate(over="ignore"):
            sums[lo:hi] += t.astype(np.int64)  # modulo 2^64, as the compiled loop


def _check(
    sums: Ints, base: Array | None, values: Sequence[Array], counts: Sequence[int], status: Status
) -> None:
    """The compiled loop trusts its arguments: check them all here."""
    if sums.dtype != np.int64 or sums.ndim != 1 or not sums.flags.c_contiguous:
        raise ValueError("sums must be a contiguous one-dimensional int64 array")
    if not sums.flags.writeable:
        raise ValueError("sums must be writeable")
    arrays = list(values) if base is None else [base, *values]
    for a in arrays:
        if a.dtype != np.float32 or a.shape != sums.shape or not a.flags.c_contiguous:
            raise ValueError(f"values must be contiguous float32 arrays of shape {sums.shape}")
    if len(counts) != len(values) or any(abs(c) > MAX_COUNT for c in counts):
        raise ValueError(f"one count per update, each at most {MAX_COUNT} in absolute value")
    if status.dtype != np.int32 or status.shape != (len(values),) or not status.flags.c_contiguous:
        raise ValueError("status must be a contiguous int32 array, one per update")
