"""A browser and three Python peers train MNIST decentralized with secure aggregation: every peer
unmasks only the sum, and nothing any peer receives shows another's update (docs/protocol.md
§19.1).

The Python peers run in this process (an asyncio loop in a thread, WebRTC over loopback) so that
everything each of them receives — from the server and from every other peer, the browser
included — is recorded; the browser's frames from the server are recorded by the page log.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from web_helpers import connect_digits, digits_subset

from disco import catalog, protocol
from disco.data import load_for_task
from disco.decentralized.connector import use_host_addresses
from disco.decentralized.exchange import PeerExchange
from disco.decentralized.peer import PeerClient
from disco.models import build_torch_model
from disco.protocol import RoundPlan
from disco.server import ServerHandle
from disco.training import evaluate
from disco.weights import Weights

ROUNDS = 4


@pytest.fixture
def secure_peers_task(publish: Any) -> str:
    """MNIST, decentralized with secure aggregation, 4 rounds of 1 epoch among 4 peers."""
    doc = catalog.get("mnist").model_dump(mode="json")
    doc["id"], doc["display"]["title"] = "mnist_secure_peers", "Digits, peer to peer, added up"
    doc["training"].update(
        scheme="decentralized",
        epochs=ROUNDS,
        epochs_per_round=1,
        min_participants=4,
        secure_aggregation={"clip": 1.0, "weight_cap": 1024},
    )
    return str(publish(doc))


def _uniform(words: np.ndarray) -> bool:
    """The words' top 4 bits pass a chi-square test against uniform (p ≈ 1e-6, 15 dof)."""
    counts = np.bincount((words >> 28).astype(np.int64), minlength=16)
    expected = words.size / 16
    return float(((counts - expected) ** 2 / expected).sum()) < 60.0


class Peers:
    """Three Python peers in a thread of their own, recording all they receive."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.from_peers: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        self.from_server: dict[str, list[Any]] = defaultdict(list)
        self.sent: list[tuple[str | None, Any]] = []  # (to whom, message)
        self.clients: list[PeerClient] = []
        handle, send = PeerExchange._handle, PeerExchange.send
        record, peers = self.from_peers, self

        async def recording(self: PeerExchange, peer: str, channel: Any, message: Any) -> None:
            record[id(self)].append((peer, message))
            await handle(self, peer, channel, message)

        async def sending(self: PeerExchange, channel: Any, message: Any, timeout: float) -> None:
            peers.sent.append((peers.recipient(self, channel), message))
            await send(self, channel, message, timeout)

        monkeypatch.setattr(PeerExchange, "_handle", recording)
        monkeypatch.setattr(PeerExchange, "send", sending)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def recipient(self, exchange: PeerExchange, channel: Any) -> str | None:
        """The peer `channel` of one of the Python peers leads to (from the plans it was sent)."""
        for client in self.clients:
            if client._exchange is exchange and client._connector is not None:
                plans = [m for m in self.from_server[client.name] if isinstance(m, RoundPlan)]
                for peer in {p.id for plan in plans for p in plan.peers}:
                    if client._connector.channel(peer) is channel:
                        return peer
        return None

    def start(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def test_a_browser_and_three_python_peers_unmask_only_the_sum(
    desktop: Any,
    server: ServerHandle,
    secure_peers_task: str,
    mnist_files: Path,
    page_log: Any,
    screenshot: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = desktop
    page.goto(f"/#/tasks/{secure_peers_task}/connect")
    expect(page.get_by_text("Privacy: updates added up unseen")).to_be_visible()
    connect_digits(page, mnist_files / "client_3", 30)
    page.get_by_test_id("step-next").click()
    page.get_by_test_id("start-training").click()
    status = page.get_by_test_id("training-status")

    task = catalog.get("mnist").model_copy(update={"id": secure_peers_task})
    task = task.with_training(
        scheme="decentralized",
        epochs=ROUNDS,
        epochs_per_round=1,
        min_participants=4,
        secure_aggregation={"clip": 1.0, "weight_cap": 1024},
    )
    use_host_addresses(["127.0.0.1"])  # the Python peers offer loopback to the browser
    peers = Peers(monkeypatch)
    clients = []
    for k in range(3):
        data = digits_subset(mnist_files / f"client_{k % 2 + 1}", tmp_path / f"p{k}", 300)
        name = f"python-{k}"
        clients.append(
            PeerClient(
                task,
                load_for_task(data, task.training),
                server.url,
                name=name,
                seed=k,
                on_message=lambda m, name=name: peers.from_server[name].append(m),
            )
        )
    peers.clients = clients
    runs = [peers.start(c.run(ROUNDS)) for c in clients]
    try:
        expect(page.get_by_test_id("round-peers")).to_be_visible(timeout=120_000)
        expect(status).to_have_attribute("data-phase", "done", timeout=400_000)
        results = [r.result(timeout=120) for r in runs]
    finally:
        peers.stop()
    screenshot(page, "secure-peers-done-desktop")
    assert [r.rounds for r in results] == [ROUNDS] * 3
    python_digests = {r.weights.digest() for r in results}
    assert len(python_digests) == 1

    history = page.request.get(f"{server.url}/api/tasks/{secure_peers_task}/rounds").json()
    assert [h["round"] for h in history] == list(range(ROUNDS))
    for h in history:  # all four unmasked the same sum and agreed on the model
        assert h["contributors"] == 4 and h["aggregation"]["secure"] is True, h
        assert h["aggregation"]["agreeing"] == 4 and h["aggregation"]["digests"] == 4, h

    # the browser ends with the same model, and it has learned
    page.get_by_role("button", name="Test and save the model").click()
    with page.expect_download() as download:
        page.get_by_test_id("download-model").click()
    weights = Weights.from_safetensors(Path(download.value.path()).read_bytes())
    assert {weights.digest()} == python_digests == {history[-1]["digest"]}
    model = build_torch_model(task.model)
    model.set_weights(weights)
    _, accuracy = evaluate(model, load_for_task(mnist_files / "test", task.training))
    assert accuracy is not None and accuracy >= 0.85, accuracy

    # what every Python peer received from the other peers: masked inputs only, each uniform,
    # the browser's among them (as floats, nothing like an update)
    browser = {
        m.client_id
        for m in (protocol.decode(f) for f in page_log(page).frames_received)
        if isinstance(m, protocol.Welcome)
    }
    assert len(browser) == 1
    assert len(peers.from_peers) == 3
    for received in peers.from_peers.values():
        kinds = {type(m) for _, m in received}
        assert protocol.PeerUpdate not in kinds and protocol.PeerModel not in kinds
        masked = [(s, m) for s, m in received if isinstance(m, protocol.PeerMasked)]
        assert len(masked) == 3 * ROUNDS
        assert all(_uniform(np.frombuffer(m.words, dtype="<u4")) for _, m in masked)
        from_browser = [m for s, m in masked if s in browser]
        assert len(from_browser) == ROUNDS
        as_floats = np.frombuffer(from_browser[0].words, dtype="<f4")
        assert np.mean(~np.isfinite(as_floats) | (np.abs(as_floats) > 1e3)) > 0.3
    # what the browser received from the Python peers on its channels: their masked inputs and
    # acknowledgements, nothing else
    to_browser = [m for to, m in peers.sent if to in browser]
    assert {type(m) for m in to_browser} == {protocol.PeerMasked, protocol.PeerAck}
    masked_to_browser = [m for m in to_browser if isinstance(m, protocol.PeerMasked)]
    assert len(masked_to_browser) == 3 * ROUNDS
    assert all(_uniform(np.frombuffer(m.words, dtype="<u4")) for m in masked_to_browser)
    # what every peer received from the server: never a model, never a masked input
    browser_frames = [protocol.decode(f) for f in page_log(page).frames_received]
    for messages in [*peers.from_server.values(), browser_frames]:
        assert any(isinstance(m, protocol.SecureReveals) for m in messages)
        for message in messages:
            assert not isinstance(message, protocol.PeerMasked | protocol.RoundResult)
            fields = type(message).model_fields
            assert not any(isinstance(getattr(message, f), Weights) for f in fields)
    hellos = [m for m in browser_frames if isinstance(m, protocol.Welcome)]
    assert hellos[0].capabilities == ["decentralized", "secure_aggregation"]
