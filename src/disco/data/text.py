"""Text data: plain-text files read as documents, tokenised, and cut into training windows.

One rule in Python and in the browser (web/src/core/data/text.ts; tests/vectors/text_windows.json
pins both; docs/text.md explains it):

- **reading**: each file is one document, UTF-8 only; a leading byte-order mark is dropped and
  CRLF and lone CR become LF; an empty file, a NUL byte (a binary or UTF-16 file) or bytes that are
  not UTF-8 are refused with the file's name and the byte's offset; a file may hold at most
  `MAX_FILE_BYTES` bytes and the files `MAX_TOTAL_BYTES` in all. Files are read one at a time.
- **order**: documents are taken by name in code-point order (a file's name, or its path from
  the folder it came in, the folder's name first, as the browser names it).
- **split**: the last ``floor(n × validation_split)`` of a document's ``n`` tokens go to
  validation, the rest to training, so that a participant with one document validates too.
- **streams**: each part is followed by the end-of-text token and the parts are joined in
  document order (an empty part is left out): one training stream, one validation stream.
- **windows**: ``context + 1`` tokens (inputs ``w[:-1]``, targets ``w[1:]``) starting every
  `stride` tokens of a stream, ``stride = context`` by default (every token is a target once);
  validation windows always use ``stride = context``; the incomplete tail is dropped. Windows may
  span documents: the end-of-text token between them says where one ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from disco.errors import DataError

if TYPE_CHECKING:
    from disco.text.tokenizer import Tokenizer

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_TOTAL_BYTES",
    "TEXT_SUFFIXES",
    "TextWindows",
    "decode_text",
    "iter_texts",
    "load_text",
    "make_windows",
    "text_files",
    "windows",
]

MAX_FILE_BYTES = 16 * 2**20
"""Most bytes one text file may hold (16 MiB)."""
MAX_TOTAL_BYTES = 64 * 2**20
"""Most bytes the text files of one participant may hold in all (64 MiB)."""
TEXT_SUFFIXES = (".txt",)
"""Files read from a folder (a file named alone is read whatever its suffix)."""

_BOM = b"\xef\xbb\xbf"
_IGNORED_DIRS = frozenset({"__MACOSX"})


@dataclass(frozen=True, eq=False)
class TextWindows:
    """Training and validation windows of ``context + 1`` token ids (int32, read-only)."""

    train: np.ndarray  # (N, context + 1)
    validation: np.ndarray  # (M, context + 1)
    documents: tuple[str, ...]  # the documents' names, in the order their tokens were taken

    @property
    def context(self) -> int:
        """Tokens the model reads at once: a window holds one more."""
        return int(self.train.shape[1]) - 1

    @staticmethod
    def pairs(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, targets)``: each window without its last token, and without its first."""
        return windows[:, :-1], windows[:, 1:]


def _size(n: int) -> str:
    """Bytes in words, as the web says them: bytes, or MiB rounded up to a tenth."""
    return f"{math.ceil(n * 10 / 2**20) / 10:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def decode_text(data: bytes, name: str) -> str:
    """The text of one file's bytes under the reading rule, or `DataError` saying what is wrong."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    if len(data) == start:
        raise DataError(f"{name} is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{name} is not a plain-text file (a NUL byte at byte {nul}): connect UTF-8 text"
        )
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        raise DataError(
            f"{name} is not UTF-8 text (byte {at} is 0x{data[at]:02x}): save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _hidden(part: str) -> bool:
    return part.startswith(".") or part in _IGNORED_DIRS


def text_files(paths: str | Path | Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every document: a file as its name, the `TEXT_SUFFIXES` files under a
    folder (hidden ones skipped) as ``folder/…/file``; sorted by name, code point by code point."""
    found: list[tuple[str, Path]] = []
    for path in [paths] if isinstance(paths, str | Path) else paths:
        path = Path(path)
        if path.is_dir():
            for p in path.rglob("*"):
                rel = p.relative_to(path)
                if p.suffix.lower() in TEXT_SUFFIXES and p.is_file():
                    if not any(_hidden(part) for part in rel.parts):
                        found.append((f"{path.name}/{rel.as_posix()}", p))
        elif path.exists():
            found.append((path.name, path))
        else:
            raise DataError(f"{path}: no such file or folder")
    if not found:
        raise DataError("no text files: connect .txt files (UTF-8 plain text)")
    return sorted(found, key=lambda f: f[0])  # str order is code-point order


def iter_texts(
    paths: str | Path | Sequence[str | Path],
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of each document in order, read one file at a time (`decode_text`).

    The files' sizes are checked before any is read, and each read stops one byte past the
    limit, so a file that grows, or one with no size (a pipe), cannot get past it either.
    """
    files = text_files(paths)
    sizes = [p.stat().st_size for _, p in files]
    total = sum(sizes)
    if total > max_total_bytes:
        raise DataError(
            f"the text files hold {_size(total)} in all; at most {_size(max_total_bytes)} can be "
            "used: connect fewer files"
        )
    read = 0
    for (name, path), size in zip(files, sizes, strict=True):
        try:
            with path.open("rb") as f:
                data = f.read(max_file_bytes + 1)
        except OSError as exc:
            raise DataError(f"{name}: cannot be read ({exc.strerror})") from None
        if len(data) > max_file_bytes:
            raise DataError(
                f"{name} is {_size(max(size, len(data)))}; a text file may hold at most "
                f"{_size(max_file_bytes)}: split it into smaller files"
            )
        read += len(data)
        if read > max_total_bytes:
            raise DataError(f"the text files hold more than {_size(max_total_bytes)} in all")
        yield name, decode_text(data, name)


def windows(stream: np.ndarray, context: int, stride: int) -> np.ndarray:
    """Every ``stream[i·stride : i·stride + context + 1]`` that is whole, as rows (int32)."""
    width = context + 1
    if len(stream) < width:
        return np.zeros((0, width), dtype=np.int32)
    count = (len(stream) - width) // stride + 1
    index = np.arange(count)[:, None] * stride + np.arange(width)[None, :]
    return np.ascontiguousarray(stream[index], dtype=np.int32)


def _check_settings(context: int, stride: int, validation_split: float) -> None:
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise DataError(f"the context must be a whole number of tokens, at least 1; got {context}")
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= context:
        raise DataError(
            f"the stride must be a whole number from 1 to the context ({context}); got {stride}"
        )
    if not 0.0 <= validation_split < 1.0:
        raise DataError("validation_split must be at least 0 and less than 1")


def make_windows(
    documents: Sequence[Sequence[int] | np.ndarray],
    eot_id: int,
    context: int,
    *,
    stride: int | None = None,
    validation_split: float = 0.2,
    names: Sequence[str] = (),
) -> TextWindows:
    """The training and validation windows of tokenised documents, in order (the module's rule)."""
    stride = context if stride is None else stride
    _check_settings(context, stride, validation_split)
    eot = np.array([eot_id], dtype=np.int32)
    head: list[np.ndarray] = []
    tail: list[np.ndarray] = []
    for doc in documents:
        ids = np.asarray(doc, dtype=np.int32).reshape(-1)
        held = math.floor(len(ids) * validation_split)
        cut = len(ids) - held
        if cut:
            head += [ids[:cut], eot]
        if held:
            tail += [ids[cut:], eot]
    train_stream = np.concatenate(head) if head else np.zeros(0, np.int32)
    train = windows(train_stream, context, stride)
    if not len(train):
        raise DataError(
            f"the text gives {len(train_stream)} training tokens; a training window needs "
            f"{context + 1}: connect more text"
        )
    validation = windows(np.concatenate(tail) if tail else np.zeros(0, np.int32), context, context)
    for array in (train, validation):
        array.setflags(write=False)
    return TextWindows(train=train, validation=validation, documents=tuple(names))


def load_text(
    paths: str | Path | Sequence[str | Path],
    tokenizer: Tokenizer,
    context: int,
    *,
    stride: int | None = None,
    validation_split: float = 0.2,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> TextWindows:
    """Text files (a file, a folder of .txt files, or a list of them) as training windows."""
    _check_settings(context, context if stride is None else stride, validation_split)
    names: list[str] = []
    documents: list[np.ndarray] = []
    for name, text in iter_texts(
        paths, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes
    ):
        names.append(name)  # text read from UTF-8 is valid Unicode: encoding cannot fail
        documents.append(np.asarray(tokenizer.encode(text), dtype=np.int32))
    return make_windows(
        documents,
        tokenizer.eot_id,
        context,
        stride=stride,
        validation_split=validation_split,
        names=names,
    )
