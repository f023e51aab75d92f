"""A server over TLS with a test certificate authority: Python participants train over https and
wss when they trust that authority (``--ca-file``), and are told plainly when they do not.

The CA and the server's certificate (127.0.0.1, localhost) are made here (`tls_ca`); the server
is real, on loopback, and so are the participants: `FederatedClient`s, a `disco train` process and
two decentralized peers whose signalling goes through the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from disco import catalog
from disco.cli import main
from disco.client import FederatedClient, ServerAccess
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.decentralized.connector import MemoryConnector, MemoryHub
from disco.decentralized.peer import PeerClient
from disco.errors import ConfigError, ServerError
from disco.models import init_weights
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
from disco.task import Task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared test CA
from tls_ca import Authority, make_authority

DISCO = Path(sys.executable).with_name("disco")
TOKEN = "tls-test-admin-token"


def _task(task_id: str, **training: Any) -> Task:
    """The breast-cancer table task under another id, in short rounds."""
    settings = {"epochs": 2, "epochs_per_round": 1, **training}
    base = catalog.get("breast_cancer").with_training(**settings)
    return base.model_copy(update={"id": task_id})


TASKS = (
    _task("tls_pair", min_participants=2),
    _task("tls_alone", min_participants=1, epochs=1),
    _task("tls_peers", min_participants=2, scheme="decentralized"),
    _task("breast_cancer", min_participants=2, epochs=1),  # for `disco simulate --server`
)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A test CA and the server certificate it signed (127.0.0.1, localhost)."""
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Breast-cancer CSV files for two participants: client_1/, client_2/, test/."""
    out = tmp_path_factory.mktemp("samples")
    write_samples("breast_cancer", 2, out, seed=0)
    return out


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, authority: Authority
) -> Iterator[ServerHandle]:
    """A server over TLS with the test CA's certificate, holding the tasks above."""
    data = tmp_path_factory.mktemp("server")
    store = Store(data)
    for task in TASKS:
        store.put_task(task, init_weights(task.model, seed=0))
    store.close()
    config = ServerConfig.load(
        env={},
        port=0,
        data_dir=data,
        admin_token=TOKEN,
        seed_catalog=False,
        tls_cert=authority.cert_file,
        tls_key=authority.key_file,
    )
    with start_in_background(config) as handle:
        yield handle


def _plain_env() -> dict[str, str]:
    """This environment without a CA bundle or invitation of the person running the tests."""
    return {k: v for k, v in os.environ.items() if k not in ("DISCO_CA_FILE", "DISCO_INVITATION")}


def test_the_server_serves_https_and_wss_with_its_certificate(
    server: ServerHandle, authority: Authority
) -> None:
    """Prepare a TLS server; its URLs are https/wss, it presents the given certificate and its
    join links are https."""
    assert server.url == f"https://127.0.0.1:{server.port}"
    assert server.ws_url == f"wss://127.0.0.1:{server.port}/ws"
    presented = ssl.get_server_certificate(("127.0.0.1", server.port))
    assert ssl.PEM_cert_to_DER_cert(presented) == ssl.PEM_cert_to_DER_cert(
        authority.cert_file.read_text()
    )
    access = ServerAccess(server.url, ca_file=authority.ca_file)
    assert access.ws_url == server.ws_url
    with access.http(timeout=10) as http:
        listed = http.get("/api/tasks")
        invited = http.post(
            "/api/tasks/tls_pair/invitations", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert listed.status_code == 200
    assert {t["id"] for t in listed.json()} == {t.id for t in TASKS}
    # a join link made over TLS is an https link
    assert invited.status_code == 201, invited.text
    assert invited.json()["link"].startswith(f"{server.url}/#/join/tls_pair?invitation=dinv.")


def test_two_python_participants_train_over_tls_with_the_test_ca(
    server: ServerHandle, authority: Authority, samples: Path
) -> None:
    """Prepare two clients trusting the test CA; they close two rounds over wss together."""
    access = ServerAccess(server.url, ca_file=authority.ca_file)
    task = catalog.fetch("tls_pair", access)
    clients = [
        FederatedClient(
            task,
            load_for_task(samples / f"client_{i}", task.training),
            access,
            seed=i,
            name=f"site-{i}",
            wait_for_others_s=60,
        )
        for i in (1, 2)
    ]
    assert all(c.url.startswith("wss://") for c in clients)

    async def train() -> list[str]:
        async with asyncio.timeout(120):
            results = await asyncio.gather(*(c.run(2) for c in clients))
        return [r.weights.digest() for r in results]

    digests = asyncio.run(train())

    with access.http(timeout=10) as http:
        model = http.get("/api/tasks/tls_pair/model")
        history = http.get("/api/tasks/tls_pair/rounds").json()
    assert model.headers["X-Disco-Round"] == "2"
    assert set(digests) == {model.headers["X-Disco-Digest"]}
    assert [len(r["participants"]) for r in history] == [2, 2]


def test_disco_train_joins_over_tls_with_ca_file(
    server: ServerHandle, authority: Authority, samples: Path, tmp_path: Path
) -> None:
    """Prepare `disco train --ca-file`; it trains its round over wss, ending with the server's
    model."""
    saved = tmp_path / "model.safetensors"
    run = subprocess.run(
        [str(DISCO), "train", "--task", "tls_alone", "--data", str(samples / "client_1"),
         "--server", server.url, "--ca-file", str(authority.ca_file), "--save", str(saved),
         "--max-wait", "60", "--json"],
        capture_output=True, text=True, timeout=120, env=_plain_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    with ServerAccess(server.url, ca_file=authority.ca_file).http(timeout=10) as http:
        model = http.get("/api/tasks/tls_alone/model")
    assert model.headers["X-Disco-Round"] == "1"
    assert summary["digest"] == model.headers["X-Disco-Digest"]
    assert saved.is_file()


def test_disco_tasks_trusts_the_ca_named_by_the_environment(
    server: ServerHandle,
    authority: Authority,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Prepare DISCO_CA_FILE instead of the flag; `disco tasks` lists the TLS server's tasks."""
    monkeypatch.setenv("DISCO_CA_FILE", str(authority.ca_file))
    assert main(["tasks", "--server", server.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["tasks"]
    assert {t["id"] for t in listed} == {t.id for t in TASKS}


def test_disco_simulate_uses_a_tls_server_with_ca_file(
    server: ServerHandle,
    authority: Authority,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Prepare `disco simulate --server https://… --ca-file`; its participants train the
    server's task there; without the CA it stops with the plain reason."""
    monkeypatch.delenv("DISCO_CA_FILE", raising=False)
    command = ["simulate", "--task", "breast_cancer", "--clients", "2", "--rounds", "1"]
    command += ["--server", server.url, "--json"]
    assert main([*command, "--ca-file", str(authority.ca_file)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["clients"], summary["rounds"]) == (2, 1)
    with ServerAccess(server.url, ca_file=authority.ca_file).http(timeout=10) as http:
        model = http.get("/api/tasks/breast_cancer/model")
    assert model.headers["X-Disco-Round"] == "1"
    assert summary["digest"] == model.headers["X-Disco-Digest"]

    assert main(command) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "error: the server's certificate is not trusted" in said and "--ca-file" in said


def test_two_peers_signal_over_tls(
    server: ServerHandle, authority: Authority, samples: Path
) -> None:
    """Prepare two decentralized peers trusting the test CA (their signalling and the initial
    model go through the TLS server); they end their round with the same model."""
    access = ServerAccess(server.url, ca_file=authority.ca_file)
    task = catalog.fetch("tls_peers", access)
    hub = MemoryHub()
    peers = [
        PeerClient(
            task,
            load_for_task(samples / f"client_{i}", task.training),
            access,
            seed=i,
            name=f"peer-{i}",
            connector=lambda me, on_channel, send: MemoryConnector(me, on_channel, hub),
        )
        for i in (1, 2)
    ]

    async def train() -> list[str]:
        async with asyncio.timeout(120):
            results = await asyncio.gather(*(p.run(rounds=1) for p in peers))
        return [r.weights.digest() for r in results]

    digests = asyncio.run(train())

    with access.http(timeout=10) as http:
        history = http.get("/api/tasks/tls_peers/rounds").json()
    assert len(set(digests)) == 1
    assert [h["digest"] for h in history] == digests[:1]


def test_without_the_ca_the_server_is_refused_with_a_plain_reason(
    server: ServerHandle, authority: Authority, samples: Path, tmp_path: Path
) -> None:
    """Prepare participants trusting only the system's CAs, or another CA; each stops at once,
    saying the certificate is not trusted and what to do."""
    task = _task("tls_pair", min_participants=2)
    data = load_for_task(samples / "client_1", task.training)
    client = FederatedClient(task, data, ServerAccess(server.url), wait_for_others_s=5)
    started = time.monotonic()
    with pytest.raises(ServerError, match="the server's certificate is not trusted") as refused:
        asyncio.run(client.run(1))
    assert time.monotonic() - started < 10  # refused at once: trying again cannot help
    assert "--ca-file" in str(refused.value)

    stranger = make_authority(tmp_path / "stranger")
    with pytest.raises(ServerError, match="the server's certificate is not trusted") as refused:
        catalog.fetch("tls_pair", ServerAccess(server.url, ca_file=stranger.ca_file))
    assert str(stranger.ca_file) in str(refused.value)

    run = subprocess.run(
        [str(DISCO), "train", "--task", "tls_pair", "--data", str(samples / "client_1"),
         "--server", server.url],
        capture_output=True, text=True, timeout=60, env=_plain_env(),
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    said = " ".join(run.stderr.split())
    assert "error: the server's certificate is not trusted" in said
    assert "--ca-file" in said and "Traceback" not in said


def test_a_certificate_for_another_name_is_refused_naming_the_address(tmp_path: Path) -> None:
    """Prepare a certificate for localhost only, reached as 127.0.0.1; the client says the
    certificate is not for that address, and the right name works."""
    only_localhost = make_authority(tmp_path / "ca", hosts=("localhost",))
    config = ServerConfig(
        port=0,
        data_dir=tmp_path / "server",
        tls_cert=only_localhost.cert_file,
        tls_key=only_localhost.key_file,
    )
    with start_in_background(config) as server:
        by_ip = ServerAccess(server.url, ca_file=only_localhost.ca_file)
        with pytest.raises(ServerError, match="the server's certificate is not for this address"):
            catalog.fetch("mnist", by_ip)
        by_name = ServerAccess(
            server.url.replace("127.0.0.1", "localhost"), ca_file=only_localhost.ca_file
        )
        assert catalog.fetch("mnist", by_name).id == "mnist"


def test_a_plain_http_client_at_the_tls_port_is_told_to_use_https(
    server: ServerHandle, authority: Authority, samples: Path
) -> None:
    """Prepare http:// and ws:// clients for the TLS port; they fail naming https://."""
    plain = server.url.replace("https://", "http://")
    with pytest.raises(ServerError, match=r"if the server serves TLS, use its https:// address"):
        catalog.fetch("tls_pair", plain)
    task = _task("tls_pair", min_participants=2)
    data = load_for_task(samples / "client_1", task.training)
    client = FederatedClient(task, data, plain, wait_for_others_s=5, reconnect_timeout_s=1)
    assert client.url.startswith("ws://")
    with pytest.raises(ServerError, match=r"use its https:// address"):
        asyncio.run(client.run(1))


def test_tls_settings_go_in_pairs_and_are_checked_at_startup(
    authority: Authority, tmp_path: Path
) -> None:
    """Prepare half a pair, a missing file, another key, an encrypted key; each is a clear
    `ConfigError` naming what to change, before anything listens."""
    with pytest.raises(ConfigError, match=r"tls_key.*give tls_key too \(--tls-key"):
        ServerConfig.load(env={}, tls_cert=authority.cert_file)
    with pytest.raises(ConfigError, match=r"DISCO_TLS_KEY.*give tls_cert too"):
        ServerConfig.load(env={"DISCO_TLS_KEY": str(authority.key_file)})
    both = ServerConfig.load(
        env={"DISCO_TLS_CERT": str(authority.cert_file), "DISCO_TLS_KEY": str(authority.key_file)}
    )
    assert (both.tls_cert, both.tls_key) == (authority.cert_file, authority.key_file)

    other = make_authority(tmp_path / "other")
    key = serialization.load_pem_private_key(authority.key_file.read_bytes(), None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [  # certificate, key, what the error says, the file it names
        (tmp_path / "missing.pem", authority.key_file, "does not exist", "missing.pem"),
        (authority.cert_file, other.key_file, "is not the private key of", other.key_file),
        (authority.cert_file, encrypted, "is encrypted", encrypted),
        (authority.key_file, authority.key_file, "both must be PEM files", authority.key_file),
    ]
    for cert, key_file, expected, named in cases:
        config = ServerConfig(port=0, data_dir=tmp_path / "data", tls_cert=cert, tls_key=key_file)
        with pytest.raises(ConfigError, match=expected) as refused:
            start_in_background(config)
        assert str(named) in str(refused.value)


def test_disco_serve_takes_the_tls_flags_and_says_https(
    authority: Authority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Prepare `disco serve --tls-cert --tls-key` (not run); it prints an https address, and
    one flag alone is a user error."""
    served: list[ServerConfig] = []
    monkeypatch.setattr("disco.server.run_server", served.append)
    for name in ("DISCO_TLS_CERT", "DISCO_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    flags = ["serve", "--port", "8443", "--data-dir", str(tmp_path / "data")]
    tls = ["--tls-cert", str(authority.cert_file), "--tls-key", str(authority.key_file)]
    assert main([*flags, *tls]) == 0
    assert served[0].tls_cert == authority.cert_file
    assert "disco serving on https://127.0.0.1:8443" in capsys.readouterr().err

    assert main([*flags, "--tls-cert", str(authority.cert_file)]) == 2
    assert "give tls_key too (--tls-key or DISCO_TLS_KEY)" in " ".join(
        capsys.readouterr().err.split()
    )
    assert len(served) == 1
