"""A text task's tokenizer: byte-level BPE, trained with the `tokenizers` library, kept as JSON.

A `Tokenizer` is the exact text of a ``tokenizer.json`` (what the task stores and the server will
serve, named by its SHA-256 in ``training.tokenizer_digest``) and the `tokenizers.Tokenizer` built
from it, offline. The browser loads the same file with ``@huggingface/tokenizers``
(web/src/core/text/tokenizer.ts) and gets the same ids: tests/vectors/tokenizer.json pins both.

Only the shape `train_tokenizer` makes is accepted (`check_shape`, the same rules as the web's):
byte-level BPE — every byte has a token, so no text is unknown and ``decode(encode(text)) ==
text`` for any text — no normalizer, GPT-2's pre-tokenizer without a prefix space, and the
end-of-text token `EOT`. docs/text.md says more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, overload

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from disco.errors import DataError, TaskError
from disco.task import MAX_VOCAB_SIZE, MIN_VOCAB_SIZE, Task, TrainingInfo

__all__ = [
    "EOT",
    "TASK_FILE",
    "TOKENIZER_FILE",
    "Tokenizer",
    "attach_tokenizer",
    "check_shape",
    "check_task_pair",
    "check_task_tokenizer",
    "check_text",
    "load_task_folder",
    "save_task_folder",
    "train_tokenizer",
]

TASK_FILE = "task.json"
TOKENIZER_FILE = "tokenizer.json"

EOT = "<|endoftext|>"
"""The end-of-text token: it ends every piece of text in the training windows (docs/text.md)."""

BYTES = 256
"""Tokens every tokenizer has besides its merges: one per byte."""

# (field path, the only values accepted): what makes a tokenizer.json one disco can use
_SHAPE: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("model.type", ("BPE",)),
    ("model.dropout", (None,)),
    ("model.unk_token", (None,)),
    ("model.continuing_subword_prefix", (None,)),
    ("model.end_of_word_suffix", (None,)),
    ("model.byte_fallback", (False,)),
    ("model.ignore_merges", (False,)),
    ("normalizer", (None,)),
    ("pre_tokenizer.type", ("ByteLevel",)),
    ("pre_tokenizer.add_prefix_space", (False,)),
    ("pre_tokenizer.use_regex", (True,)),
    ("post_processor", (None,)),
    ("decoder.type", ("ByteLevel",)),
    ("truncation", (None,)),
    ("padding", (None,)),
)


def _at(doc: Any, path: str) -> Any:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def check_shape(doc: Any) -> int:
    """Refuse (`TaskError`) a decoded tokenizer.json that is not byte-level BPE as disco trains it;
    return its vocabulary size. The web's ``checkShape`` applies the same rules."""
    if not isinstance(doc, dict):
        raise TaskError("tokenizer.json: expected a JSON object")
    for path, allowed in _SHAPE:
        value = _at(doc, path)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            want = " or ".join(json.dumps(a) for a in allowed)
            raise TaskError(
                f"tokenizer.json: {path} must be {want} (it is {json.dumps(value)}); disco reads "
                "byte-level BPE tokenizers as disco.text.train_tokenizer makes them"
            )
    vocab = _at(doc, "model.vocab")
    if not isinstance(vocab, dict) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()
    ):
        raise TaskError("tokenizer.json: model.vocab must map tokens to whole numbers")
    n = len(vocab)
    if sorted(vocab.values()) != list(range(n)):
        raise TaskError(f"tokenizer.json: the vocabulary's ids must be 0 to {n - 1}, each once")
    if not MIN_VOCAB_SIZE <= n <= MAX_VOCAB_SIZE:
        raise TaskError(
            f"tokenizer.json: its vocabulary holds {n} tokens; a text task's holds "
            f"{MIN_VOCAB_SIZE} to {MAX_VOCAB_SIZE}"
        )
    missing = [c for c in pre_tokenizers.ByteLevel.alphabet() if c not in vocab]
    if missing:
        raise TaskError(f"tokenizer.json: {len(missing)} of the {BYTES} bytes have no token")
    added = doc.get("added_tokens")
    eot = [
        t
        for t in added or ()
        if isinstance(t, dict) and t.get("content") == EOT and t.get("special")
    ]
    if not isinstance(added, list) or len(eot) != 1 or eot[0].get("id") != vocab.get(EOT):
        raise TaskError(f"tokenizer.json: it needs the special token {EOT} in its vocabulary")
    return n


def check_text(text: str) -> None:
    """Refuse (`DataError`) text that is not valid Unicode: a lone surrogate has no UTF-8 bytes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise DataError(
            f"the text is not valid Unicode: a lone surrogate (U+{code:04X}) at character "
            f"{exc.start}"
        ) from None


class Tokenizer:
    """A byte-level BPE tokenizer read from the exact bytes of its tokenizer.json."""

    def __init__(self, data: bytes | str) -> None:
        """Check and load `data`, a tokenizer.json's bytes (or text); `TaskError` if unusable."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        try:
            text = raw.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TaskError(f"tokenizer.json is not JSON text: {exc}") from None
        except RecursionError:
            raise TaskError("tokenizer.json is not JSON text: values nested too deeply") from None
        self.vocab_size = check_shape(doc)
        try:
            self._tokenizer = tokenizers.Tokenizer.from_str(text)
        except Exception as exc:  # the library says what it cannot read
            raise TaskError(f"tokenizer.json cannot be loaded: {exc}") from None
        self._bytes = raw
        self.digest = hashlib.sha256(raw).hexdigest()
        """SHA-256 of the tokenizer.json bytes, lowercase hex: ``training.tokenizer_digest``."""
        self.eot_id: int = doc["model"]["vocab"][EOT]  # check_shape found it

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """The tokenizer saved at `path`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TaskError(f"cannot read the tokenizer {path}: {exc.strerror}") from None
        return cls(data)

    def to_bytes(self) -> bytes:
        """The tokenizer.json bytes, exactly as read (their SHA-256 is `digest`)."""
        return self._bytes

    def save(self, path: str | Path) -> None:
        """Write the tokenizer.json bytes to `path`."""
        Path(path).write_bytes(self._bytes)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, as is (no normalisation). The text ``<|endoftext|>`` is `EOT`."""
        check_text(text)
        return list(self._tokenizer.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; bytes that are not UTF-8 read as U+FFFD, `EOT` as its text."""
        plain: list[int] = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < self.vocab_size:
                raise DataError(
                    f"token id {i!r} is not in the vocabulary (0 to {self.vocab_size - 1})"
                )
            plain.append(int(i))
        return self._tokenizer.decode(plain, skip_special_tokens=False) if plain else ""

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, digest={self.digest[:12]})"


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE tokenizer of at most `vocab_size` tokens learnt from `texts`.

    `vocab_size` counts the 256 byte tokens, `EOT` and the merges; the merges stop early when no
    pair occurs `min_frequency` times. The same texts give the same tokenizer.json bytes (the
    library's trainer breaks ties by the pair's ids, not by hashing order;
    tests/text/test_tokenizer.py checks it across processes and thread counts). Texts are taken
    as they are: read files with `disco.data.text` to train on what participants will feed.
    """
    if not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise TaskError(
            f"vocab_size must be {MIN_VOCAB_SIZE} to {MAX_VOCAB_SIZE} (the {BYTES} bytes, "
            f"{EOT} and the merges); got {vocab_size}"
        )
    if min_frequency < 1:
        raise TaskError(f"min_frequency must be at least 1, got {min_frequency}")
    pieces: list[str] = []
    for text in texts:
        check_text(text)
        pieces.extend(p for p in text.split(EOT) if p)  # the special token is not learnt from
    if not pieces:
        raise DataError("no text to train a tokenizer on")
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(pieces, trainer=trainer, length=len(pieces))
    return Tokenizer(bpe.to_str())


# -- stored with a task --------------------------------------------------------------------------


@overload
def attach_tokenizer(target: Task, tokenizer: Tokenizer) -> Task: ...
@overload
def attach_tokenizer(target: TrainingInfo, tokenizer: Tokenizer) -> TrainingInfo: ...
def attach_tokenizer(target: Task | TrainingInfo, tokenizer: Tokenizer) -> Task | TrainingInfo:
    """`target` (a task or its training info) naming `tokenizer`: its vocabulary size and the
    digest of its bytes, which are stored beside the task (`save_task_folder`)."""
    fields = {"vocab_size": tokenizer.vocab_size, "tokenizer_digest": tokenizer.digest}
    if isinstance(target, Task):
        return target.with_training(**fields)
    return TrainingInfo.model_validate({**target.model_dump(), **fields})


def check_task_tokenizer(task: Task, tokenizer: Tokenizer) -> None:
    """Refuse (`TaskError`) a tokenizer that is not the one `task` names."""
    t = task.training
    if t.tokenizer_digest != tokenizer.digest:
        raise TaskError(
            f"this tokenizer.json is not task {task.id!r}'s: its SHA-256 is "
            f"{tokenizer.digest[:12]}…, the task names {(t.tokenizer_digest or 'none')[:12]}…"
        )
    if t.vocab_size != tokenizer.vocab_size:  # same bytes: only a hand-edited task gets here
        raise TaskError(
            f"task {task.id!r} says vocab_size {t.vocab_size} but its tokenizer has "
            f"{tokenizer.vocab_size} tokens"
        )


def check_task_pair(task: Task, tokenizer: Tokenizer | None, doing: str) -> None:
    """Refuse (`TaskError`) a text task without its own tokenizer, and a tokenizer for any other
    task, before `doing` ("save", "publish") anything with them."""
    if task.training.data_type == "text":
        if tokenizer is None:
            raise TaskError(f"task {task.id!r} is a text task: {doing} it with its tokenizer")
        check_task_tokenizer(task, tokenizer)
    elif tokenizer is not None:
        raise TaskError(f"task {task.id!r} is not a text task: it takes no tokenizer")


def save_task_folder(folder: str | Path, task: Task, tokenizer: Tokenizer | None = None) -> Path:
    """Write `task` as ``folder/task.json`` and, for a text task, its tokenizer as
    ``folder/tokenizer.json`` (checked against the task first); return the folder."""
    folder = Path(folder)
    check_task_pair(task, tokenizer, "save")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TASK_FILE).write_text(task.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save(folder / TOKENIZER_FILE)
    return folder


def load_task_folder(folder: str | Path) -> tuple[Task, Tokenizer | None]:
    """The task saved in `folder` and, for a text task, its tokenizer (checked against it):
    `disco.client.publish.read_task` of a folder."""
    from disco.client.publish import read_task

    return read_task(folder)
