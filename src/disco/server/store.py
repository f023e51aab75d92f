"""Durable server state: tasks, global models per round and round history.

One SQLite database (``disco.sqlite3``, WAL) and one safetensors file per kept global model under
``data_dir/models/<task_id>/round-NNNNNN.safetensors``. A model file is written (temporary name,
fsync, rename) before the database row that points at it is committed, so a crash at any moment
leaves either the old or the new round, never a row without its file. Every file's digest is in
the ``models`` table; `load_state` verifies it and, if the newest file is damaged, falls back to
the newest intact one it still has (logging loudly) instead of refusing to start. A store that
cannot be used (unreadable or damaged database, no intact model file of a task, a damaged history
row) raises `StoreError`, saying what is damaged, where, and what to do.

Tables::

    tasks   (id, json, created_at)
    models  (task_id, round, digest, file, created_at)     the kept global models; newest = state
    rounds  (task_id, round, contributors, num_samples, participants, metrics, digest,
             closed_at, duration_s)                         one row per closed round
    invitations (id, task_id, secret_sha256, label, created_at, expires_at, revoked_at, uses,
             last_used_at)                                  who may join a private instance
    tokenizers (task_id, digest, data)                      a text task's tokenizer.json bytes

The store is synchronous and thread-safe (one connection behind a lock); async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from disco.errors import StoreError, TaskError, WeightsError
from disco.task import Task, parse_task
from disco.weights import Weights

__all__ = ["ContributorRecord", "InvitationRecord", "RoundRecord", "Store"]

log = logging.getLogger("disco.server")

# SQLite's names for "this file is not (or no longer) a valid database"
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, json TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    task_id TEXT NOT NULL REFERENCES tasks(id), round INTEGER NOT NULL, digest TEXT NOT NULL,
    file TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (task_id, round));
CREATE TABLE IF NOT EXISTS rounds (
    task_id TEXT NOT NULL REFERENCES tasks(id), round INTEGER NOT NULL,
    contributors INTEGER NOT NULL, num_samples INTEGER NOT NULL, participants TEXT NOT NULL,
    metrics TEXT NOT NULL, digest TEXT NOT NULL, closed_at REAL NOT NULL,
    duration_s REAL NOT NULL, PRIMARY KEY (task_id, round));
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY, task_id TEXT NOT NULL REFERENCES tasks(id), secret_sha256 BLOB NOT NULL,
    label TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL, revoked_at REAL,
    uses INTEGER NOT NULL DEFAULT 0, last_used_at REAL);
CREATE TABLE IF NOT EXISTS tokenizers (
    task_id TEXT PRIMARY KEY REFERENCES tasks(id), digest TEXT NOT NULL, data BLOB NOT NULL);
"""


@dataclass(frozen=True)
class ContributorRecord:
    """One accepted update of a closed round: who sent it and what the rule did with it."""

    name: str
    kind: str
    num_samples: int
    share: float
    """Its share of the combined update (0 when not selected)."""
    selected: bool = True
    clipped: bool = False
    """Whether the rule limited it (its share capped, its update clipped)."""
    score: float | None = None


@dataclass(frozen=True)
class RoundRecord:
    """History of one closed round; `digest` is that of the model it produced."""

    round: int
    contributors: int
    num_samples: int
    digest: str
    duration_s: float
    closed_at: float = field(default_factory=time.time)
    metrics: dict[str, float] = field(default_factory=dict)
    participants: tuple[ContributorRecord, ...] = ()
    aggregation: dict[str, Any] = field(default_factory=dict)
    """The rule and its settings (`Aggregator.describe`); empty for rounds recorded before."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["participants"] = [asdict(p) for p in self.participants]
        return data


@dataclass(frozen=True)
class InvitationRecord:
    """A stored invitation: only a hash of its secret is kept (`disco.server.invitations`)."""

    id: str
    task_id: str
    secret_sha256: bytes
    label: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    uses: int = 0
    last_used_at: float | None = None


def _tokenizer_digest(task: Task, tokenizer: bytes | None) -> str | None:
    """The SHA-256 of a text task's tokenizer bytes, checked against the task (`TaskError`)."""
    want = task.training.tokenizer_digest
    if task.training.data_type != "text":
        if tokenizer is not None:
            raise TaskError(f"task {task.id!r} is not a text task: it has no tokenizer")
        return None
    if tokenizer is None:
        raise TaskError(
            f"task {task.id!r} is a text task: it needs its tokenizer.json (docs/text.md)"
        )
    digest = hashlib.sha256(tokenizer).hexdigest()
    if digest != want:
        raise TaskError(
            f"this tokenizer.json is not task {task.id!r}'s: its SHA-256 is {digest[:12]}…, "
            f"the task names {(want or 'none')[:12]}…"
        )
    return digest


class Store:
    """SQLite + weight files under one data directory."""

    def __init__(self, data_dir: str | Path, keep_rounds: int = 3):
        if keep_rounds < 1:
            raise ValueError(f"keep_rounds must be ≥ 1, got {keep_rounds}")
        self.data_dir = Path(data_dir)
        self.keep_rounds = keep_rounds
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._path = self.data_dir / "disco.sqlite3"
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._damage_check():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock, self._damage_check():
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _damage_check(self) -> Iterator[None]:
        """Turn SQLite's "the database file is damaged" errors into `StoreError`."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", None) in _DAMAGED:
                raise self._unusable(exc) from exc
            raise

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        """The `StoreError` for a database that cannot be opened or read (`exc` says why)."""
        if getattr(exc, "sqlite_errorname", None) in _DAMAGED:
            advice = (
                "restore it from a backup, or move the data directory away to start with an "
                "empty store"
            )
            return StoreError(f"the server database {self._path} is damaged ({exc}); {advice}")
        return StoreError(
            f"cannot open the server database {self._path} ({exc}); check that the file and "
            f"its folder {self.data_dir} are readable and writable by the server"
        )

    # -- tasks ------------------------------------------------------------------------------
    def put_task(self, task: Task, initial: Weights, tokenizer: bytes | None = None) -> None:
        """Store a new task, its round-0 global model and, for a text task, its tokenizer.json
        bytes (which must be those the task names); `TaskError` if the id exists."""
        if self.get_task(task.id) is not None:
            raise TaskError(f"task {task.id!r} already exists")
        digest = _tokenizer_digest(task, tokenizer)
        path = self._write_model(task.id, 0, initial)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO tasks VALUES (?, ?, ?)",
                    (task.id, task.model_dump_json(), time.time()),
                )
                db.execute(
                    "INSERT INTO models VALUES (?, 0, ?, ?, ?)",
                    (task.id, initial.digest(), path.name, time.time()),
                )
                if tokenizer is not None:
                    db.execute(
                        "INSERT INTO tokenizers VALUES (?, ?, ?)", (task.id, digest, tokenizer)
                    )
        except sqlite3.IntegrityError as exc:
            raise TaskError(f"task {task.id!r} already exists") from exc

    def get_tokenizer(self, task_id: str) -> bytes | None:
        """The tokenizer.json bytes of text task `task_id`, or None (no such task, not text)."""
        rows = self._query("SELECT data FROM tokenizers WHERE task_id = ?", task_id)
        return bytes(rows[0][0]) if rows else None

    def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        rows = self._query("SELECT json FROM tasks WHERE id = ?", task_id)
        return parse_task(rows[0][0]) if rows else None

    def list_tasks(self) -> list[Task]:
        """Every stored task that is still valid, oldest first."""
        tasks = []
        for task_id, text in self._query("SELECT id, json FROM tasks ORDER BY created_at, id"):
            try:
                tasks.append(parse_task(text))
            except TaskError as exc:  # stored by an older version whose format changed
                log.error("stored task %s is no longer valid and is skipped: %s", task_id, exc)
        return tasks

    # -- invitations ------------------------------------------------------------------------
    def put_invitation(self, invitation: InvitationRecord) -> None:
        """Store a new invitation (its task must exist)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO invitations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(getattr(invitation, f) for f in InvitationRecord.__dataclass_fields__),
            )

    def invitations(self) -> list[InvitationRecord]:
        """Every invitation ever made, oldest first (revoked and expired ones too)."""
        rows = self._query("SELECT * FROM invitations ORDER BY created_at, id")
        return [InvitationRecord(*row) for row in rows]

    def revoke_invitation(self, invitation_id: str, when: float) -> None:
        """Mark an invitation revoked at `when` (kept, so that its uses stay on record)."""
        with self._tx() as db:
            db.execute(
                "UPDATE invitations SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (when, invitation_id),
            )

    def note_invitation_uses(self, uses: dict[str, tuple[int, float]]) -> None:
        """Set the use counts and last-use times of invitations ({id: (uses, last_used_at)})."""
        with self._tx() as db:
            db.executemany(
                "UPDATE invitations SET uses = ?, last_used_at = ? WHERE id = ?",
                [(n, when, key) for key, (n, when) in uses.items()],
            )

    # -- models and rounds ------------------------------------------------------------------
    def load_state(self, task_id: str) -> tuple[int, Weights] | None:
        """The current round and global model; falls back to an older intact model if needed.

        Returns None for a task without any model. Raises `StoreError` when no kept model file
        is intact.
        """
        rows = self._query(
            "SELECT round, digest, file FROM models WHERE task_id = ? ORDER BY round DESC", task_id
        )
        if not rows:
            return None
        problems = []
        for rnd, digest, name in rows:
            path = self._model_dir(task_id) / name
            try:
                weights = Weights.load(path)
            except WeightsError as exc:
                problems.append(str(exc))
                continue
            if weights.digest() != digest:
                problems.append(f"{path} does not match its recorded digest {digest[:12]}")
                continue
            if problems:
                log.error(
                    "task %s: newest global model is damaged (%s); resuming from round %d",
                    task_id,
                    "; ".join(problems),
                    rnd,
                )
                self._forget_after(task_id, rnd)
            return rnd, weights
        raise StoreError(
            f"task {task_id!r}: no intact global model file ({'; '.join(problems)}); restore the "
            f"files under {self._model_dir(task_id)} or remove the task's data to restart it"
        )

    def save_round(
        self, task_id: str, new_round: int, weights: Weights, record: RoundRecord
    ) -> None:
        """Persist the model that opens `new_round` and the history row of the round it closes."""
        if record.round != new_round - 1:
            raise ValueError(f"record of round {record.round} cannot open round {new_round}")
        path = self._write_model(task_id, new_round, weights)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
                (task_id, new_round, weights.digest(), path.name, time.time()),
            )
            self._insert_record(db, task_id, record)
        self._prune(task_id)

    def record_round(self, task_id: str, record: RoundRecord) -> None:
        """Persist the history row of a round whose model the server does not keep
        (decentralized tasks)."""
        with self._tx() as db:
            self._insert_record(db, task_id, record)

    @staticmethod
    def _insert_record(db: sqlite3.Connection, task_id: str, record: RoundRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task_id,
                record.round,
                record.contributors,
                record.num_samples,
                json.dumps(
                    {
                        "aggregation": record.aggregation,
                        "participants": [asdict(p) for p in record.participants],
                    }
                ),
                json.dumps(record.metrics),
                record.digest,
                record.closed_at,
                record.duration_s,
            ),
        )

    def history(self, task_id: str, last: int | None = None) -> list[RoundRecord]:
        """Every closed round of the task (or the `last` ones), oldest first."""
        columns = (
            "SELECT round, contributors, num_samples, digest, duration_s, closed_at, metrics, "
            "participants FROM rounds WHERE task_id = ?"
        )
        if last is None:
            rows = self._query(columns + " ORDER BY round", task_id)
        else:
            rows = self._query(columns + " ORDER BY round DESC LIMIT ?", task_id, last)[::-1]
        records = []
        for r in rows:
            try:
                metrics = json.loads(r[6])
                doc = json.loads(r[7])  # a list in histories written before the aggregator seam
                aggregation = doc["aggregation"] if isinstance(doc, dict) else {}
                entries = doc["participants"] if isinstance(doc, dict) else doc
                participants = tuple(ContributorRecord(**p) for p in entries)
            except (ValueError, TypeError, KeyError) as exc:
                raise StoreError(
                    f"task {task_id!r}: the history of round {r[0]} in {self._path} is damaged "
                    f"({exc}); restore the database from a backup"
                ) from exc
            records.append(
                RoundRecord(
                    round=r[0],
                    contributors=r[1],
                    num_samples=r[2],
                    digest=r[3],
                    duration_s=r[4],
                    closed_at=r[5],
                    metrics=metrics,
                    participants=participants,
                    aggregation=aggregation,
                )
            )
        return records

    # -- files ------------------------------------------------------------------------------
    def _model_dir(self, task_id: str) -> Path:
        return self.data_dir / "models" / task_id

    def _write_model(self, task_id: str, rnd: int, weights: Weights) -> Path:
        """Write the model file durably: temporary name, fsync, atomic rename, fsync dir."""
        folder = self._model_dir(task_id)
        path = folder / f"round-{rnd:06d}.safetensors"
        tmp = folder / f".{path.name}.partial"
        weights.save(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        _fsync_dir(folder)
        return path

    def _prune(self, task_id: str) -> None:
        """Delete model rows and files beyond the newest `keep_rounds`."""
        rows = self._query(
            "SELECT round, file FROM models WHERE task_id = ? ORDER BY round DESC", task_id
        )
        old = rows[self.keep_rounds :]
        if not old:
            return
        with self._tx() as db:
            db.executemany(
                "DELETE FROM models WHERE task_id = ? AND round = ?", [(task_id, r) for r, _ in old]
            )
        for _, name in old:
            (self._model_dir(task_id) / name).unlink(missing_ok=True)

    def _forget_after(self, task_id: str, rnd: int) -> None:
        """Forget models newer than `rnd` (damaged or missing) and the rounds that made them."""
        with self._tx() as db:
            db.execute("DELETE FROM models WHERE task_id = ? AND round > ?", (task_id, rnd))
            db.execute("DELETE FROM rounds WHERE task_id = ? AND round >= ?", (task_id, rnd))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
