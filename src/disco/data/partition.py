"""Splitting one dataset among simulated clients: IID, Dirichlet non-IID, and label shards.

Every partitioner is a pure function returning one sorted index array per client; the arrays
are disjoint, cover every sample, and depend only on the arguments (the seed included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from disco.errors import DataError

__all__ = ["Partition", "dirichlet", "iid", "parse_partition", "shards"]

_MAX_TRIES = 100


def _check_clients(n_samples: int, n_clients: int) -> None:
    if n_clients < 1:
        raise DataError(f"the number of clients must be at least 1, got {n_clients}")
    if n_clients > n_samples:
        raise DataError(f"cannot split {n_samples} samples among {n_clients} clients")


def _class_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iub"):
        raise DataError("this partition needs a 1-D array of integer class labels")
    return y.astype(np.int64, copy=False)


def iid(n_samples: int, n_clients: int, seed: int) -> list[np.ndarray]:
    """Shuffle and cut into ``n_clients`` parts whose sizes differ by at most one."""
    _check_clients(n_samples, n_clients)
    order = np.random.default_rng(seed).permutation(n_samples)
    return [np.sort(part) for part in np.array_split(order, n_clients)]


def dirichlet(
    labels: np.ndarray, n_clients: int, alpha: float, seed: int, min_size: int = 1
) -> list[np.ndarray]:
    """Non-IID split: each class is divided among clients in proportions ~ Dirichlet(alpha).

    Small ``alpha`` (e.g. 0.1) gives each client few classes; large ``alpha`` approaches IID.
    Proportions are drawn again until every client has at least ``min_size`` samples (at most
    100 tries, then `DataError`).
    """
    y = _class_labels(labels)
    _check_clients(len(y), n_clients)
    if not alpha > 0:
        raise DataError(f"dirichlet alpha must be positive, got {alpha}")
    if min_size < 0 or min_size * n_clients > len(y):
        raise DataError(f"cannot give each of {n_clients} clients {min_size} of {len(y)} samples")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    for _ in range(_MAX_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for members in by_class:
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].append(chunk)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(r) for r in result) >= min_size:
            return result
    raise DataError(
        f"dirichlet(alpha={alpha}) left a client with fewer than {min_size} samples in "
        f"{_MAX_TRIES} tries; use a larger alpha or fewer clients"
    )


def shards(
    labels: np.ndarray, n_clients: int, shards_per_client: int, seed: int
) -> list[np.ndarray]:
    """Sort by label, cut into ``n_clients * shards_per_client`` shards, deal each client some.

    The classic pathological non-IID split (McMahan et al. 2017): when class sizes are
    multiples of the shard size, every client sees at most ``shards_per_client`` classes.
    """
    y = _class_labels(labels)
    if shards_per_client < 1:
        raise DataError(f"shards per client must be at least 1, got {shards_per_client}")
    _check_clients(len(y), n_clients)
    n_shards = n_clients * shards_per_client
    if n_shards > len(y):
        raise DataError(f"cannot cut {len(y)} samples into {n_shards} shards")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(y))
    by_label = shuffled[np.argsort(y[shuffled], kind="stable")]
    pieces = np.array_split(by_label, n_shards)
    dealt = rng.permutation(n_shards).reshape(n_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])) for row in dealt]


@dataclass(frozen=True)
class Partition:
    """A parsed partition: ``iid``, ``dirichlet:ALPHA`` or ``shards:K``."""

    kind: Literal["iid", "dirichlet", "shards"]
    alpha: float = 0.0
    shards_per_client: int = 0

    def __str__(self) -> str:
        if self.kind == "dirichlet":
            return f"dirichlet:{self.alpha:g}"
        if self.kind == "shards":
            return f"shards:{self.shards_per_client}"
        return "iid"

    def split(self, labels: np.ndarray, n_clients: int, seed: int) -> list[np.ndarray]:
        """Index arrays, one per client, for samples with these labels."""
        if self.kind == "dirichlet":
            return dirichlet(labels, n_clients, self.alpha, seed)
        if self.kind == "shards":
            return shards(labels, n_clients, self.shards_per_client, seed)
        return iid(len(labels), n_clients, seed)


_USAGE = "use 'iid', 'dirichlet:ALPHA' (ALPHA > 0, e.g. dirichlet:0.5) or 'shards:K' (K >= 1)"


def parse_partition(text: str) -> Partition:
    """Parse ``"iid"``, ``"dirichlet:0.5"`` or ``"shards:2"``; `DataError` otherwise."""
    kind, _, arg = text.strip().lower().partition(":")
    kind, arg = kind.strip(), arg.strip()
    try:
        if kind == "iid" and not arg:
            return Partition("iid")
        if kind == "dirichlet" and arg:
            alpha = float(arg)
            if alpha > 0 and np.isfinite(alpha):
                return Partition("dirichlet", alpha=alpha)
        if kind == "shards" and arg:
            k = int(arg)
            if k >= 1:
                return Partition("shards", shards_per_client=k)
    except ValueError:
        pass
    raise DataError(f"bad partition {text!r}: {_USAGE}")
