"""The invitation registry on a real store: tokens, hashing, expiry, revocation, use counts."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from disco import catalog
from disco.errors import ConfigError
from disco.models import init_weights
from disco.server import ServerConfig, Store
from disco.server.invitations import MAX_EXPIRY_S, Invitations, Refused, Required, to_json


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path)
    for task_id in ("a", "b"):
        task = catalog.get("titanic").model_copy(update={"id": task_id})
        store.put_task(task, init_weights(task.model, 0))
    return store


def test_a_token_lets_its_holder_at_its_task_until_it_expires(store: Store) -> None:
    clock = Clock()
    invitations = Invitations(store, clock)
    record, token = invitations.create("a", label="lab", expires_in_s=3600)
    prefix, key, secret = token.split(".")
    assert (prefix, key) == ("dinv", record.id) and len(key) == 10 and len(secret) == 43
    assert record.secret_sha256 == hashlib.sha256(secret.encode()).digest()
    assert invitations.check(token, "a") == record
    assert invitations.check(token, None) == record  # listing: the task it names
    with pytest.raises(Refused, match="for task 'a', not 'b'"):
        invitations.check(token, "b")
    clock.now += 3599
    invitations.check(token, "a")
    clock.now += 1
    with pytest.raises(Refused, match="expired on"):
        invitations.check(token, "a")
    assert to_json(invitations.get(record.id), clock.now)["state"] == "expired"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "dinv",
        "dinv.abc.def",
        "dinv.ABCDEFGHIJ." + "a" * 43,
        "dinv.abcdefgh01." + "a" * 43,
        "dinv.abcdefghij." + "a" * 42,
        "dinv.abcdefghij." + "a" * 42 + "!",
        "Dinv.abcdefghij." + "a" * 43,
    ],
)
def test_what_is_not_a_token_is_required_not_refused(store: Store, token: str | None) -> None:
    with pytest.raises(Required):
        Invitations(store).check(token, "a")


def test_a_wrong_secret_or_unknown_id_is_refused(store: Store) -> None:
    invitations = Invitations(store)
    _, token = invitations.create("a")
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (wrong, "dinv.zzzzzzzzzz." + token.split(".")[2]):
        with pytest.raises(Refused, match="wrong token"):
            invitations.check(bad, "a")


def test_revocation_and_uses_survive_a_restart(store: Store) -> None:
    clock = Clock()
    invitations = Invitations(store, clock)
    kept, kept_token = invitations.create("a", label="kept")
    gone, gone_token = invitations.create("b", label="gone")
    for _ in range(3):
        invitations.used(invitations.check(kept_token, "a"))
    assert invitations.get(kept.id).uses == 3  # counted before it is written
    invitations.flush()
    revoked = invitations.revoke(gone.id)
    assert revoked.revoked_at == clock.now
    with pytest.raises(Refused, match="revoked"):
        invitations.check(gone_token, "b")
    with pytest.raises(KeyError):
        invitations.revoke("nosuchidxx")

    again = Invitations(store, clock)  # as after a restart
    assert again.get(kept.id).uses == 3 and again.get(kept.id).last_used_at == clock.now
    again.check(kept_token, "a")
    with pytest.raises(Refused, match="revoked"):
        again.check(gone_token, "b")
    assert [r.label for r in again.of_task("a")] == ["kept"]


def test_expiry_bounds(store: Store) -> None:
    invitations = Invitations(store)
    for seconds in (59, MAX_EXPIRY_S + 1):
        with pytest.raises(ValueError, match="an invitation lasts"):
            invitations.create("a", expires_in_s=seconds)


def test_a_private_instance_needs_an_admin_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs admin_token"):
        ServerConfig.load(env={}, data_dir=tmp_path, access="invitation")
    config = ServerConfig.load(env={"DISCO_ACCESS": "invitation", "DISCO_ADMIN_TOKEN": "x" * 12})
    assert config.access == "invitation"


def test_uses_and_revocations_are_not_lost_between_threads(store: Store) -> None:
    invitations = Invitations(store)
    counted, counted_token = invitations.create("a", label="counted")
    revoked, _ = invitations.create("a", label="revoked")

    def join() -> None:
        for _ in range(100):
            invitations.used(invitations.check(counted_token, "a"))
            invitations.flush()  # as after each join, from a worker thread

    threads = [threading.Thread(target=join) for _ in range(8)]
    for t in threads:
        t.start()
    invitations.revoke(revoked.id)  # while the flushes run
    for t in threads:
        t.join(30)
    assert invitations.get(counted.id).uses == 800
    assert invitations.get(revoked.id).revoked_at is not None
    again = Invitations(store)  # what the store holds
    assert again.get(counted.id).uses == 800 and again.get(revoked.id).revoked_at is not None
