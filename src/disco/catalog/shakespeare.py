"""The ``shakespeare`` task: a small GPT that learns to write like Shakespeare, with its tokenizer.

The tokenizer is byte-level BPE of 2,048 tokens (`disco.text.train_tokenizer`) trained on the
works participants train on (`disco.data.shakespeare.training_works`, the held-out works left
out), and shipped with the package as ``shakespeare.tokenizer.json`` beside this module: a task
names its tokenizer by digest, and every participant — Python or browser — must get these exact
bytes, so they are made once and committed, never retrained at run time. Training is
deterministic (docs/text.md), so the file can be checked against a fresh training::

    python -m disco.catalog.shakespeare           # rewrite the file from the texts
    python -m disco.catalog.shakespeare --check   # exit 1 when the file is not what they give

(tests/catalog/test_shakespeare_task.py runs the check.) docs/text.md justifies the sizes.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from disco.models import architectures as arch
from disco.task import DisplayInfo, Task, TrainingInfo
from disco.text.tokenizer import Tokenizer, attach_tokenizer, train_tokenizer

__all__ = [
    "CONTEXT",
    "TOKENIZER_PATH",
    "VOCAB_SIZE",
    "make_tokenizer",
    "shakespeare",
    "tokenizer",
]

VOCAB_SIZE = 2048
"""Tokens of the task's tokenizer: 256 bytes, the end-of-text token and 1,791 merges."""
CONTEXT = 64
"""Tokens the model reads at once (about 170 characters: a few lines of verse)."""
TOKENIZER_PATH = Path(__file__).with_name("shakespeare.tokenizer.json")
"""The task's tokenizer.json, shipped with the package (made by `make_tokenizer`)."""


def make_tokenizer() -> Tokenizer:
    """Train the task's tokenizer afresh on the training works (about 10 s)."""
    from disco.data.shakespeare import training_works

    return train_tokenizer((w.text for w in training_works()), VOCAB_SIZE)


@functools.cache
def tokenizer() -> Tokenizer:
    """The task's tokenizer, from the package's file."""
    return Tokenizer.from_file(TOKENIZER_PATH)


def shakespeare() -> Task:
    """Write like Shakespeare: a small GPT trained on his works, split by play."""
    tok = tokenizer()
    task = Task(
        id="shakespeare",
        display=DisplayInfo(
            title="Write like Shakespeare",
            summary="Train a small language model (a GPT) on Shakespeare's plays, each "
            "participant holding different plays, then let it write: give it the start of a "
            "line and it continues in his style.",
            data_format="Plain-text files (.txt, UTF-8), one or many: each file is one "
            "document. Any English text works; the sample data is Shakespeare's works, one "
            "file per play.",
            example="HAMLET, PRINCE OF DENMARK\n\nACT I.\n\nScene I. Elsinore. A platform "
            "before the Castle.\n\nBer.\nWho's there?",
            model_description=f"A GPT: 4 pre-LayerNorm transformer blocks of width 128 with 4 "
            f"attention heads, a context of {CONTEXT} tokens and a byte-level BPE vocabulary "
            f"of {tok.vocab_size} tokens (about 1.1M parameters, input and output embeddings "
            "tied).",
            sample_data="disco data samples --task shakespeare --clients 3 --out DIR",
        ),
        training=TrainingInfo(
            data_type="text",
            epochs=2,
            epochs_per_round=1,
            rounds_per_epoch=8,  # a participant's epoch is long: combine 8 times in each
            batch_size=16,  # as good a model as 8, better than 32, in the same time (docs/text.md)
            validation_split=0.1,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=0.01,
            gradient_clip=1.0,
            max_sequence_length=CONTEXT,
            vocab_size=tok.vocab_size,
            tokenizer_digest=tok.digest,
            min_participants=1,
            round_deadline_s=600.0,
        ),
        model=arch.gpt(tok.vocab_size, CONTEXT, d_model=128, layers=4, heads=4, dropout=0.0),
    )
    return attach_tokenizer(task, tok)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the tokenizer file, or check it (``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m disco.catalog.shakespeare")
    parser.add_argument("--check", action="store_true", help="only check the committed file")
    args = parser.parse_args(argv)
    fresh = make_tokenizer()
    if args.check:
        same = TOKENIZER_PATH.is_file() and TOKENIZER_PATH.read_bytes() == fresh.to_bytes()
        print(f"{TOKENIZER_PATH.name}: {'up to date' if same else 'OUT OF DATE'} ({fresh.digest})")
        return 0 if same else 1
    fresh.save(TOKENIZER_PATH)
    print(f"wrote {TOKENIZER_PATH} ({fresh.vocab_size} tokens, sha256 {fresh.digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
