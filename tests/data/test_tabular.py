"""CSV loading: preprocessing values, delimiters, bad rows skipped and reported, file errors."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.data.tabular import SkippedRow, SkippedRows, load_csv, load_csv_unlabelled
from disco.errors import DataError
from disco.task import ColumnSpec, TrainingInfo

FIXTURES = Path(__file__).parent / "fixtures"
RULE: dict[str, Any] = json.loads((FIXTURES / "csv_rows.json").read_text(encoding="utf-8"))


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_standardises_with_the_task_constants(tmp_path: Path, tabular: TrainingInfo) -> None:
    path = write(tmp_path, "id,a,b,c,y\n1,5,2.5,blue,yes\n2,,-1,red,0\n")
    d = load_csv(path, tabular)
    # a: (5-1)/2 = 2, empty -> fill 0 -> (0-1)/2 = -0.5; c: index of blue = 2, red = 0
    np.testing.assert_array_equal(d.x, np.array([[2.0, 2.5, 2.0], [-0.5, -1.0, 0.0]], np.float32))
    assert d.y.tolist() == [1, 0]  # label name 'yes' and index '0'


def test_semicolon_delimiter_bom_and_crlf(tmp_path: Path, tabular: TrainingInfo) -> None:
    path = write(tmp_path, "\ufeffa;b;c;y\r\n3;1,5;green;no\r\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no usable rows: .* '1,5' is not a number"):
        load_csv(path, tabular)  # a decimal comma is not silently misread
    path = write(tmp_path, "\ufeffa;b;c;y\r\n3;1.5;green;no\r\n\r\n")
    d = load_csv(path, tabular)
    np.testing.assert_allclose(d.x, [[1.0, 1.5, 1.0]])
    assert d.y.tolist() == [0]


def test_quoted_separator_inside_a_value(tmp_path: Path, tabular: TrainingInfo) -> None:
    path = write(tmp_path, 'name,a,b,c,y\n"Braund, Mr. Owen",1,2,red,yes\n')
    assert load_csv(path, tabular).x.tolist() == [[0.0, 2.0, 0.0]]


def test_missing_columns_are_named(tmp_path: Path, tabular: TrainingInfo) -> None:
    path = write(tmp_path, "a,x,y\n1,2,yes\n")
    with pytest.raises(DataError) as err:
        load_csv(path, tabular)
    message = str(err.value)
    assert "data.csv" in message and "'b'" in message and "'c'" in message
    assert "the file has 'a', 'x', 'y'" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1,oops,red,yes", r"row 3, column 'b': 'oops' is not a number"),
        ("1,,red,yes", r"row 3, column 'b' is empty and the column has no fill value"),
        ("1,2,purple,yes", r"row 3, column 'c': unknown value 'purple'; allowed: 'red', 'green'"),
        ("1,2,red,maybe", r"row 3, column 'y': unknown label 'maybe'; use one of 'no', 'yes'"),
        ("1,2,red,2", r"unknown label '2'"),
        ("1,2,red,", r"row 3, column 'y' is empty"),
        ("1,nan,red,yes", r"'nan' is not a number"),
        ("1,2,red", r"row 3 has 3 cells but the header has 4"),
    ],
)
def test_a_bad_row_is_skipped_and_reported(
    tmp_path: Path, tabular: TrainingInfo, body: str, expected: str
) -> None:
    path = write(tmp_path, f"a,b,c,y\n0,0,red,no\n{body}\n")
    with pytest.warns(SkippedRows, match=expected) as caught:
        d = load_csv(path, tabular)
    assert len(d) == 1 and d.y.tolist() == [0]  # the good row still counts
    warning = caught[0].message
    assert isinstance(warning, SkippedRows)
    assert warning.path == path and warning.kept == 1 and [s.row for s in warning.skipped] == [3]
    assert str(warning).startswith(f"{path}: skipped 1 of 2 rows with a bad cell (1 row loaded):")


def test_the_rule_shared_with_the_web_app(tmp_path: Path) -> None:
    """tests/data/fixtures/csv_rows.json: the same kept rows and skipped rows as in the browser."""
    training = TrainingInfo.model_validate(RULE["training"])
    path = tmp_path / RULE["file"]
    shutil.copy(FIXTURES / RULE["file"], path)
    expected = RULE["labelled"]
    with pytest.warns(SkippedRows) as caught:
        data = load_csv(path, training)
    np.testing.assert_array_equal(data.x, np.array(expected["x"], dtype=np.float32))
    assert data.y.tolist() == expected["y"]
    (warning,) = [w.message for w in caught]
    assert isinstance(warning, SkippedRows)
    assert warning.skipped == tuple(SkippedRow(**s) for s in expected["skipped"])
    assert warning.kept == len(expected["rows"])

    with pytest.warns(SkippedRows) as caught:
        inputs = load_csv_unlabelled(path, training)
    assert inputs.sources == tuple(f"{path.name}:{r}" for r in RULE["unlabelled"]["rows"])
    (warning,) = [w.message for w in caught]
    assert isinstance(warning, SkippedRows)
    assert [s.row for s in warning.skipped] == RULE["unlabelled"]["skipped_rows"]


@pytest.mark.parametrize("case", RULE["refused"], ids=lambda c: str(c["message"]).split(": ")[1])
def test_the_refusals_shared_with_the_web_app(tmp_path: Path, case: dict[str, str]) -> None:
    training = TrainingInfo.model_validate(RULE["training"])
    path = write(tmp_path, case["text"])
    with pytest.raises(DataError) as err:
        load_csv(path, training)
    assert str(err.value) == case["message"].replace("FILE", str(path), 1)


def test_the_report_shows_the_first_rows_and_counts_the_rest(
    tmp_path: Path, tabular: TrainingInfo
) -> None:
    bad = "".join(f"{i},x,red,no\n" for i in range(7))
    path = write(tmp_path, f"a,b,c,y\n1,1,red,no\n{bad}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_csv(path, tabular)
    lines = str(caught[0].message).splitlines()
    assert lines[0] == f"{path}: skipped 7 of 8 rows with a bad cell (1 row loaded):"
    assert lines[1:] == [
        *(f"  row {r}, column 'b': 'x' is not a number" for r in range(3, 8)),
        "  … and 2 more",
    ]


def test_regression_target_and_unlabelled(tmp_path: Path) -> None:
    training = TrainingInfo(
        data_type="tabular", input_columns=(ColumnSpec(name="a"),), output_column="t"
    )
    path = write(tmp_path, "a,t\n1,0.25\n2,3\n")
    d = load_csv(path, training)
    assert d.y.dtype == np.float32 and d.y.tolist() == [0.25, 3.0]
    with pytest.raises(DataError, match=r"no usable rows: .*'x' is not a number"):
        load_csv(write(tmp_path, "a,t\n1,x\n", "bad.csv"), training)
    inputs = load_csv_unlabelled(write(tmp_path, "a\n7\n\n8\n", "p.csv"), training)
    assert inputs.x.tolist() == [[7.0], [8.0]] and inputs.sources == ("p.csv:2", "p.csv:4")


def test_file_level_errors(tmp_path: Path, tabular: TrainingInfo) -> None:
    with pytest.raises(DataError, match=r"\['a'\] appear more than once"):
        load_csv(write(tmp_path, "a,a,b,c,y\n1,1,2,red,no\n"), tabular)
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "nope.csv", tabular)
    with pytest.raises(DataError, match="empty; a header row is required"):
        load_csv(write(tmp_path, "\n\n"), tabular)
    with pytest.raises(DataError, match=r"header\.csv: no data rows$"):
        load_csv(write(tmp_path, "a,b,c,y\n", name="header.csv"), tabular)
    with pytest.raises(DataError, match="no data rows"):
        load_csv_unlabelled(write(tmp_path, "a,b,c\n\n", name="header2.csv"), tabular)
    with pytest.raises(DataError, match="not UTF-8"):
        load_csv(write(tmp_path, "a,b,c,y\n1,2,réd,no\n", encoding="latin-1"), tabular)
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(513 * 1024 * 1024)  # sparse: takes no disk space
    with pytest.raises(DataError, match="larger than 512 MB"):
        load_csv(big, tabular)
