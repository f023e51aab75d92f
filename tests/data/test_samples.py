"""Sample data written as files and read back through the loaders a participant uses."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from disco.data.loading import load_for_task
from disco.data.samples import write_samples
from disco.data.sources import breast_cancer
from disco.data.tabular import load_csv
from disco.errors import DataError
from disco.task import ColumnSpec, TrainingInfo

MNIST = TrainingInfo(
    data_type="image",
    image_height=28,
    image_width=28,
    labels=tuple(str(d) for d in range(10)),
)


def test_mnist_samples_load_back_per_client(tmp_path: Path) -> None:
    info = write_samples("mnist", 3, tmp_path / "out", partition="dirichlet:1", seed=1)
    assert [p.name for p in info.clients] == ["client_1", "client_2", "client_3"]
    assert sum(sum(c) for c in info.client_counts) == 4000
    assert info.test_counts == (100,) * 10
    assert (tmp_path / "out" / "client_2" / "7" / "00001.png").is_file()
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert "dirichlet:1" in readme and "client_3" in readme
    for folder, counts in zip(info.clients, info.client_counts, strict=True):
        d = load_for_task(folder, MNIST)
        assert d.class_counts(10).tolist() == list(counts)
        assert d.x.shape[1:] == (28, 28, 1)
    test = load_for_task(info.test_dir, MNIST)
    assert test.class_counts(10).tolist() == [100] * 10
    # PNG round trip is exact: pixel values are multiples of 1/255
    assert np.allclose(test.x * 255, np.rint(test.x * 255), atol=1e-3)


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    write_samples("titanic", 4, tmp_path, seed=0)
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        write_samples("titanic", 2, tmp_path)
    info = write_samples("titanic", 2, tmp_path, overwrite=True)
    assert len(info.clients) == 2
    assert not (tmp_path / "client_3").exists()  # stale output replaced
    assert (tmp_path / "mine.txt").read_text() == "keep me"  # other files untouched
    with pytest.raises(DataError, match="bad partition"):
        write_samples("titanic", 2, tmp_path / "x", partition="zipf")


TITANIC = TrainingInfo(
    data_type="tabular",
    input_columns=(
        ColumnSpec(name="Pclass", mean=2.3043, std=0.8365),
        ColumnSpec(name="Sex", categories=("male", "female"), mean=0.3534, std=0.478),
        ColumnSpec(name="Age", fill=29.5755, mean=29.5755, std=14.5836),
        ColumnSpec(name="SibSp", mean=0.5372, std=1.0772),
        ColumnSpec(name="Parch", mean=0.3843, std=0.7808),
        ColumnSpec(name="Fare", mean=32.5216, std=48.614),
    ),
    output_column="Survived",
    labels=("died", "survived"),
)


def test_titanic_samples_keep_the_original_file_shape(tmp_path: Path) -> None:
    info = write_samples("titanic", 2, tmp_path, partition="iid")
    with (info.clients[0] / "data.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["PassengerId", "Survived", "Pclass", "Name"]
    assert any(", " in r[3] for r in rows[1:])  # quoted names survive
    datasets = [load_for_task(folder, TITANIC) for folder in [*info.clients, info.test_dir]]
    assert [len(d) for d in datasets] == [357, 356, 178]
    train = load_for_task(info.clients[0], TITANIC)
    assert abs(float(train.x[:, 2].mean())) < 0.2  # Age standardised, missing ages filled
    assert train.class_counts(2).tolist() == list(info.client_counts[0])


def test_breast_cancer_samples_load_with_their_statistics(tmp_path: Path) -> None:
    source = breast_cancer()
    columns = []
    for name in source.header[:-1]:
        values = np.array([float(v) for v in source.column(name, source.train)])
        columns.append(ColumnSpec(name=name, mean=float(values.mean()), std=float(values.std())))
    training = TrainingInfo(
        data_type="tabular",
        input_columns=tuple(columns),
        output_column="target",
        labels=source.labels,
    )
    info = write_samples("breast_cancer", 1, tmp_path, partition="iid")
    train = load_csv(info.clients[0] / "data.csv", training)
    assert train.x.shape == (455, 30)
    np.testing.assert_allclose(train.x.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(train.x.std(axis=0), 1.0, atol=1e-4)
    assert train.class_counts(2).tolist() == [170, 285]
    assert len(load_for_task(info.test_dir / "data.csv", training)) == 114
