"""Real data sources: shapes, value ranges, class balance, and test splits apart from train."""

from __future__ import annotations

import numpy as np
import pytest

from disco.data.sources import (
    FASHION_LABELS,
    FASHION_MNIST_DIR,
    ImageSource,
    breast_cancer,
    get_source,
    mnist,
    titanic,
)
from disco.errors import DataError


def test_mnist_is_balanced_and_test_is_held_out() -> None:
    s = mnist()
    assert s.train.x.shape == (4000, 28, 28, 1) and s.test.x.shape == (1000, 28, 28, 1)
    assert s.train.x.dtype == np.float32 and 0.0 == s.train.x.min() and s.train.x.max() == 1.0
    assert np.bincount(s.train.y).tolist() == [400] * 10
    assert np.bincount(s.test.y).tolist() == [100] * 10
    train_rows = {row.tobytes() for row in s.train.x}
    assert not any(row.tobytes() in train_rows for row in s.test.x)
    assert not s.train.x.flags.writeable
    # a digit '1' has far less ink than a digit '0' on average
    assert s.train.x[s.train.y == 1].mean() < s.train.x[s.train.y == 0].mean()


def test_fashion_mnist_sizes_and_labels() -> None:
    if not FASHION_MNIST_DIR.is_dir():  # a missing data set fails: it never skips silently
        pytest.fail(
            f"Fashion-MNIST is not at {FASHION_MNIST_DIR}: install it with "
            "`apt-get install -y dataset-fashion-mnist` (.ci/run installs what a machine lacks)"
        )
    s = get_source("fashion_mnist")
    assert isinstance(s, ImageSource)
    assert s.labels == FASHION_LABELS and len(s.labels) == 10
    assert s.train.x.shape == (12000, 28, 28, 1) and s.test.x.shape == (2000, 28, 28, 1)
    assert np.bincount(s.train.y).tolist() == [1200] * 10
    assert 0.0 <= s.test.x.min() and s.test.x.max() <= 1.0


def test_titanic_keeps_original_rows() -> None:
    s = titanic()
    assert s.header[:5] == ("PassengerId", "Survived", "Pclass", "Name", "Sex")
    assert len(s.train.rows) + len(s.test.rows) == 891
    ids = {r[0] for r in s.train.rows} & {r[0] for r in s.test.rows}
    assert not ids
    assert abs(s.train.y.mean() - s.test.y.mean()) < 0.01  # stratified
    assert [int(v) for v in s.column("Survived", s.train)] == s.train.y.tolist()
    assert any("," in r[3] for r in s.train.rows)  # names like "Braund, Mr. Owen Harris"


def test_breast_cancer_columns_and_labels() -> None:
    s = breast_cancer()
    assert s.header[0] == "mean_radius" and s.header[-1] == "target" and len(s.header) == 31
    assert s.labels == ("malignant", "benign")
    assert len(s.train.rows) == 455 and len(s.test.rows) == 114
    assert float(s.column("mean_radius", s.train)[0]) > 0


@pytest.mark.parametrize(("task", "message"), [("cifar10", "not available"), ("zzz", "available:")])
def test_unknown_or_absent_sources(task: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        get_source(task)
