"""`disco data samples` tells what it wrote and what to run next, in words, not a Python repr."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from disco.cli import main


def _label_counts(csv_path: Path, labels: tuple[str, ...]) -> list[int]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        column = [row["target"] for row in csv.DictReader(f)]
    return [sum(1 for v in column if v in (label, str(i))) for i, label in enumerate(labels)]


def test_prints_folders_counts_and_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples"
    code = main(["data", "samples", "--task", "breast_cancer", "--clients", "2", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "SamplesInfo(" not in stdout and "PosixPath(" not in stdout
    lines = stdout.splitlines()
    assert lines[0] == "Wrote real breast_cancer data (partition iid, seed 0):"
    assert f"{out}/client_1 … client_2" in lines[1] and "one folder per participant" in lines[1]
    assert str(out / "test") in lines[2] and str(out / "README.txt") in lines[3]

    # counts per participant and per label, as the files hold them (not a terminal: plain text)
    labels = ("malignant", "benign")
    header = next(ln for ln in lines if "malignant" in ln)
    assert header.split() == [*labels, "total"]
    for folder in ("client_1", "client_2", "test"):
        counts = _label_counts(out / folder / "data.csv", labels)
        row = next(ln for ln in lines if ln.startswith(folder))
        assert row.split() == [folder, *map(str, counts), str(sum(counts))]

    assert (
        f"disco train --task breast_cancer --data {out / 'client_1'} "
        "--server http://127.0.0.1:8000" in stdout
    )
    assert f"disco train --task breast_cancer --data {out / 'client_1'} --test {out / 'test'}" in (
        stdout
    )
    assert "open http://127.0.0.1:8000/" in stdout and str(out / "client_2" / "data.csv") in stdout
