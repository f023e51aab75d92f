"""Image data: label folders or a labels CSV, decoded into float32 arrays the model takes.

Every image becomes an array of shape ``(image_height, image_width, channels)`` with values in
[0, 1]: decoded by Pillow (EXIF rotation applied, as browsers do), converted to grey ('L') or
'RGB', and resized bilinearly when its size differs from the task's. Pillow sizes are
``(width, height)`` and arrays are ``(height, width)``; the two are never swapped.

Resizing is refused where it would ruin the picture (`size_problem`, the same rule and words as
the web app's loader): a side longer than `MAX_SIDE` pixels, a side shorter than half the
task's, or proportions twice as wide or as tall as the task's, or more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
from PIL import ExifTags, Image, ImageOps

from disco.data.dataset import Dataset, Inputs
from disco.data.tabular import read_csv
from disco.errors import DataError

if TYPE_CHECKING:
    from disco.task import TrainingInfo

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_SIDE",
    "image_files",
    "load_image",
    "load_image_folder",
    "load_images_unlabelled",
    "load_labelled_images",
    "size_problem",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_IGNORED_DIRS = frozenset({"__MACOSX"})
MAX_SIDE = 8192
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image


def _shape(training: TrainingInfo) -> tuple[int, int, int]:
    if training.data_type != "image" or not training.image_height or not training.image_width:
        raise DataError("images can only be loaded for an image task with a size")
    return training.image_height, training.image_width, training.channels


def size_problem(width: int, height: int, training: TrainingInfo) -> str | None:
    """Why an image of ``width`` x ``height`` pixels cannot be resized to the task's size, or None.

    Refused: a side longer than `MAX_SIDE`; a side shorter than half the task's; proportions
    (width / height) twice those of the task or more, either way (a 100x50 image for a 28x28
    task). The web app's loader applies the same rule with the same words.
    """
    task_height, task_width, _ = _shape(training)
    distorted = "to resize without distorting it (crop it closer to the task's shape)"
    if width > MAX_SIDE or height > MAX_SIDE:
        reason = f"it is too large (at most {MAX_SIDE} pixels per side)"
    elif 2 * width < task_width or 2 * height < task_height:
        least = f"{-(-task_width // 2)}×{-(-task_height // 2)}"
        reason = f"it is too small to enlarge (at least {least} pixels)"
    elif width * task_height >= 2 * height * task_width:
        reason = f"it is too wide {distorted}"
    elif 2 * width * task_height <= height * task_width:
        reason = f"it is too tall {distorted}"
    else:
        return None
    expected = f"{task_width}×{task_height}"
    return f"image is {width}×{height} pixels but the task expects {expected}; {reason}"


def load_image(path: str | Path, training: TrainingInfo) -> np.ndarray:
    """One image file as float32 ``(height, width, channels)`` in [0, 1].

    Raises `DataError` naming the file when it cannot be read or its size is refused
    (`size_problem`).
    """
    height, width, channels = _shape(training)
    try:
        with Image.open(path) as opened:
            # checked on the header, before decoding: the size as shown, EXIF rotation applied
            shown_width, shown_height = opened.size
            if opened.getexif().get(ExifTags.Base.Orientation) in _SWAPPING_ORIENTATIONS:
                shown_width, shown_height = shown_height, shown_width
            problem = size_problem(shown_width, shown_height, training)
            if problem is not None:
                raise DataError(f"{path}: {problem}")
            img = ImageOps.exif_transpose(opened)
            img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit / integer / float images (medical scans): scale to [0, 1] without clipping
        peak = 1.0 if img.mode == "F" else 65535.0
        img = Image.fromarray(np.asarray(img, dtype=np.float32) / peak)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        grey = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[:, :, None]
        return np.repeat(grey, channels, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # converting straight to RGB/L would warn
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[:, :, None] if channels == 1 else arr


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files skipped), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _decode_all(
    items: Iterable[tuple[Path, int]], training: TrainingInfo, root: Path, skip_bad: bool
) -> tuple[Dataset, list[str]]:
    height, width, channels = _shape(training)
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    problems: list[str] = []
    for path, label in items:
        try:
            arrays.append(load_image(path, training))
        except DataError as exc:
            if not skip_bad:
                raise
            problems.append(str(exc))
            continue
        labels.append(label)
        names.append(path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path))
    x = np.stack(arrays) if arrays else np.zeros((0, height, width, channels), np.float32)
    return Dataset(x, np.array(labels, dtype=np.int64), tuple(names)), problems


def _match_label(name: str, labels: Sequence[str]) -> int | None:
    """Index of ``name`` among ``labels``: exact, else a unique case-insensitive match."""
    if name in labels:
        return labels.index(name)
    folded = [i for i, label in enumerate(labels) if label.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _allowed(labels: Sequence[str]) -> str:
    return ", ".join(repr(label) for label in labels)


@overload
def load_image_folder(
    root: str | Path, training: TrainingInfo, *, skip_bad: Literal[False] = False
) -> Dataset: ...
@overload
def load_image_folder(
    root: str | Path, training: TrainingInfo, *, skip_bad: Literal[True]
) -> tuple[Dataset, list[str]]: ...
def load_image_folder(
    root: str | Path, training: TrainingInfo, *, skip_bad: bool = False
) -> Dataset | tuple[Dataset, list[str]]:
    """Load ``root/<label>/<image>`` files: one sub-folder per label of the task.

    Folder names must be among ``training.labels`` (a label without a folder is fine). With
    ``skip_bad`` unreadable images are left out and described in the returned problem list;
    otherwise the first one raises `DataError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    folders = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in _IGNORED_DIRS
    )
    if not folders:
        raise DataError(
            f"{root}: no label folders; put the images in one sub-folder per label "
            f"({_allowed(training.labels)})"
        )
    items: list[tuple[Path, int]] = []
    for folder in folders:
        label = _match_label(folder.name, training.labels)
        if label is None:
            raise DataError(
                f"{folder}: folder {folder.name!r} is not a label of this task; "
                f"the labels are {_allowed(training.labels)}"
            )
        items.extend((f, label) for f in image_files(folder))
    dataset, problems = _decode_all(items, training, root, skip_bad)
    return (dataset, problems) if skip_bad else dataset


@overload
def load_labelled_images(
    csv_path: str | Path,
    images_dir: str | Path,
    training: TrainingInfo,
    *,
    skip_bad: Literal[False] = False,
) -> Dataset: ...
@overload
def load_labelled_images(
    csv_path: str | Path, images_dir: str | Path, training: TrainingInfo, *, skip_bad: Literal[True]
) -> tuple[Dataset, list[str]]: ...
def load_labelled_images(
    csv_path: str | Path, images_dir: str | Path, training: TrainingInfo, *, skip_bad: bool = False
) -> Dataset | tuple[Dataset, list[str]]:
    """Load images listed in a CSV with columns ``filename,label``, files under ``images_dir``.

    A label is a label name or its index. A missing or unreadable file raises `DataError`
    (or, with ``skip_bad``, is left out and described in the returned problem list).
    """
    images_dir = Path(images_dir)
    table = read_csv(csv_path)
    header = [h.lower() for h in table.header]
    if "filename" not in header or "label" not in header:
        raise DataError(
            f"{table.path}: needs columns 'filename' and 'label'; the file has "
            f"{', '.join(repr(h) for h in table.header)}"
        )
    name_pos, label_pos = header.index("filename"), header.index("label")
    items: list[tuple[Path, int]] = []
    problems: list[str] = []
    base = images_dir.resolve()
    first_row: dict[Path, int] = {}  # a file listed twice counts once, from its first row
    for row, cells in table.rows:
        name, label_text = cells[name_pos].strip(), cells[label_pos].strip()
        where = f"{table.path}: row {row}"
        label = _match_label(label_text, training.labels)
        if label is None and label_text.isdigit() and int(label_text) < len(training.labels):
            label = int(label_text)
        if label is None:
            raise DataError(
                f"{where}: unknown label {label_text!r}; the labels are "
                f"{_allowed(training.labels)} (or their index)"
            )
        path = (images_dir / name).resolve()
        if not name or not path.is_relative_to(base):
            raise DataError(f"{where}: file name {name!r} must be a path inside {images_dir}")
        if not path.is_file():
            message = f"{where}: image {name!r} not found in {images_dir}"
            if not skip_bad:
                raise DataError(message)
            problems.append(message)
            continue
        if path in first_row:
            message = f"{where}: image {name!r} is already listed in row {first_row[path]}"
            if not skip_bad:
                raise DataError(message)
            problems.append(message)
            continue
        first_row[path] = row
        items.append((path, label))
    dataset, bad = _decode_all(items, training, base, skip_bad)
    return (dataset, problems + bad) if skip_bad else dataset


def load_images_unlabelled(
    dir_or_files: str | Path | Sequence[str | Path], training: TrainingInfo
) -> Inputs:
    """Load images for prediction: every image in a folder, or the given files, in order."""
    if isinstance(dir_or_files, str | Path):
        folder = Path(dir_or_files)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder")
        files = image_files(folder)
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataError(f"{folder}: no image files ({suffixes})")
    else:
        files = [Path(f) for f in dir_or_files]
    height, width, channels = _shape(training)
    arrays = [load_image(f, training) for f in files]
    x = np.stack(arrays) if arrays else np.zeros((0, height, width, channels), np.float32)
    return Inputs(x, tuple(f.name for f in files))
