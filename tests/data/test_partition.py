"""Partitions: disjoint and complete, deterministic, and as skewed as each scheme promises."""

from __future__ import annotations

import numpy as np
import pytest

from disco.data.partition import Partition, dirichlet, iid, parse_partition, shards
from disco.errors import DataError

LABELS = np.repeat(np.arange(10), 100)  # 1000 samples, 100 per class, sorted


def assert_partition(parts: list[np.ndarray], n: int) -> None:
    merged = np.concatenate(parts)
    assert len(merged) == n and np.array_equal(np.sort(merged), np.arange(n))


def max_class_fraction(parts: list[np.ndarray]) -> float:
    return float(np.mean([np.bincount(LABELS[p]).max() / len(p) for p in parts]))


def test_iid_sizes_and_determinism() -> None:
    parts = iid(1003, 4, seed=1)
    assert_partition(parts, 1003)
    assert sorted(len(p) for p in parts) == [250, 251, 251, 251]
    assert all(np.array_equal(a, b) for a, b in zip(parts, iid(1003, 4, seed=1), strict=True))
    assert not np.array_equal(parts[0], iid(1003, 4, seed=2)[0])


def test_dirichlet_small_alpha_is_skewed_and_large_alpha_is_not() -> None:
    skewed = dirichlet(LABELS, 10, alpha=0.1, seed=0)
    flat = dirichlet(LABELS, 10, alpha=100.0, seed=0)
    assert_partition(skewed, len(LABELS))
    assert_partition(flat, len(LABELS))
    assert max_class_fraction(skewed) > 0.4
    assert max_class_fraction(flat) < 0.2
    assert max_class_fraction(iid(len(LABELS), 10, 0)) < 0.2
    again = dirichlet(LABELS, 10, alpha=0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(skewed, again, strict=True))


def test_dirichlet_min_size_and_bad_arguments() -> None:
    parts = dirichlet(LABELS, 20, alpha=0.3, seed=0, min_size=10)
    assert min(len(p) for p in parts) >= 10
    with pytest.raises(DataError, match="fewer than 90 samples"):
        dirichlet(LABELS, 10, alpha=0.05, seed=0, min_size=90)
    with pytest.raises(DataError, match="alpha must be positive"):
        dirichlet(LABELS, 3, alpha=0.0, seed=0)
    with pytest.raises(DataError, match="integer class labels"):
        dirichlet(np.linspace(0, 1, 10), 2, alpha=1.0, seed=0)


def test_shards_give_at_most_k_classes() -> None:
    parts = shards(LABELS, 10, shards_per_client=2, seed=0)  # shards of 50: one class each
    assert_partition(parts, len(LABELS))
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)
    assert all(len(p) == 100 for p in parts)
    assert len({tuple(np.unique(LABELS[p])) for p in parts}) > 1
    with pytest.raises(DataError, match="into 2000 shards"):
        shards(LABELS, 1000, shards_per_client=2, seed=0)


@pytest.mark.parametrize("n_clients", [0, 1001])
def test_client_count_is_checked(n_clients: int) -> None:
    with pytest.raises(DataError, match="clients"):
        iid(1000, n_clients, seed=0)


def test_parse_partition() -> None:
    assert parse_partition("iid") == Partition("iid")
    assert parse_partition(" Dirichlet:0.5 ") == Partition("dirichlet", alpha=0.5)
    assert parse_partition("shards:2") == Partition("shards", shards_per_client=2)
    assert str(parse_partition("dirichlet:0.50")) == "dirichlet:0.5"
    parts = parse_partition("shards:1").split(LABELS, 10, seed=0)
    assert all(len(np.unique(LABELS[p])) == 1 for p in parts)
    for bad in [
        "",
        "iid:1",
        "dirichlet",
        "dirichlet:-1",
        "dirichlet:nan",
        "shards:0",
        "shards:x",
        "x",
    ]:
        with pytest.raises(DataError, match="use 'iid', 'dirichlet:ALPHA'"):
            parse_partition(bad)
