"""The SQLite + files store: tasks, rounds, pruning, damaged files and database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from disco.errors import StoreError, TaskError
from disco.models import init_weights
from disco.server.store import ContributorRecord, RoundRecord, Store
from disco.weights import Weights


def record(r: int, weights: Weights) -> RoundRecord:
    return RoundRecord(
        round=r, contributors=1, num_samples=5, digest=weights.digest(), duration_s=1
    )


def test_tasks_and_rounds_round_trip(kit: Any, tmp_path: Path) -> None:
    """Prepare a task and two rounds; a new store on the same folder reads them back."""
    task = kit.make_task()
    g0 = init_weights(task.model, seed=0)
    store = Store(tmp_path)
    store.put_task(task, g0)
    with pytest.raises(TaskError, match="already exists"):
        store.put_task(task, g0)
    g1, g2 = kit.filled(g0, 1.0), kit.filled(g0, 2.0)
    store.save_round(task.id, 1, g1, record(0, g1))
    store.save_round(task.id, 2, g2, record(1, g2))
    store.close()

    again = Store(tmp_path)
    assert again.get_task("tiny") == task and [t.id for t in again.list_tasks()] == ["tiny"]
    assert again.get_task("nope") is None
    rnd, weights = again.load_state("tiny")  # type: ignore[misc]
    assert rnd == 2 and weights.digest() == g2.digest()
    assert [(h.round, h.digest) for h in again.history("tiny")] == [
        (0, g1.digest()),
        (1, g2.digest()),
    ]
    assert again.load_state("nope") is None
    again.close()


def test_old_model_files_are_pruned(kit: Any, tmp_path: Path) -> None:
    """Prepare keep_rounds=2 and five rounds; only the two newest files remain."""
    task = kit.make_task()
    store = Store(tmp_path, keep_rounds=2)
    g = init_weights(task.model, seed=0)
    store.put_task(task, g)
    for r in range(1, 6):
        w = kit.filled(g, r)
        store.save_round(task.id, r, w, record(r - 1, w))
    files = sorted(p.name for p in (tmp_path / "models" / "tiny").iterdir())
    assert files == ["round-000004.safetensors", "round-000005.safetensors"]
    assert len(store.history("tiny")) == 5
    store.close()


def test_corrupt_newest_file_falls_back_to_the_previous_model(kit: Any, tmp_path: Path) -> None:
    """Prepare a damaged newest file; loading resumes from the newest intact one."""
    task = kit.make_task()
    store = Store(tmp_path)
    g = init_weights(task.model, seed=0)
    store.put_task(task, g)
    g1, g2 = kit.filled(g, 1.0), kit.filled(g, 2.0)
    store.save_round(task.id, 1, g1, record(0, g1))
    store.save_round(task.id, 2, g2, record(1, g2))
    newest = tmp_path / "models" / "tiny" / "round-000002.safetensors"
    g1.save(newest)  # readable, but not the recorded model
    rnd, weights = store.load_state("tiny")  # type: ignore[misc]
    assert rnd == 1 and weights == g1
    assert [h.round for h in store.history("tiny")] == [0]
    for f in (tmp_path / "models" / "tiny").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(StoreError, match="no intact global model") as info:
        store.load_state("tiny")
    assert str(tmp_path / "models" / "tiny") in str(info.value)
    store.close()


def test_damaged_database_file_is_a_store_error(tmp_path: Path) -> None:
    """Prepare a database file of garbage; opening the store names the file and what to do."""
    (tmp_path / "disco.sqlite3").write_bytes(b"not a database " * 512)
    with pytest.raises(StoreError, match="is damaged") as info:
        Store(tmp_path)
    assert str(tmp_path / "disco.sqlite3") in str(info.value)
    assert "backup" in str(info.value)


def test_damaged_history_row_is_a_store_error(kit: Any, tmp_path: Path) -> None:
    """Prepare a round whose stored metrics are not JSON; reading the history says which."""
    task = kit.make_task()
    store = Store(tmp_path)
    g = init_weights(task.model, seed=0)
    store.put_task(task, g)
    g1 = kit.filled(g, 1.0)
    store.save_round(task.id, 1, g1, record(0, g1))
    with sqlite3.connect(tmp_path / "disco.sqlite3") as db:
        db.execute("UPDATE rounds SET metrics = '{broken' WHERE round = 0")
    db.close()
    with pytest.raises(StoreError, match=r"history of round 0 .* is damaged"):
        store.history("tiny")
    store.close()


def test_round_reports_and_rule_round_trip_and_old_histories_still_read(
    kit: Any, tmp_path: Path
) -> None:
    """A round's rule and per-participant report are kept; a history written before them (a
    plain list of participants) still reads, with an empty rule."""
    task = kit.make_task()
    store = Store(tmp_path)
    g = init_weights(task.model, seed=0)
    store.put_task(task, g)
    g1, g2 = kit.filled(g, 1.0), kit.filled(g, 2.0)
    reported = RoundRecord(
        round=0,
        contributors=2,
        num_samples=2**40 + 5,
        digest=g1.digest(),
        duration_s=1,
        participants=(
            ContributorRecord("honest", "python", 5, 0.5),
            ContributorRecord("liar", "browser", 2**40, 0.5, clipped=True),
        ),
        aggregation={"rule": "mean", "max_share": 0.5},
    )
    store.save_round(task.id, 1, g1, reported)
    store.save_round(task.id, 2, g2, record(1, g2))
    with sqlite3.connect(tmp_path / "disco.sqlite3") as db:  # as an older version wrote it
        db.execute(
            "UPDATE rounds SET participants = ? WHERE round = 1",
            ('[{"name": "a", "kind": "python", "num_samples": 5, "share": 1.0}]',),
        )
    db.close()

    first, second = store.history("tiny")
    assert first == reported
    assert first.to_json()["participants"][1]["clipped"] is True
    assert second.aggregation == {} and second.participants[0].selected
    store.close()
