"""Tabular data: CSV files turned into model inputs with the task's fixed preprocessing.

Each input column is read as a number (or, when the column has ``categories``, as the index of
its text value), empty cells get the column's ``fill`` value, and the result is standardised as
``(value - mean) / std`` with the task's own constants, so that every participant feeds the
model identically.

Bad rows (one rule, shared word for word with the web app's loader): a data row with a bad cell
— a non-number in a numeric column, an empty cell in a column without ``fill``, an unknown
category, an unknown or missing label — or with another number of cells than the header is
skipped, and reported with its row (as a spreadsheet shows it: the header is row 1), column and
value (`SkippedRow`, in a `SkippedRows` warning). The file is refused (`DataError`) only when it
cannot be read, when its header lacks a needed column, or when no usable row remains.
tests/data/fixtures/csv_rows.csv and csv_rows.json pin the rule for both loaders.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from disco.data.dataset import Dataset, Inputs
from disco.errors import DataError

if TYPE_CHECKING:
    from disco.task import ColumnSpec, TrainingInfo

__all__ = [
    "MAX_CSV_BYTES",
    "CsvTable",
    "SkippedRow",
    "SkippedRows",
    "load_csv",
    "load_csv_unlabelled",
    "read_csv",
    "refusal",
]

MAX_CSV_BYTES = 512 * 1024 * 1024
_DELIMITERS = (",", ";")

BLANK = " \t\n\r\v\f\u00a0\ufeff"
"""What is trimmed around a cell (the same set as the browser's `tabular.ts`)."""


Record = tuple[int, list[str], str | None]
"""One non-blank data row: its row number, its cells, and what is wrong with its shape (or None)."""


def _cell_count_problem(row: int, cells: int, header: int) -> str:
    """The message for a row with `cells` cells under a header of `header` columns."""
    return (
        f"row {row} has {cells} cells but the header has {header} "
        "(is a value containing the separator unquoted?)"
    )


class CsvTable:
    """A CSV file's header and its non-blank data rows, read once, in order."""

    def __init__(self, path: Path, header: list[str], records: Iterator[Record]):
        self.path = path
        self.header = header
        self.records = records
        """Every data row as ``(row_number, cells, problem)``; problem: a wrong cell count."""

    @property
    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """The data rows as ``(row_number, cells)``; a row with a wrong cell count is an error."""
        for row, cells, problem in self.records:
            if problem is not None:
                raise DataError(f"{self.path}: {problem}")
            yield row, cells

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

    The whole file is read into memory (at most `MAX_CSV_BYTES`); blank lines are skipped; a
    row with another number of cells than the header carries a problem (`CsvTable.records`).
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
    first = next((ln for ln in text.split("\n") if ln.strip(BLANK)), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; a header row is required")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_guess_delimiter(first))
    try:
        header = [h.strip(BLANK) for h in next(r for r in reader if r)]
    except csv.Error as exc:
        raise DataError(f"{path}: invalid CSV: {exc}") from exc
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise DataError(f"{path}: header row has empty column name(s) at position(s) {empty}")

    def records() -> Iterator[Record]:
        try:
            for cells in reader:
                if not cells or all(not c.strip(BLANK) for c in cells):
                    continue
                row = reader.line_num
                problem = None
                if len(cells) != len(header):
                    problem = _cell_count_problem(row, len(cells), len(header))
                yield row, cells, problem
        except csv.Error as exc:
            raise DataError(f"{path}: invalid CSV near row {reader.line_num}: {exc}") from exc

    return CsvTable(path, header, records())


def _number(text: str) -> float | None:
    if not text.isascii():  # float() reads other scripts' digits; the browser does not
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class SkippedRow:
    """A data row left out of a CSV file, and why."""

    row: int
    """Its row number as a spreadsheet shows it (the header is row 1)."""
    column: str | None
    """The column of the bad cell; None when the row has a wrong number of cells."""
    value: str | None
    """The bad cell's text (without surrounding spaces); None when `column` is None."""
    message: str
    """What is wrong, e.g. ``row 4, column 'Age': 'abc' is not a number``."""


class SkippedRows(UserWarning):
    """Rows of a CSV file were left out for a bad cell; the others were loaded."""

    SHOWN = 5

    def __init__(self, path: Path, skipped: Sequence[SkippedRow], kept: int) -> None:
        self.path = path
        self.skipped = tuple(skipped)
        self.kept = kept
        n = len(self.skipped)
        lines = [
            f"{path}: skipped {n} of {n + kept} rows with a bad cell "
            f"({kept} row{'' if kept == 1 else 's'} loaded):",
            *(f"  {s.message}" for s in self.skipped[: self.SHOWN]),
        ]
        if n > self.SHOWN:
            lines.append(f"  … and {n - self.SHOWN} more")
        super().__init__("\n".join(lines))


def refusal(file: str, skipped: Sequence[SkippedRow]) -> str:
    """The message refusing a file whose data rows all have a bad cell (`skipped`, not empty)."""
    n = len(skipped)
    which = "the only data row has" if n == 1 else f"all {n} data rows have"
    return f"{file}: no usable rows: {which} a bad cell; the first: {skipped[0].message}"


class _BadCell(Exception):
    """A bad cell in one row (internal: the row is skipped)."""

    def __init__(self, row: int, column: str | None, value: str | None, message: str) -> None:
        super().__init__(message)
        self.skipped = SkippedRow(row, column, value, message)


def _cell_value(row: int, spec: ColumnSpec, cell: str) -> float:
    """The raw (not yet standardised) value of one input cell."""
    text = cell.strip(BLANK)
    where = f"row {row}, column {spec.name!r}"
    if not text:
        if spec.fill is None:
            message = f"{where} is empty and the column has no fill value"
            raise _BadCell(row, spec.name, text, message)
        return spec.fill
    if spec.categories is not None:
        try:
            return float(spec.categories.index(text))
        except ValueError:
            allowed = ", ".join(repr(c) for c in spec.categories)
            message = f"{where}: unknown value {text!r}; allowed: {allowed}"
            raise _BadCell(row, spec.name, text, message) from None
    value = _number(text)
    if value is None:
        raise _BadCell(row, spec.name, text, f"{where}: {text!r} is not a number")
    return value


def _label_value(row: int, training: TrainingInfo, column: str, cell: str) -> float:
    """The class id (labels given) or the numeric target of one output cell."""
    text = cell.strip(BLANK)
    where = f"row {row}, column {column!r}"
    if not text:
        raise _BadCell(row, column, text, f"{where} is empty; every row needs a label")
    labels = training.labels
    if labels:
        if text in labels:
            return float(labels.index(text))
        value = _number(text)
        if value is not None and value.is_integer() and 0 <= value < len(labels):
            return value
        allowed = ", ".join(repr(x) for x in labels)
        message = (
            f"{where}: unknown label {text!r}; use one of {allowed} or its index "
            f"0..{len(labels) - 1}"
        )
        raise _BadCell(row, column, text, message)
    value = _number(text)
    if value is None:
        raise _BadCell(row, column, text, f"{where}: {text!r} is not a number")
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
    output = training.output_column
    table = read_csv(path)
    positions = table.index_of([c.name for c in specs])
    out_pos = table.index_of([output])[0] if labelled else None
    raw: list[list[float]] = []
    targets: list[float] = []
    row_numbers: list[int] = []
    skipped: list[SkippedRow] = []
    for row, cells, problem in table.records:
        try:
            if problem is not None:
                raise _BadCell(row, None, None, problem)
            values = [_cell_value(row, s, cells[p]) for s, p in zip(specs, positions, strict=True)]
            if out_pos is not None:
                targets.append(_label_value(row, training, output, cells[out_pos]))
        except _BadCell as bad:
            skipped.append(bad.skipped)
            continue
        raw.append(values)
        row_numbers.append(row)
    if not raw and not skipped:
        raise DataError(f"{table.path}: no data rows")
    if not raw:
        raise DataError(refusal(str(table.path), skipped))
    if skipped:
        warnings.warn(SkippedRows(table.path, skipped, len(raw)), stacklevel=3)
    x = np.array(raw, dtype=np.float64).reshape(len(raw), len(specs))
    return _standardise(x, training), np.array(targets), row_numbers, table.path


def load_csv(path: str | Path, training: TrainingInfo) -> Dataset:
    """Load a labelled CSV file for a tabular task.

    Needs a header row naming every input column and the output column (other columns are
    ignored). With ``training.labels`` the output cell is a label name or its index; without,
    a number (regression). Rows with a bad cell are skipped and reported in a `SkippedRows`
    warning (row, column, value of each); `DataError` when no usable row remains.
    """
    x, targets, _, _ = _read(path, training, labelled=True)
    y = targets.astype(np.int64) if training.labels else targets.astype(np.float32)
    return Dataset(x, y)


def load_csv_unlabelled(path: str | Path, training: TrainingInfo) -> Inputs:
    """Load a CSV file for prediction: the input columns only (an output column is ignored).

    Each input is named ``"<file name>:<row>"``; rows with a bad input cell are skipped and
    reported as in `load_csv`.
    """
    x, _, rows, resolved = _read(path, training, labelled=False)
    return Inputs(x, tuple(f"{resolved.name}:{r}" for r in rows))
