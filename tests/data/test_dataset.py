"""Dataset: validation of shapes and values, splits, subsets, batches, concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from disco.data.dataset import Dataset, stratified_split_indices
from disco.errors import DataError


def make(n: int = 100, classes: int = 4) -> Dataset:
    x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    return Dataset(x, np.arange(n) % classes)


def test_converts_dtypes_and_reports_shape() -> None:
    d = make()
    assert d.x.dtype == np.float32 and d.y.dtype == np.int64
    assert len(d) == 100 and d.input_shape == (3,) and d.is_classification
    r = Dataset(np.zeros((2, 1)), np.array([0.5, 1.5]))
    assert r.y.dtype == np.float32 and not r.is_classification


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((3, 2)), np.zeros(2, dtype=np.int64), "3 samples but y has 2"),
        (np.array([[0.0, np.nan]]), np.zeros(1, dtype=np.int64), "NaN"),
        (np.zeros(3), np.zeros(3, dtype=np.int64), "shape"),
        (np.zeros((1, 2)), np.array(["a"]), "numbers"),
    ],
)
def test_rejects_inconsistent_data(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Dataset(x, y)


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    d = make(100, classes=4)
    train, val = d.split(0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert np.bincount(val.y).tolist() == [5, 5, 5, 5]
    rows = {tuple(r) for r in train.x} | {tuple(r) for r in val.x}
    assert len(rows) == 100  # disjoint and complete
    again, _ = d.split(0.2, seed=3)
    assert np.array_equal(again.x, train.x)
    other, _ = d.split(0.2, seed=4)
    assert not np.array_equal(other.x, train.x)


def test_split_keeps_a_training_sample_of_every_class() -> None:
    y = np.array([0] * 10 + [1, 2])  # classes 1 and 2 have one sample each
    kept, held = stratified_split_indices(y, 0.5, seed=0)
    assert set(y[kept]) == {0, 1, 2}
    assert len(held) == 6 and set(y[held]) == {0}


def test_split_zero_fraction_and_bad_fraction() -> None:
    train, val = make(10).split(0.0, seed=0)
    assert len(train) == 10 and len(val) == 0 and val.input_shape == (3,)
    with pytest.raises(DataError, match="validation fraction"):
        make(10).split(1.0, seed=0)


def test_regression_split_and_subset_sources() -> None:
    d = Dataset(np.zeros((10, 2)), np.linspace(0, 1, 10), tuple(f"r{i}" for i in range(10)))
    train, val = d.split(0.3, seed=1)
    assert len(train) == 7 and len(val) == 3
    sub = d.subset([4, 2])
    assert sub.sources == ("r4", "r2") and sub.y[0] == pytest.approx(4 / 9)
    with pytest.raises(DataError, match="out of range"):
        d.subset([10])


def test_batches_cover_everything_once() -> None:
    d = make(10)
    sizes = [len(xb) for xb, _ in d.batches(4)]
    assert sizes == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in d.batches(3, seed=1)])
    assert sorted(seen.tolist()) == sorted(d.y.tolist())
    first_x, _ = next(d.batches(10, seed=1))
    assert not np.array_equal(first_x, d.x)  # shuffled
    with pytest.raises(DataError, match="batch_size"):
        next(d.batches(0))


def test_concat_and_shuffled() -> None:
    a, b = make(3), make(2)
    both = Dataset.concat([a, b])
    assert len(both) == 5 and np.array_equal(both.x[3:], b.x)
    with pytest.raises(DataError, match="input shapes"):
        Dataset.concat([a, Dataset(np.zeros((1, 2)), np.zeros(1, dtype=np.int64))])
    s = make(50).shuffled(0)
    assert sorted(s.y.tolist()) == sorted(make(50).y.tolist())
    assert not np.array_equal(s.x, make(50).x)
