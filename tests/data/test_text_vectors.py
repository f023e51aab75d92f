"""Text data against tests/vectors/text_windows.json, which the browser reads too
(web/tests/text.test.ts): the same bytes read as the same text, the same ids cut into the same
windows, the same files into the same documents and windows, or the same refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from disco.data.text import decode_text, load_text, make_windows
from disco.errors import DataError
from disco.text import Tokenizer

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((VECTORS_DIR / "text_windows.json").read_text(encoding="utf-8"))
TOKENIZER = Tokenizer.from_file(VECTORS_DIR / VECTORS["tokenizer"])


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


@named(VECTORS["reading"])
def test_reading(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    if "error" in case:
        with pytest.raises(DataError) as refused:
            decode_text(data, "f.txt")
        assert str(refused.value) == case["error"]
    else:
        assert decode_text(data, "f.txt") == case["text"]


@named(VECTORS["rule"])
def test_window_rule(case: dict[str, Any]) -> None:
    def make() -> Any:
        return make_windows(
            case["documents"],
            VECTORS["eot_id"],
            case["context"],
            stride=case["stride"],
            validation_split=case["validation_split"],
        )

    if "error" in case:
        with pytest.raises(DataError) as refused:
            make()
        assert str(refused.value) == case["error"]
        return
    made = make()
    assert made.train.tolist() == case["train"]
    assert made.validation.tolist() == case["validation"]
    assert made.context == case["context"]


@named(VECTORS["files"])
def test_files(case: dict[str, Any], tmp_path: Path) -> None:
    paths = []
    for f in case["files"]:
        (tmp_path / f["name"]).write_bytes(bytes.fromhex(f["hex"]))
        paths.append(tmp_path / f["name"])
    if "error" in case:
        with pytest.raises(DataError) as refused:
            load_text(paths, TOKENIZER, **case["settings"])
        assert str(refused.value) == case["error"]
        return
    made = load_text(paths, TOKENIZER, **case["settings"])
    assert list(made.documents) == case["documents"]
    assert made.train.tolist() == case["train"]
    assert made.validation.tolist() == case["validation"]
