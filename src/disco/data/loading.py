"""Load whatever a participant connects, by what the path is, for the task's data type.

Accepted layouts:

- tabular: a ``.csv`` file, or a folder holding exactly one ``.csv`` file;
- image: a folder with one sub-folder per label; or a folder with ``labels.csv``
  (columns ``filename,label``) and the images next to it or in ``images/``; or the
  ``labels.csv`` file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from disco.data.dataset import Dataset
from disco.data.images import load_image_folder, load_labelled_images
from disco.data.tabular import load_csv
from disco.errors import DataError

if TYPE_CHECKING:
    from disco.task import TrainingInfo

__all__ = ["LAYOUTS", "load_for_task"]

LAYOUTS = {
    "tabular": "a .csv file with a header row, or a folder holding exactly one .csv file",
    "image": "a folder with one sub-folder per label (images inside), or a folder with "
    "labels.csv (columns filename,label) and the images next to it or in images/",
}


def _csv_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")
    )


def _load_tabular(path: Path, training: TrainingInfo) -> Dataset:
    if path.is_file():
        return load_csv(path, training)
    found = _csv_files(path)
    if len(found) == 1:
        return load_csv(found[0], training)
    what = (
        "no .csv file"
        if not found
        else f"{len(found)} .csv files ({', '.join(p.name for p in found)})"
    )
    raise DataError(f"{path}: {what}; expected {LAYOUTS['tabular']}")


def _load_images(path: Path, training: TrainingInfo) -> Dataset:
    if path.is_file():
        labels_csv = path
    else:
        labels_csv = path / "labels.csv"
        if not labels_csv.is_file():
            if not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
                raise DataError(
                    f"{path}: found neither labels.csv nor label sub-folders; "
                    f"expected {LAYOUTS['image']}"
                )
            return load_image_folder(path, training)
    folder = labels_csv.parent
    images = folder / "images" if (folder / "images").is_dir() else folder
    return load_labelled_images(labels_csv, images, training)


def load_for_task(path: str | Path, training: TrainingInfo) -> Dataset:
    """Load labelled data for ``training.data_type`` from a file or folder (see `LAYOUTS`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    kind = training.data_type
    if kind == "tabular":
        if path.is_file() and path.suffix.lower() != ".csv":
            raise DataError(f"{path}: not a .csv file; expected {LAYOUTS['tabular']}")
        return _load_tabular(path, training)
    if kind == "image":
        if path.is_file() and path.suffix.lower() != ".csv":
            raise DataError(f"{path}: a single image is not a dataset; expected {LAYOUTS['image']}")
        return _load_images(path, training)
    if kind == "text":
        raise DataError(
            f"{path}: a text task's files become token windows with the task's tokenizer: "
            "disco.data.text.load_text(path, tokenizer, context)"
        )
    raise DataError(f"cannot load data for a {kind!r} task from {path}")
