"""load_for_task: picks the loader from the layout, and says which layouts exist otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from disco.data.loading import load_for_task
from disco.errors import DataError
from disco.task import TrainingInfo


def test_tabular_file_or_single_csv_folder(tmp_path: Path, tabular: TrainingInfo) -> None:
    (tmp_path / "d.csv").write_text("a,b,c,y\n1,2,red,yes\n")
    assert load_for_task(tmp_path / "d.csv", tabular).y.tolist() == [1]
    assert load_for_task(tmp_path, tabular).y.tolist() == [1]
    (tmp_path / "e.csv").write_text("a,b,c,y\n1,2,red,no\n")
    with pytest.raises(DataError, match=r"2 \.csv files \(d\.csv, e\.csv\); expected"):
        load_for_task(tmp_path, tabular)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match=r"not a \.csv file"):
        load_for_task(tmp_path / "x.txt", tabular)
    with pytest.raises(DataError, match="no such file or folder"):
        load_for_task(tmp_path / "nope", tabular)


def test_image_layouts(
    tmp_path: Path, image_task: Callable[..., TrainingInfo], save_image: Callable[..., Path]
) -> None:
    task = image_task()
    save_image(tmp_path / "folders" / "dog" / "1.png", np.zeros((4, 4)))
    assert load_for_task(tmp_path / "folders", task).y.tolist() == [1]

    save_image(tmp_path / "csv" / "images" / "1.png", np.zeros((4, 4)))
    (tmp_path / "csv" / "labels.csv").write_text("filename,label\n1.png,cat\n")
    assert load_for_task(tmp_path / "csv", task).y.tolist() == [0]
    assert load_for_task(tmp_path / "csv" / "labels.csv", task).y.tolist() == [0]

    save_image(tmp_path / "flat" / "1.png", np.zeros((4, 4)))
    (tmp_path / "flat" / "labels.csv").write_text("filename,label\n1.png,dog\n")
    assert load_for_task(tmp_path / "flat", task).y.tolist() == [1]

    with pytest.raises(DataError, match=r"neither labels\.csv nor label sub-folders") as err:
        load_for_task(tmp_path / "csv" / "images", task)
    assert "one sub-folder per label" in str(err.value) and "labels.csv" in str(err.value)
    with pytest.raises(DataError, match="a single image is not a dataset; expected"):
        load_for_task(tmp_path / "flat" / "1.png", task)
