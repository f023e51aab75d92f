"""In-memory datasets: float32 inputs with their labels, and the splits training needs.

A `Dataset` is what every loader returns and what the trainer consumes: ``x`` of shape
``(N, *input_shape)`` in float32, ``y`` of shape ``(N,)`` holding int64 class ids for
classification or float32 targets for regression. It is immutable; every operation returns a
new one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from disco.errors import DataError

__all__ = ["Dataset", "Inputs", "stratified_split_indices"]


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")


def _check_finite(x: np.ndarray, what: str) -> None:
    if x.size and not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise DataError(f"{what} contains NaN or infinite values (first at sample {bad})")


def _validation_count(n: int, fraction: float) -> int:
    """How many of ``n`` samples go to validation: rounded, at least one, never all."""
    if fraction == 0.0 or n < 2:
        return 0
    return min(max(1, round(n * fraction)), n - 1)


def stratified_split_indices(
    y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (kept, held out) with ``fraction`` held out per class.

    Integer ``y`` is stratified: each class contributes its share of the held-out part
    (largest-remainder rounding, so the total is exact) and keeps at least one sample on the
    kept side when it has one. Float ``y`` (regression) is a plain shuffled cut. Both index
    arrays are sorted; the result depends only on ``y``, ``fraction`` and ``seed``.
    """
    _check_fraction(fraction)
    n = len(y)
    n_val = _validation_count(n, fraction)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if n_val == 0:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    if y.dtype.kind not in "iub":
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    classes, counts = np.unique(y, return_counts=True)
    caps = counts - 1  # every class keeps one sample for training
    ideal = np.minimum(counts * (n_val / n), caps)
    take = np.floor(ideal).astype(np.int64)
    # hand out the remaining validation slots by largest fractional part, within caps
    for i in np.argsort(-(ideal - take), kind="stable"):
        if take.sum() >= n_val:
            break
        if take[i] < caps[i]:
            take[i] += 1
    kept: list[np.ndarray] = []
    held: list[np.ndarray] = []
    shuffled_y = y[order]
    for cls, k in zip(classes, take, strict=True):
        members = order[shuffled_y == cls]
        held.append(members[:k])
        kept.append(members[k:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples ``x`` (float32, ``(N, *input_shape)``) with labels ``y`` (``(N,)``).

    ``y`` is int64 class ids for classification, float32 for regression. ``sources``
    optionally names where each sample came from (an image file, a CSV row).
    """

    x: np.ndarray
    y: np.ndarray
    sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        if x.ndim < 2:
            raise DataError(f"x must have shape (N, *input_shape), got {x.shape}")
        if y.ndim != 1:
            raise DataError(f"y must have shape (N,), got {y.shape}")
        if len(x) != len(y):
            raise DataError(f"x has {len(x)} samples but y has {len(y)}")
        if self.sources is not None and len(self.sources) != len(x):
            raise DataError(f"{len(self.sources)} sources for {len(x)} samples")
        if y.dtype.kind in "iub":
            y = y.astype(np.int64, copy=False)
        elif y.dtype.kind == "f":
            y = y.astype(np.float32, copy=False)
            _check_finite(y, "y")
        else:
            raise DataError(f"y must hold numbers, got dtype {y.dtype}")
        x = x.astype(np.float32, copy=False)
        _check_finite(x, "x")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        kind = "classification" if self.is_classification else "regression"
        return f"Dataset({len(self)} samples, input_shape={self.input_shape}, {kind})"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.x.shape[1:])

    @property
    def is_classification(self) -> bool:
        """True when ``y`` holds class ids."""
        return self.y.dtype.kind == "i"

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Number of samples of each class ``0 .. n_classes-1``."""
        if not self.is_classification:
            raise DataError("class counts need a classification dataset")
        return np.bincount(self.y, minlength=n_classes)

    def subset(self, indices: np.ndarray | Sequence[int]) -> Dataset:
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(f"subset indices out of range for {len(self)} samples")
        sources = None if self.sources is None else tuple(self.sources[i] for i in idx)
        return Dataset(self.x[idx], self.y[idx], sources)

    def shuffled(self, seed: int) -> Dataset:
        """The same samples in a random order fixed by ``seed``."""
        return self.subset(np.random.default_rng(seed).permutation(len(self)))

    def split(self, validation_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """Shuffle and split into (train, validation), stratified by class for classification.

        Every class keeps at least one training sample when it has one; the validation part is
        empty when ``validation_fraction`` is 0.
        """
        kept, held = stratified_split_indices(self.y, validation_fraction, seed)
        rng = np.random.default_rng(seed + 1)
        return self.subset(rng.permutation(kept)), self.subset(rng.permutation(held))

    def batches(
        self, batch_size: int, seed: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)`` batches of at most ``batch_size``; shuffled when ``seed`` is given."""
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        n = len(self)
        if seed is None:
            for start in range(0, n, batch_size):
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            return
        order = np.random.default_rng(seed).permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx]

    @staticmethod
    def concat(datasets: Sequence[Dataset]) -> Dataset:
        """All samples of ``datasets``, one after the other; shapes and label kinds must agree."""
        if not datasets:
            raise DataError("nothing to concatenate")
        first = datasets[0]
        for d in datasets[1:]:
            if d.input_shape != first.input_shape:
                raise DataError(f"input shapes differ: {first.input_shape} vs {d.input_shape}")
            if d.is_classification != first.is_classification:
                raise DataError("cannot mix classification and regression datasets")
        sources: tuple[str, ...] | None = None
        if all(d.sources is not None for d in datasets):
            sources = tuple(s for d in datasets for s in d.sources or ())
        return Dataset(
            np.concatenate([d.x for d in datasets]),
            np.concatenate([d.y for d in datasets]),
            sources,
        )


@dataclass(frozen=True, eq=False)
class Inputs:
    """Unlabelled samples for prediction, each named by where it came from."""

    x: np.ndarray
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        x = np.asarray(self.x).astype(np.float32, copy=False)
        if x.ndim < 2 or len(x) != len(self.sources):
            raise DataError(f"{len(self.sources)} sources for inputs of shape {x.shape}")
        _check_finite(x, "x")
        object.__setattr__(self, "x", x)

    def __len__(self) -> int:
        return len(self.x)
