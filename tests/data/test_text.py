"""Text files as training windows: folders, limits while reading, and the windows themselves."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from disco.data import TextWindows, load_text
from disco.data.text import MAX_FILE_BYTES, iter_texts, make_windows, text_files
from disco.errors import DataError
from disco.text import Tokenizer, train_tokenizer

SONNET = (
    "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n"
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer([SONNET] * 2, 300)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_folder_gives_its_txt_files_by_path_hidden_ones_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "plays"
    write(folder / "b.txt", "second")
    write(folder / "acts" / "a.TXT", "first")
    write(folder / "notes.md", "not read from a folder")
    write(folder / ".hidden.txt", "never read")
    write(folder / ".git" / "x.txt", "never read")
    write(folder / "__MACOSX" / "y.txt", "never read")
    alone = write(tmp_path / "extra.text", "a file named alone is read whatever its suffix")
    names = [name for name, _ in text_files([folder, alone])]
    assert names == ["extra.text", "plays/acts/a.TXT", "plays/b.txt"]
    assert [text for _, text in iter_texts(folder)] == ["first", "second"]


def test_missing_paths_and_empty_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        text_files(tmp_path / "nope.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no text files: connect \.txt files"):
        text_files(tmp_path / "empty")
    with pytest.raises(DataError, match="no text files"):
        text_files([])


def test_a_file_without_a_size_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    """A pipe says it holds 0 bytes: the read itself stops one byte past the limit."""
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)

    def feed() -> None:  # more than the limit, then gone
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as out:
            out.write(b"x" * 100)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(DataError, match=r"pipe\.txt is 11 bytes; a text file may hold at most 10"):
        list(iter_texts(fifo, max_file_bytes=10))
    writer.join(timeout=10)
    assert not writer.is_alive()


def test_the_limits_are_stated_in_mib(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", b"x" * (MAX_FILE_BYTES + 1))
    with pytest.raises(DataError, match=r"big.txt is 16.1 MiB; a text file may hold at most 16.0"):
        list(iter_texts(big))
    with pytest.raises(DataError, match=r"hold 16.1 MiB in all; at most 1.0 MiB can be used"):
        list(iter_texts(big, max_total_bytes=2**20))


def test_files_are_read_one_at_a_time(tmp_path: Path) -> None:
    """A bad file stops the reading there: the ones before it were read, the ones after not."""
    write(tmp_path / "a.txt", "fine")
    write(tmp_path / "b.txt", b"\xff")
    texts = iter_texts(tmp_path)
    assert next(texts) == (f"{tmp_path.name}/a.txt", "fine")
    with pytest.raises(DataError, match=r"b.txt is not UTF-8 text \(byte 0 is 0xff\)"):
        next(texts)


def test_windows_are_inputs_and_targets_one_token_apart(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    path = write(tmp_path / "sonnet.txt", SONNET)
    made = load_text(path, tokenizer, context=6, validation_split=0.25)
    assert isinstance(made, TextWindows) and made.context == 6
    ids = tokenizer.encode(SONNET)
    held = len(ids) // 4
    train_stream = [*ids[: len(ids) - held], tokenizer.eot_id]
    assert made.train.shape == ((len(train_stream) - 7) // 6 + 1, 7)
    assert made.train.dtype == np.int32 and not made.train.flags.writeable
    for k, window in enumerate(made.train):
        assert window.tolist() == train_stream[6 * k : 6 * k + 7]
    inputs, targets = TextWindows.pairs(made.train)
    assert (inputs[:, 1:] == targets[:, :-1]).all() and inputs.shape == (len(made.train), 6)
    assert tokenizer.decode(made.validation[0]) in SONNET


def test_overlapping_training_windows_leave_validation_apart(tokenizer: Tokenizer) -> None:
    doc = list(range(1, 101))
    made = make_windows([doc], 0, 4, stride=1, validation_split=0.2)
    train_tokens = set(made.train.reshape(-1).tolist()) - {0}
    validation_tokens = set(made.validation.reshape(-1).tolist()) - {0}
    assert train_tokens == set(range(1, 81)) and validation_tokens == set(range(81, 101))
    assert len(made.train) == 81 - 5 + 1  # 80 tokens and the end-of-text token, stride 1
    assert [w[0] for w in made.validation.tolist()] == [81, 85, 89, 93, 97]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"context": 0}, "the context must be a whole number of tokens, at least 1"),
        ({"context": 4, "stride": 5}, r"the stride must be a whole number from 1 to the context"),
        ({"context": 4, "validation_split": -0.1}, "validation_split must be at least 0"),
    ],
)
def test_bad_settings_are_refused_before_reading(
    tmp_path: Path, tokenizer: Tokenizer, settings: dict[str, float], words: str
) -> None:
    with pytest.raises(DataError, match=words):
        load_text(tmp_path / "not even there.txt", tokenizer, **settings)  # type: ignore[arg-type]
