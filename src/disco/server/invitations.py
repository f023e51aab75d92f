"""Invitations: who may list, read and join a task on a private instance.

The admin makes an invitation for one task (`disco invite`, ``POST /api/tasks/{id}/invitations``
or the web app). Its token, ``dinv.<id>.<secret>``, is shown once and then exists only with the
person invited: the server keeps the id in clear (to list and revoke invitations) and the
SHA-256 of the secret. The secret is 256 random bits, so a plain hash is as safe as a slow one
here (there is no dictionary to try), and checking a token costs microseconds, which matters
when someone tries thousands. A token is checked by its id, then its secret (constant-time
comparison), then its task, expiry and revocation; every refusal says which in plain words.

`Invitations` holds every invitation in memory (an instance has few) and writes each change to
the `Store` at once, except use counts, which are written in batches (`flush`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from disco.server.store import InvitationRecord, Store

__all__ = [
    "DEFAULT_EXPIRY_S",
    "MAX_EXPIRY_S",
    "Invitations",
    "Refused",
    "Required",
]

DEFAULT_EXPIRY_S = 7 * 86400
MAX_EXPIRY_S = 366 * 86400
_ID_CHARS = 10  # base32 characters of the public id (50 bits: unique, not secret)
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_SECRET_BYTES = 32  # 256 bits → 43 url-safe characters


class Required(Exception):
    """No invitation was presented, or what was presented is not one (malformed)."""


class Refused(Exception):
    """An invitation was presented and is not valid for this task (wrong, expired, revoked,
    another task's); the message says which."""


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _split(token: str) -> tuple[str, str]:
    """(id, secret) of a well-formed token; `Required` when it is not one."""
    prefix, _, rest = token.partition(".")
    key, _, secret = rest.partition(".")
    well_formed = (
        prefix == "dinv"
        and len(key) == _ID_CHARS
        and all(c in _ID_ALPHABET for c in key)
        and len(secret) == 43
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in secret)
    )
    if not well_formed:
        raise Required("that is not an invitation token (they look like dinv.xxxxxxxxxx.…)")
    return key, secret


class Invitations:
    """The instance's invitations: make, list, revoke, and check a presented token.

    Safe to call from the event loop and from worker threads at once: every change to the
    in-memory state happens under one lock, and use counts live apart from the records, so a
    flush never writes over a revocation made meanwhile.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.clock = clock
        self._lock = threading.Lock()  # the in-memory state below
        self._flushing = threading.Lock()  # one flush at a time: counts reach the store in order
        self._by_id = {inv.id: inv for inv in store.invitations()}
        self._uses = {inv.id: (inv.uses, inv.last_used_at) for inv in self._by_id.values()}
        self._dirty: set[str] = set()  # invitations whose uses the store does not have yet

    def create(
        self, task_id: str, *, label: str = "", expires_in_s: float = DEFAULT_EXPIRY_S
    ) -> tuple[InvitationRecord, str]:
        """A new invitation for `task_id` and its token (the only time the token exists)."""
        if not 60 <= expires_in_s <= MAX_EXPIRY_S:
            raise ValueError(
                f"an invitation lasts from 60 s to {MAX_EXPIRY_S // 86400} days, "
                f"not {expires_in_s:g} s"
            )
        key = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_CHARS))
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        now = self.clock()
        record = InvitationRecord(
            id=key,
            task_id=task_id,
            secret_sha256=_hash(secret),
            label=label,
            created_at=now,
            expires_at=now + expires_in_s,
        )
        with self._lock:
            self._store.put_invitation(record)
            self._by_id[key] = record
            self._uses[key] = (0, None)
        return record, f"dinv.{key}.{secret}"

    def of_task(self, task_id: str) -> list[InvitationRecord]:
        """The invitations of a task, oldest first."""
        with self._lock:
            keys = [i.id for i in self._by_id.values() if i.task_id == task_id]
        return [self.get(key) for key in keys]

    def get(self, invitation_id: str) -> InvitationRecord:
        """One invitation with its current use count; `KeyError` if there is none."""
        with self._lock:
            record = self._by_id[invitation_id]
            uses, when = self._uses[invitation_id]
        return replace(record, uses=uses, last_used_at=when)

    def revoke(self, invitation_id: str) -> InvitationRecord:
        """Revoke an invitation (at once: its next use is refused); `KeyError` if unknown."""
        with self._lock:
            record = self._by_id[invitation_id]
            if record.revoked_at is None:
                now = self.clock()
                self._store.revoke_invitation(invitation_id, now)
                self._by_id[invitation_id] = replace(record, revoked_at=now)
        return self.get(invitation_id)

    def check(self, token: str | None, task_id: str | None) -> InvitationRecord:
        """The invitation `token` is, if it lets its holder at `task_id` (None: at the task
        it names, for listing); `Required` or `Refused` otherwise."""
        if not token:
            raise Required("this server is private: joining needs an invitation")
        key, secret = _split(token)
        with self._lock:
            record = self._by_id.get(key)
        # compare against a hash even for an unknown id, so timing does not tell ids apart
        expected = record.secret_sha256 if record is not None else bytes(32)
        if not hmac.compare_digest(_hash(secret), expected) or record is None:
            raise Refused("this invitation is not valid on this server (wrong token)")
        if record.revoked_at is not None:
            raise Refused("this invitation was revoked; ask for a new one")
        if self.clock() >= record.expires_at:
            raise Refused(f"this invitation expired on {_iso(record.expires_at)}")
        if task_id is not None and record.task_id != task_id:
            raise Refused(f"this invitation is for task {record.task_id!r}, not {task_id!r}")
        return record

    def used(self, record: InvitationRecord) -> None:
        """Count one use (a join); written to the store by the next `flush`."""
        with self._lock:
            uses = self._uses[record.id][0]
            self._uses[record.id] = (uses + 1, self.clock())
            self._dirty.add(record.id)

    def flush(self) -> None:
        """Write the use counts that changed since the last flush."""
        with self._flushing:
            with self._lock:
                changed = {key: self._uses[key] for key in self._dirty}
                self._dirty.clear()
            if changed:
                self._store.note_invitation_uses(
                    {key: (n, when or 0.0) for key, (n, when) in changed.items()}
                )


def to_json(record: InvitationRecord, now: float) -> dict[str, Any]:
    """An invitation as the REST API shows it (never its secret or the secret's hash)."""
    state = (
        "revoked"
        if record.revoked_at is not None
        else "expired"
        if now >= record.expires_at
        else "active"
    )
    return {
        "id": record.id,
        "task_id": record.task_id,
        "label": record.label,
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "uses": record.uses,
        "last_used_at": _iso(record.last_used_at),
        "state": state,
    }
