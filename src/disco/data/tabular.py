"""Tabular data: CSV files turned into model inputs with the task's fixed preprocessing.

Each input column is read as a number (or, when the column has ``categories``, as the index of
its text value), empty cells get the column's ``fill`` value, and the result is standardised as
``(value - mean) / std`` with the task's own constants, so that every participant feeds the
model identically. Errors name the file, the row (as a spreadsheet shows it: the header is row
1) and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from disco.data.dataset import Dataset, Inputs
from disco.errors import DataError

if TYPE_CHECKING:
    from disco.task import ColumnSpec, TrainingInfo

__all__ = ["MAX_CSV_BYTES", "CsvTable", "load_csv", "load_csv_unlabelled", "read_csv"]

MAX_CSV_BYTES = 512 * 1024 * 1024
_DELIMITERS = (",", ";")


class CsvTable:
    """A CSV file's header and an iterator over its data rows as ``(row_number, cells)``."""

    def __init__(self, path: Path, header: list[str], rows: Iterator[tuple[int, list[str]]]):
        self.path = path
        self.header = header
        self.rows = rows

    def index_of(self, names: list[str]) -> list[int]:
        """Column positions of ``names``; a DataError lists the missing ones and what exists."""
        missing = [n for n in names if n not in self.header]
        if missing:
            raise DataError(
                f"{self.path}: missing column(s) {', '.join(repr(m) for m in missing)}; "
                f"the file has {', '.join(repr(h) for h in self.header)}"
            )
        twice = [n for n in names if self.header.count(n) > 1]
        if twice:
            raise DataError(f"{self.path}: column(s) {twice} appear more than once in the header")
        return [self.header.index(n) for n in names]


def _guess_delimiter(first_line: str) -> str:
    """',' or ';': whichever splits the header line into more fields."""
    counts = {d: len(next(csv.reader([first_line], delimiter=d), [])) for d in _DELIMITERS}
    return max(_DELIMITERS, key=lambda d: counts[d])


def read_csv(path: str | Path) -> CsvTable:
    """Open a CSV file (UTF-8, optional BOM, ',' or ';' separated) with a header row.

    The whole file is read into memory (at most `MAX_CSV_BYTES`); rows must have as many
    cells as the header; blank lines are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{path}: file is {size / 2**20:.0f} MB; CSV files larger than "
            f"{MAX_CSV_BYTES // 2**20} MB are not supported — split it into smaller files"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8 CSV") from exc
    first = next((ln for ln in text.split("\n") if ln.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; a header row is required")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_guess_delimiter(first))
    try:
        header = [h.strip() for h in next(r for r in reader if r)]
    except csv.Error as exc:
        raise DataError(f"{path}: invalid CSV: {exc}") from exc
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise DataError(f"{path}: header row has empty column name(s) at position(s) {empty}")

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise DataError(
                        f"{path}: row {reader.line_num} has {len(cells)} cells but the header "
                        f"has {len(header)} (is a value containing the separator unquoted?)"
                    )
                yield reader.line_num, cells
        except csv.Error as exc:
            raise DataError(f"{path}: invalid CSV near row {reader.line_num}: {exc}") from exc

    return CsvTable(path, header, rows())


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell_value(table: CsvTable, row: int, spec: ColumnSpec, cell: str) -> float:
    """The raw (not yet standardised) value of one input cell."""
    text = cell.strip()
    where = f"{table.path}: row {row}, column {spec.name!r}"
    if not text:
        if spec.fill is None:
            raise DataError(f"{where} is empty and the column has no fill value")
        return spec.fill
    if spec.categories is not None:
        try:
            return float(spec.categories.index(text))
        except ValueError:
            allowed = ", ".join(repr(c) for c in spec.categories)
            raise DataError(f"{where}: unknown value {text!r}; allowed: {allowed}") from None
    value = _number(text)
    if value is None:
        raise DataError(f"{where}: {text!r} is not a number")
    return value


def _label_value(table: CsvTable, row: int, training: TrainingInfo, cell: str) -> float:
    """The class id (labels given) or the numeric target of one output cell."""
    text = cell.strip()
    where = f"{table.path}: row {row}, column {training.output_column!r}"
    if not text:
        raise DataError(f"{where} is empty; every row needs a label")
    labels = training.labels
    if labels:
        if text in labels:
            return float(labels.index(text))
        value = _number(text)
        if value is not None and value.is_integer() and 0 <= value < len(labels):
            return value
        allowed = ", ".join(repr(x) for x in labels)
        raise DataError(
            f"{where}: unknown label {text!r}; use one of {allowed} or its index "
            f"0..{len(labels) - 1}"
        )
    value = _number(text)
    if value is None:
        raise DataError(f"{where}: {text!r} is not a number")
    return value


def _standardise(raw: np.ndarray, training: TrainingInfo) -> np.ndarray:
    mean = np.array([c.mean for c in training.input_columns], dtype=np.float64)
    std = np.array([c.std for c in training.input_columns], dtype=np.float64)
    return ((raw - mean) / std).astype(np.float32)


def _read(
    path: str | Path, training: TrainingInfo, labelled: bool
) -> tuple[np.ndarray, np.ndarray, list[int], Path]:
    if training.data_type != "tabular" or training.output_column is None:
        raise DataError("CSV files can only be loaded for a tabular task")
    specs = training.input_columns
    table = read_csv(path)
    positions = table.index_of([c.name for c in specs])
    out_pos = table.index_of([training.output_column])[0] if labelled else None
    raw: list[list[float]] = []
    targets: list[float] = []
    row_numbers: list[int] = []
    for row, cells in table.rows:
        raw.append(
            [_cell_value(table, row, s, cells[p]) for s, p in zip(specs, positions, strict=True)]
        )
        if out_pos is not None:
            targets.append(_label_value(table, row, training, cells[out_pos]))
        row_numbers.append(row)
    if not raw:
        raise DataError(f"{table.path}: no data rows (only the header)")
    x = np.array(raw, dtype=np.float64).reshape(len(raw), len(specs))
    return _standardise(x, training), np.array(targets), row_numbers, table.path


def load_csv(path: str | Path, training: TrainingInfo) -> Dataset:
    """Load a labelled CSV file for a tabular task.

    Needs a header row naming every input column and the output column (other columns are
    ignored). With ``training.labels`` the output cell is a label name or its index; without,
    a number (regression). Raises `DataError` naming the file, row and column of a bad cell.
    """
    x, targets, _, _ = _read(path, training, labelled=True)
    y = targets.astype(np.int64) if training.labels else targets.astype(np.float32)
    return Dataset(x, y)


def load_csv_unlabelled(path: str | Path, training: TrainingInfo) -> Inputs:
    """Load a CSV file for prediction: the input columns only (an output column is ignored).

    Each input is named ``"<file name>:<row>"``.
    """
    x, _, rows, resolved = _read(path, training, labelled=False)
    return Inputs(x, tuple(f"{resolved.name}:{r}" for r in rows))
