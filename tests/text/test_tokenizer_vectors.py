"""The tokenizer against tests/vectors/tokenizer.json, which the browser reads too
(web/tests/tokenizer.test.ts): one tokenizer.json, the same ids in Python's `tokenizers` and in
the browser's `@huggingface/tokenizers`, the same refusals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from disco.errors import DataError, TaskError
from disco.text import EOT, Tokenizer

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((VECTORS_DIR / "tokenizer.json").read_text(encoding="utf-8"))
RAW = (VECTORS_DIR / VECTORS["tokenizer"]).read_bytes()
TOKENIZER = Tokenizer(RAW)


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


def test_the_committed_vectors_are_what_the_code_produces() -> None:
    script = VECTORS_DIR / "text.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_file_loads_with_its_digest_size_and_end_of_text_id() -> None:
    assert TOKENIZER.digest == VECTORS["digest"] == hashlib.sha256(RAW).hexdigest()
    assert TOKENIZER.vocab_size == VECTORS["vocab_size"]
    assert TOKENIZER.eot_id == VECTORS["eot_id"]
    assert TOKENIZER.to_bytes() == RAW
    assert Tokenizer.from_file(VECTORS_DIR / VECTORS["tokenizer"]).digest == TOKENIZER.digest


@named(VECTORS["encode"])
def test_encode(case: dict[str, Any]) -> None:
    assert TOKENIZER.encode(case["text"]) == case["ids"]
    assert TOKENIZER.decode(case["ids"]) == case["text"]


def test_encode_random_strings() -> None:
    wrong = [c["text"] for c in VECTORS["random"] if TOKENIZER.encode(c["text"]) != c["ids"]]
    assert wrong == []
    assert all(TOKENIZER.decode(c["ids"]) == c["text"] for c in VECTORS["random"])


def test_the_end_of_text_text_is_the_token() -> None:
    assert TOKENIZER.encode(EOT) == [TOKENIZER.eot_id]


@named(VECTORS["decode"])
def test_decode(case: dict[str, Any]) -> None:
    assert TOKENIZER.decode(case["ids"]) == case["text"]


@named(VECTORS["refused_text"])
def test_refused_text(case: dict[str, Any]) -> None:
    text = "".join(chr(u) for u in case["code_units"])
    with pytest.raises(DataError, match=case["error"]):
        TOKENIZER.encode(text)


@pytest.mark.parametrize("case", VECTORS["refused_ids"], ids=lambda c: str(c["ids"]))
def test_refused_ids(case: dict[str, Any]) -> None:
    with pytest.raises(DataError) as refused:
        TOKENIZER.decode(case["ids"])
    assert str(refused.value) == case["error"]


@named(VECTORS["refused_tokenizers"])
def test_refused_tokenizers(case: dict[str, Any]) -> None:
    doc = json.loads(RAW)
    for change in case["changes"]:
        parent = doc
        for key in change["path"][:-1]:
            parent = parent[key]
        if change["value"] is None:
            parent.pop(change["path"][-1], None)
        else:
            parent[change["path"][-1]] = change["value"]
    with pytest.raises(TaskError) as refused:
        Tokenizer(json.dumps(doc))
    assert str(refused.value) == case["error"]
