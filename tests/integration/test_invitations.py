"""A private instance on loopback: only invited participants list, read and join a task.

A real server with ``access = "invitation"``, real REST and WebSocket requests, real Python
participants on real sample files, and the database file read back from disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import string
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import TOKEN, publish
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from disco import catalog
from disco.cli import main
from disco.client import FederatedClient, ServerAccess
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.errors import ServerError
from disco.models import init_weights
from disco.protocol import ErrorMessage, Hello, Welcome, decode, encode
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
from disco.server.store import InvitationRecord
from disco.task import Task

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TASK_ROUTES = ("", "/model", "/rounds", "/status")


def _task(task_id: str) -> Task:
    return (
        catalog.get("breast_cancer")
        .with_training(min_participants=2, epochs=2, epochs_per_round=1)
        .model_copy(update={"id": task_id})
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    write_samples("breast_cancer", 2, out, seed=0)
    return out


EXPIRED_SECRET = "E" * 43


@pytest.fixture
def private(tmp_path: Path) -> Iterator[ServerHandle]:
    """A private instance serving tasks `ward` and `other`, holding an expired invitation
    (`dinv.expiredxxx.EEE…`) to `ward` written before the server started."""
    data = tmp_path / "server"
    store = Store(data)
    for task_id in ("ward", "other"):
        task = _task(task_id)
        store.put_task(task, init_weights(task.model, 0))
    now = time.time()
    store.put_invitation(
        InvitationRecord(
            id="expiredxxx",
            task_id="ward",
            secret_sha256=hashlib.sha256(EXPIRED_SECRET.encode()).digest(),
            label="expired",
            created_at=now - 3600,
            expires_at=now - 60,
        )
    )
    store.close()
    config = ServerConfig(
        port=0, data_dir=data, admin_token=TOKEN, seed_catalog=False, access="invitation"
    )
    handle = start_in_background(config)
    yield handle
    handle.stop()


def _invite(handle: ServerHandle, task_id: str, **body: Any) -> dict[str, Any]:
    resp = httpx.post(f"{handle.url}/api/tasks/{task_id}/invitations", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _malformed(rng: random.Random, valid: str) -> str:
    """Something that is not an invitation token, in one of many shapes."""
    kind = rng.randrange(6)
    if kind == 0:
        return valid[: rng.randrange(1, len(valid))]  # cut short
    if kind == 1:
        return valid.replace("dinv.", rng.choice(["dinx.", "DINV.", "dinv", ""]), 1)
    if kind == 2:
        return valid + rng.choice(["x", ".", "=", " extra"])
    if kind == 3:
        return "".join(rng.choices(string.printable.strip(), k=rng.randrange(1, 100)))
    if kind == 4:
        return valid[:10] + "é" + valid[11:]  # a non-ASCII character in the id
    return rng.choice(["Bearer", "null", "dinv..", "dinv.abcdefghij."])


async def _hello(url: str, task_id: str, invitation: str | None) -> tuple[Any, int | None]:
    """Say hello with `invitation`; (the server's answer, the close code if it closed)."""
    async with connect(url, max_size=None, open_timeout=10) as ws:
        try:
            hello = Hello(task_id=task_id, name="probe", invitation=invitation or None)
        except ValueError:  # too long for a Hello: send it raw, as a hostile client would
            hello = Hello(task_id=task_id, name="probe")
        await ws.send(encode(hello))
        answer = decode(await asyncio.wait_for(ws.recv(), 10))
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            return answer, closed.rcvd.code if closed.rcvd else None
        return answer, None


def test_a_private_instance_refuses_every_request_without_a_valid_invitation(
    private: ServerHandle,
) -> None:
    ward = _invite(private, "ward", label="ward 4")
    other = _invite(private, "other", label="another task")
    revoked = _invite(private, "ward", label="revoked")
    resp = httpx.delete(f"{private.url}/api/invitations/{revoked['id']}", headers=ADMIN)
    assert resp.status_code == 200 and resp.json()["state"] == "revoked"
    wrong_secret = ward["token"][:-8] + "AAAAAAAA"
    unknown_id = "dinv.zzzzzzzzzz." + ward["token"].split(".")[2]
    expired = f"dinv.expiredxxx.{EXPIRED_SECRET}"
    rng = random.Random(7)
    kinds = {
        "none": lambda: None,
        "malformed": lambda: _malformed(rng, ward["token"]),
        "wrong": lambda: rng.choice([wrong_secret, unknown_id]),
        "expired": lambda: expired,
        "revoked": lambda: revoked["token"],
        "other task's": lambda: other["token"],
    }
    names = list(kinds)
    refused: Counter[str] = Counter()
    ws_attempts = 120
    with httpx.Client(base_url=private.url, timeout=10) as http:
        for i in range(1000 - ws_attempts):
            kind = names[i % len(names)]
            token = kinds[kind]()
            headers = {"Authorization": f"Bearer {token}".encode()} if token else {}
            path = "/api/tasks" + ("" if i % 5 == 0 else "/ward" + TASK_ROUTES[i % 4])
            resp = http.get(path, headers=headers)
            if kind == "other task's" and path == "/api/tasks":  # lists its own task only
                assert [t["id"] for t in resp.json()] == ["other"]
                refused[kind] += 1
                continue
            expected = (401, "invitation_required") if kind in ("none", "malformed") else None
            expected = expected or (403, "invitation_refused")
            assert resp.status_code == expected[0], (kind, token, path, resp.text)
            assert resp.json()["code"] == expected[1]
            refused[kind] += 1
        assert "revoked" in http.get("/api/tasks", headers=_bearer(revoked["token"])).text
        assert "expired" in http.get("/api/tasks/ward", headers=_bearer(expired)).text
        assert "'other'" in http.get("/api/tasks/ward", headers=_bearer(other["token"])).text

    async def hellos() -> None:
        for i in range(ws_attempts):
            kind = names[i % len(names)]
            answer, code = await _hello(private.ws_url, "ward", kinds[kind]())
            assert isinstance(answer, ErrorMessage) and answer.code == "forbidden", (kind, answer)
            assert code == 4403
            refused[kind] += 1

    asyncio.run(hellos())
    assert sum(refused.values()) == 1000 and set(refused) == set(kinds)

    # nothing changed: no one joined, nothing was counted as a use, the admin sees it all
    status = httpx.get(f"{private.url}/api/tasks/ward/status", headers=ADMIN).json()
    assert status["participants"] == 0 and status["round"] == 0
    listed = httpx.get(f"{private.url}/api/tasks/ward/invitations", headers=ADMIN).json()
    assert {i["label"]: i["uses"] for i in listed} == {"expired": 0, "ward 4": 0, "revoked": 0}
    assert all("token" not in i for i in listed)
    every = httpx.get(f"{private.url}/api/tasks", headers=ADMIN).json()
    assert sorted(t["id"] for t in every) == ["other", "ward"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_invited_participants_list_only_their_task_and_train(
    private: ServerHandle, samples: Path
) -> None:
    tokens = [_invite(private, "ward", label=f"site {i}")["token"] for i in (1, 2)]
    listed = httpx.get(f"{private.url}/api/tasks", headers=_bearer(tokens[0])).json()
    assert [t["id"] for t in listed] == ["ward"]
    task = catalog.fetch("ward", ServerAccess(private.url, invitation=tokens[0]))
    assert task.id == "ward"

    clients = [
        FederatedClient(
            task,
            load_for_task(samples / f"client_{i + 1}", task.training),
            ServerAccess(private.url, invitation=token),
            seed=i,
            name=f"site-{i + 1}",
            wait_for_others_s=60,
        )
        for i, token in enumerate(tokens)
    ]

    async def train() -> list[str]:
        results = await asyncio.gather(*(c.run(2) for c in clients))
        return [r.weights.digest() for r in results]

    digests = asyncio.run(train())
    model = httpx.get(f"{private.url}/api/tasks/ward/model", headers=_bearer(tokens[1]))
    assert model.status_code == 200 and model.headers["X-Disco-Round"] == "2"
    assert set(digests) == {model.headers["X-Disco-Digest"]}
    listed = httpx.get(f"{private.url}/api/tasks/ward/invitations", headers=ADMIN).json()
    uses = {i["label"]: i["uses"] for i in listed}
    assert uses["site 1"] >= 1 and uses["site 2"] >= 1


def test_a_participant_without_a_valid_invitation_is_told_why(
    private: ServerHandle, samples: Path
) -> None:
    task = _task("ward")
    data = load_for_task(samples / "client_1", task.training)
    client = FederatedClient(task, data, private.url, wait_for_others_s=5)
    with pytest.raises(ServerError, match="invitation"):
        asyncio.run(client.run(1))
    with pytest.raises(ServerError, match=r"invitation_required|private"):
        catalog.fetch("ward", private.url)


def test_revoking_disconnects_its_holder_and_refuses_it_afterwards(private: ServerHandle) -> None:
    invitation = _invite(private, "ward")

    async def scenario() -> tuple[int | None, Any, int | None]:
        async with connect(private.ws_url, max_size=None) as ws:
            await ws.send(encode(Hello(task_id="ward", invitation=invitation["token"])))
            assert isinstance(decode(await asyncio.wait_for(ws.recv(), 10)), Welcome)
            revoked = await asyncio.to_thread(
                httpx.delete, f"{private.url}/api/invitations/{invitation['id']}", headers=ADMIN
            )
            assert revoked.status_code == 200
            code = None
            try:
                while True:
                    message = decode(await asyncio.wait_for(ws.recv(), 10))
                    if isinstance(message, ErrorMessage):
                        assert message.code == "forbidden" and "revoked" in message.message
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
        answer, again = await _hello(private.ws_url, "ward", invitation["token"])
        return code, answer, again

    code, answer, again = asyncio.run(scenario())
    assert code == 4403
    assert isinstance(answer, ErrorMessage) and "revoked" in answer.message and again == 4403


def test_invitation_secrets_are_not_stored_in_clear(private: ServerHandle) -> None:
    invitation = _invite(private, "ward", label="hashed")
    secret = invitation["token"].split(".")[2]
    private.stop()  # flush and close the database and its write-ahead log
    files = [p for p in Path(private.config.data_dir).rglob("*") if p.is_file()]
    assert any(p.name == "disco.sqlite3" for p in files)
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert invitation["token"].encode() not in data, path
    # what is stored is the SHA-256 of the secret, next to the public id
    store = Store(private.config.data_dir)
    [record] = [r for r in store.invitations() if r.label == "hashed"]
    store.close()
    assert record.id == invitation["id"]
    assert record.secret_sha256 == hashlib.sha256(secret.encode()).digest()


def test_invitations_need_the_admin_token_and_sensible_settings(private: ServerHandle) -> None:
    url = f"{private.url}/api/tasks/ward/invitations"
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers=_bearer("wrong-token")).status_code == 403
    ward = _invite(private, "ward")
    # an invitation is a participant's credential, never an admin's
    assert httpx.post(url, json={}, headers=_bearer(ward["token"])).status_code == 403
    for body in ({"expires_in_s": 10}, {"expires_in_s": 10**9}, {"label": "x" * 101}, {"z": 1}):
        resp = httpx.post(url, json=body, headers=ADMIN)
        assert resp.status_code == 422, body
    assert httpx.post(f"{private.url}/api/tasks/nope/invitations", headers=ADMIN).status_code == 404
    gone = httpx.delete(f"{private.url}/api/invitations/zzzzzzzzzz", headers=ADMIN)
    assert gone.status_code == 404 and gone.json()["code"] == "unknown_invitation"
    assert ward["link"].startswith(private.url) and ward["link"].endswith(ward["token"])
    health = httpx.get(f"{private.url}/api/health").json()
    assert health["access"] == "invitation"


def test_a_public_instance_needs_no_invitation(tmp_path: Path) -> None:
    config = ServerConfig(port=0, data_dir=tmp_path, admin_token=TOKEN, seed_catalog=False)
    with start_in_background(config) as handle:
        publish(handle, _task("open"))
        assert [t["id"] for t in httpx.get(f"{handle.url}/api/tasks").json()] == ["open"]
        assert httpx.get(f"{handle.url}/api/tasks/open/model").status_code == 200
        answer, _ = asyncio.run(_hello_kept(handle.ws_url, "open"))
        assert isinstance(answer, Welcome)


async def _hello_kept(url: str, task_id: str) -> tuple[Any, None]:
    async with connect(url, max_size=None) as ws:
        await ws.send(encode(Hello(task_id=task_id)))
        return decode(await asyncio.wait_for(ws.recv(), 10)), None


def test_disco_invite_makes_lists_and_revokes(
    private: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--server", private.url, "--admin-token", TOKEN]
    assert main(["invite", *common, "--task", "ward", "--label", "cli", "--expires", "2d"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith(f"{private.url}/#/join/ward?invitation=dinv.")
    token = link.split("invitation=")[1]
    assert httpx.get(f"{private.url}/api/tasks", headers=_bearer(token)).status_code == 200
    assert main(["invite", *common, "--task", "ward", "--list", "--json"]) == 0
    import json

    [made] = [i for i in json.loads(capsys.readouterr().out)["invitations"] if i["label"] == "cli"]
    assert made["state"] == "active"
    assert main(["invite", *common, "--revoke", made["id"]]) == 0
    assert httpx.get(f"{private.url}/api/tasks", headers=_bearer(token)).status_code == 403
    # `disco tasks` takes the link as it was received
    capsys.readouterr()
    again = _invite(private, "other")["link"]
    assert main(["tasks", "--server", private.url, "--invitation", again, "--json"]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)["tasks"]] == ["other"]
    assert main(["invite", "--server", private.url, "--task", "ward", "--admin-token", "bad!"]) == 2


def test_a_private_instance_does_not_say_which_tasks_exist(private: ServerHandle) -> None:
    ward = _invite(private, "ward")
    for task_id in ("ward", "no-such-task"):  # the same answer whether the task exists or not
        resp = httpx.get(f"{private.url}/api/tasks/{task_id}/status")
        assert (resp.status_code, resp.json()["code"]) == (401, "invitation_required")
        answer, code = asyncio.run(_hello(private.ws_url, task_id, None))
        assert isinstance(answer, ErrorMessage) and answer.code == "forbidden" and code == 4403
    resp = httpx.get(f"{private.url}/api/tasks/no-such-task", headers=_bearer(ward["token"]))
    assert resp.status_code == 403 and "for task 'ward'" in resp.json()["error"]
    admin = httpx.get(f"{private.url}/api/tasks/no-such-task", headers=ADMIN)
    assert admin.status_code == 404  # the admin is told


def test_without_the_web_app_a_private_instance_lists_nothing(tmp_path: Path) -> None:
    config = ServerConfig(
        port=0,
        data_dir=tmp_path,
        admin_token=TOKEN,
        seed_catalog=False,
        access="invitation",
        web_dir=tmp_path / "no-web-app",
    )
    with start_in_background(config) as handle:
        publish(handle, _task("secret-task"))
        page = httpx.get(f"{handle.url}/").text
        assert "private" in page and "secret-task" not in page
