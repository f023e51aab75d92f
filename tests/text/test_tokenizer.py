"""Training and loading the byte-level BPE tokenizer: deterministic, offline, bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from disco.errors import DataError, TaskError
from disco.text import EOT, Tokenizer, train_tokenizer

CORPUS = [
    "It was the best of times, it was the worst of times, it was the age of wisdom,\n"
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,\n",
    "Les sanglots longs des violons de l'automne blessent mon cœur d'une langueur monotone.\n",
    "春眠不覚暁 処処聞啼鳥 夜来風雨声 花落知多少\n",
]

TRAIN_IN_A_PROCESS = """
import sys
from disco.text import train_tokenizer
texts = sys.stdin.read().split("\\x1e")
sys.stdout.write(train_tokenizer(texts, 320).digest)
"""


def test_the_same_corpus_gives_the_same_bytes_in_any_process_and_thread_count() -> None:
    first = train_tokenizer(CORPUS, 320)
    assert train_tokenizer(CORPUS, 320).to_bytes() == first.to_bytes()
    for seed, threads in (("1", "1"), ("2", "2"), ("random", "4")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "RAYON_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", TRAIN_IN_A_PROCESS],
            input="\x1e".join(CORPUS),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        assert done.stdout == first.digest


def test_another_corpus_gives_another_tokenizer() -> None:
    assert train_tokenizer(CORPUS, 320).digest != train_tokenizer(CORPUS[:2], 320).digest


def test_the_vocabulary_holds_every_byte_the_end_of_text_token_and_at_most_the_size() -> None:
    tok = train_tokenizer(CORPUS, 300)
    assert 257 < tok.vocab_size <= 300
    assert tok.eot_id == 0
    doc = json.loads(tok.to_bytes())
    assert [t["content"] for t in doc["added_tokens"]] == [EOT]
    assert len(doc["model"]["merges"]) == tok.vocab_size - 257
    # a big vocabulary stops when no pair occurs twice
    assert train_tokenizer(CORPUS, 60_000).vocab_size < 1_000


@pytest.mark.parametrize(
    "text",
    [
        "Never seen: Ѫ ᚠ 𝔸 𓀀 \U0010fffd and \x00\x1b control bytes",
        "  runs   of\n\n\nwhitespace\t\t and a trailing space ",
        "cafe\u0301 vs café, 👨‍👩‍👧, <|endoftext|> inside",
        "",
    ],
)
def test_any_text_decodes_back_to_itself(text: str) -> None:
    tok = train_tokenizer(CORPUS, 300)
    assert tok.decode(tok.encode(text)) == text


def test_the_end_of_text_text_is_not_learnt_from() -> None:
    tok = train_tokenizer([f"{EOT}{EOT} {EOT}", *CORPUS], 400)
    vocab = json.loads(tok.to_bytes())["model"]["vocab"]
    assert not [t for t in vocab if "endoftext" in t and t != EOT]


@pytest.mark.parametrize("size", [256, 65_537, 0])
def test_a_vocabulary_size_out_of_bounds_is_refused(size: int) -> None:
    with pytest.raises(TaskError, match="vocab_size must be 257 to 65536"):
        train_tokenizer(CORPUS, size)


def test_nothing_to_learn_from_is_refused() -> None:
    with pytest.raises(DataError, match="no text to train a tokenizer on"):
        train_tokenizer(["", EOT], 300)
    with pytest.raises(DataError, match="lone surrogate"):
        train_tokenizer(["a\ud800"], 300)
    with pytest.raises(TaskError, match="min_frequency"):
        train_tokenizer(CORPUS, 300, min_frequency=0)


def test_save_and_load_keep_the_bytes(tmp_path: Path) -> None:
    tok = train_tokenizer(CORPUS, 300)
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.from_file(tmp_path / "tokenizer.json")
    assert again.to_bytes() == tok.to_bytes() and again.digest == tok.digest
    assert again.encode("the age of wisdom") == tok.encode("the age of wisdom")
    assert repr(again) == f"Tokenizer(vocab_size={tok.vocab_size}, digest={tok.digest[:12]})"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff{", "not JSON text"),
        (b"{not json", "not JSON text"),
        (b"[]", "expected a JSON object"),
        (b'{"model": {"type": "BPE"}}', "model.byte_fallback must be false"),
    ],
)
def test_bytes_that_are_no_tokenizer_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        Tokenizer(data)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="cannot read the tokenizer"):
        Tokenizer.from_file(tmp_path / "nope.json")


def test_loading_needs_no_network(tmp_path: Path) -> None:
    """Loaded from a file in a process where any connection fails."""
    tok = train_tokenizer(CORPUS, 300)
    tok.save(tmp_path / "tokenizer.json")
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('no network')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from disco.text import Tokenizer\n"
        f"t = Tokenizer.from_file({str(tmp_path / 'tokenizer.json')!r})\n"
        "sys.stdout.write(str(t.encode('the age of wisdom')))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == str(tok.encode("the age of wisdom"))
