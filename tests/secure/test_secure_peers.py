"""Decentralized training with secure aggregation (docs/protocol.md §19.1): a real server on
loopback paces the rounds, real Python peers exchange masked inputs over in-process channels;
every peer records everything it receives, and none of it shows another peer's update."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import numpy as np
import pytest
from secure_kit import blobs, secure_task
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import disco.decentralized.secure as peer_secure
from disco.decentralized.connector import MemoryConnector, MemoryHub
from disco.decentralized.exchange import PeerExchange
from disco.decentralized.peer import PeerClient
from disco.errors import ServerError
from disco.protocol import (
    ErrorMessage,
    Hello,
    PeerMasked,
    PeerUpdate,
    RoundResult,
    SecureAbort,
    SecureInput,
    SecureReveals,
    SecureSetup,
    Welcome,
    encode,
)
from disco.protocol import decode as decode_frame
from disco.secure import decode
from disco.secure.mean import secure_mean
from disco.task import Task
from disco.weights import Weights

pytestmark = pytest.mark.timeout(150)


def peers_task(min_participants: int = 4, threshold: int | None = None) -> Task:
    return secure_task(min_participants, threshold, scheme="decentralized", round_deadline_s=15)


def chi_square_uniform(words: np.ndarray, bins: int = 16) -> float:
    """Chi-square statistic of the words' top 4 bits against the uniform distribution."""
    counts = np.bincount((words >> 28).astype(np.int64), minlength=bins)
    expected = words.size / bins
    return float(((counts - expected) ** 2 / expected).sum())


class Recorder:
    """What every peer receives (from the server and from peers) and what each one quantised."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.from_server: dict[str, list[Any]] = defaultdict(list)
        self.from_peers: dict[int, list[tuple[str, Any]]] = defaultdict(list)  # by exchange
        self.plain: dict[tuple[str, int], tuple[Weights, Weights, np.ndarray, int]] = {}
        handle, quantized = PeerExchange._handle, peer_secure.quantized_update
        recorder = self

        async def recording(self: PeerExchange, peer: str, channel: Any, message: Any) -> None:
            recorder.from_peers[id(self)].append((peer, message))
            await handle(self, peer, channel, message)

        def keeping(weights: Weights, trained: Weights, n: int, *args: Any) -> np.ndarray:
            words = quantized(weights, trained, n, *args)
            setup = args[-1]
            recorder.plain[(recorder._owner(trained), setup.round)] = (
                weights,
                trained,
                words,
                setup.bits,
            )
            return words

        monkeypatch.setattr(PeerExchange, "_handle", recording)
        monkeypatch.setattr(peer_secure, "quantized_update", keeping)
        self._trained: dict[int, str] = {}

    def _owner(self, trained: Weights) -> str:
        return self._trained.get(id(trained), "?")

    def peers(self, url: str, task: Task, n: int, hub: MemoryHub) -> list[PeerClient]:
        out = []
        for i in range(n):
            name = f"peer-{i}"
            peer = PeerClient(
                task,
                blobs(seed=i),
                url,
                name=name,
                seed=i,
                connector=lambda me, on_channel, send: MemoryConnector(me, on_channel, hub),
                on_message=lambda m, name=name: self.from_server[name].append(m),
            )
            train = peer.train

            async def tagged(r: int, base: Weights, epochs: int, train: Any = train, name=name):
                trained, history = await train(r, base, epochs)
                self._trained[id(trained)] = name
                return trained, history

            peer.train = tagged  # type: ignore[method-assign]
            out.append(peer)
        return out


def test_four_peers_unmask_the_weighted_mean_and_see_no_update(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = peers_task()
    server = serve(task)
    record = Recorder(monkeypatch)
    peers = record.peers(server.url, task, 4, MemoryHub())

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            return await asyncio.gather(*(p.run(rounds=2) for p in peers))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [2, 2, 2, 2]
    names = [p.name for p in peers]
    for k in range(2):
        assert len({p.timings[k].digest for p in peers}) == 1, f"round {k}"
        assert all(p.timings[k].contributors == 4 for p in peers)
    # the model every peer ends round 0 with is the plain weighted mean, within the bound
    settings = task.training.secure_aggregation
    assert settings is not None
    round0 = [record.plain[(n, 0)] for n in names]
    base, bits = round0[0][0], round0[0][3]
    weights = [min(len(p.train_data), settings.weight_cap) for p in peers]
    change = sum(
        w * np.clip((t - base).flatten().astype(np.float64), -settings.clip, settings.clip)
        for w, (_, t, _, _) in zip(weights, round0, strict=True)
    ) / sum(weights)
    ended = peers[0].timings[0].digest
    history = httpx.get(f"{server.url}/api/tasks/secure/rounds", timeout=5).json()
    assert history[0]["digest"] == ended
    assert history[0]["aggregation"]["secure"] is True
    assert history[0]["aggregation"]["members"] == 4 and history[0]["contributors"] == 4
    summed = np.sum([words for _, _, words, _ in round0], axis=0, dtype=np.uint64) % 2**32
    total, values = decode(summed.astype(np.uint32), bits)
    assert total == sum(weights)
    bound = len(peers) / (2.0**bits * total)  # stochastic rounding: under 1 unit per member
    assert np.max(np.abs(values / total - change)) <= bound
    # what each peer received: the others' masked inputs, never an update; uniform words
    assert len(record.from_peers) == 4
    for received in record.from_peers.values():
        assert not any(isinstance(m, PeerUpdate) for _, m in received)
        masked = [(sender, m) for sender, m in received if isinstance(m, PeerMasked)]
        assert len(masked) == 2 * 3  # 2 rounds × the 3 others
        for sender, m in masked:
            words = np.frombuffer(m.words, dtype="<u4")
            assert chi_square_uniform(words) < 60.0  # p ≈ 1e-6 for 15 degrees of freedom
            plain = record.plain[(_name(peers, sender), m.round)][2]
            assert not np.array_equal(words, plain)
    for messages in record.from_server.values():  # the server sends no model, no masked input
        assert not any(isinstance(m, RoundResult | PeerMasked) for m in messages)
        assert any(isinstance(m, SecureReveals) for m in messages)


def _name(peers: list[PeerClient], client_id: str) -> str:
    return next(p.name for p in peers if p.client_id == client_id)


@pytest.mark.parametrize(
    ("phase", "survivors", "dropped"),
    [("share", 5, 0), ("mask", 5, 1), ("reveal", 6, 0)],
)
def test_a_peer_that_leaves_at_a_phase_and_the_rest_unmask_the_survivors_exact_sum(
    phase: str, survivors: int, dropped: int, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n = 6, t = 4: one peer leaves before its shares, before its masked input, or after it
    (before revealing); every other peer ends with the survivors' sum, bit for bit."""
    task = peers_task(min_participants=6, threshold=4)
    server = serve(task)
    record = Recorder(monkeypatch)
    peers = record.peers(server.url, task, 6, MemoryHub())
    leaver = peers[5]
    real = getattr(peer_secure.SecureParticipant, phase)

    def dying(self: Any, *args: Any) -> Any:
        if self.me == leaver.client_id:
            raise asyncio.CancelledError  # its run ends here: it leaves the session
        return real(self, *args)

    monkeypatch.setattr(peer_secure.SecureParticipant, phase, dying)

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            runs = [asyncio.ensure_future(p.run(rounds=1)) for p in peers]
            return list(await asyncio.gather(*runs, return_exceptions=True))

    results = asyncio.run(body())

    assert isinstance(results[5], BaseException)
    assert [r.rounds for r in results[:5]] == [1] * 5
    reveals = [m for m in record.from_server["peer-0"] if isinstance(m, SecureReveals)]
    assert len(reveals) == 1
    split = reveals[0]
    assert (len(split.survivors), len(split.dropped)) == (survivors, dropped)
    assert (leaver.client_id in split.survivors) == (phase == "reveal")
    # the model every peer ends with is the survivors' exact sum, decoded and applied
    settings = task.training.secure_aggregation
    assert settings is not None
    names = [_name(peers, s) for s in split.survivors]
    base, bits = record.plain[(names[0], 0)][0], record.plain[(names[0], 0)][3]
    total = np.sum([record.plain[(n, 0)][2] for n in names], axis=0, dtype=np.uint64) % 2**32
    expected, _ = secure_mean(base, total.astype(np.uint32), bits, survivors, settings.weight_cap)
    assert {p.timings[0].digest for p in peers[:5]} == {expected.digest()}
    history = httpx.get(f"{server.url}/api/tasks/secure/rounds", timeout=5).json()
    assert history[0]["aggregation"]["dropped"] == dropped
    assert history[0]["contributors"] == survivors and history[0]["digest"] == expected.digest()


def test_too_few_peers_left_abort_the_round_and_the_next_one_works(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = peers_task(min_participants=5, threshold=4)
    server = serve(task)
    record = Recorder(monkeypatch)
    peers = record.peers(server.url, task, 7, MemoryHub())  # one hub: the last two join late
    leaver = peers[4]
    real_mask = peer_secure.SecureParticipant.mask

    def mask(self: Any, words: np.ndarray, senders: Any) -> np.ndarray:
        if self.me == leaver.client_id:
            raise asyncio.CancelledError  # leaves after sharing
        return real_mask(self, words, senders)

    monkeypatch.setattr(peer_secure.SecureParticipant, "mask", mask)
    real_reveal = peer_secure.SecureParticipant.reveal

    def reveal(self: Any, survivors: Any, dropped: Any) -> Any:
        if self.round == 0 and self.me == peers[3].client_id:
            raise asyncio.CancelledError  # a second one leaves at unmasking: 3 < threshold 4
        return real_reveal(self, survivors, dropped)

    monkeypatch.setattr(peer_secure.SecureParticipant, "reveal", reveal)

    async def run_all() -> list[Any]:
        async with asyncio.timeout(140):
            # rounds count when combined: the first three sit through the aborted round 0
            first = [asyncio.ensure_future(p.run(rounds=1)) for p in peers[:3]]
            quitting = [asyncio.ensure_future(p.run(rounds=1)) for p in peers[3:5]]
            await asyncio.gather(*quitting, return_exceptions=True)
            late = [asyncio.ensure_future(p.run(rounds=1)) for p in peers[5:]]
            return list(await asyncio.gather(*first, *late, return_exceptions=True))

    results = asyncio.run(run_all())

    aborts = [m for m in record.from_server["peer-0"] if isinstance(m, SecureAbort)]
    assert len(aborts) == 1 and aborts[0].round == 0
    assert "unmasking needs 4" in aborts[0].reason
    # nothing was revealed beyond the phases answered: no SecureReveals in round 0
    assert not any(
        isinstance(m, SecureReveals) and m.round == 0
        for ms in record.from_server.values()
        for m in ms
    )
    assert all(not isinstance(r, BaseException) for r in results), results
    assert [r.rounds for r in results] == [1] * 5  # round 0 aborted, round 1 combined
    survivors = [*peers[:3], *peers[5:]]
    assert len({p.timings[-1].digest for p in survivors}) == 1
    assert [t.round for t in peers[0].timings] == [1]  # one timing per round combined
    history = httpx.get(f"{server.url}/api/tasks/secure/rounds", timeout=5).json()
    assert "aborted" in history[0]["aggregation"] and history[1]["contributors"] == 5
    setups = [m for m in record.from_server["peer-0"] if isinstance(m, SecureSetup)]
    assert [s.round for s in setups] == [0, 1]


def _frames(url: str, hello: Hello, then: list[Any], replies: int) -> tuple[list[Any], int | None]:
    """Send `hello` and `then` on a raw connection; the first `replies` answers and the close
    code (None while open)."""

    async def body() -> tuple[list[Any], int | None]:
        async with connect(url.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
            await ws.send(encode(hello))
            for message in then:
                await ws.send(encode(message))
            answers = []
            try:
                while len(answers) < replies:
                    answers.append(decode_frame(await asyncio.wait_for(ws.recv(), 5)))
            except ConnectionClosed:
                pass
            if replies == 1:  # a refusal to join: the server closes the connection
                await asyncio.wait_for(ws.wait_closed(), 5)
            return answers, ws.close_code

    return asyncio.run(body())


def test_a_peer_that_does_not_speak_secure_aggregation_is_refused(serve: Any) -> None:
    server = serve(peers_task())
    answers, code = _frames(
        server.url, Hello(task_id="secure", capabilities=["decentralized"]), [], 1
    )
    assert isinstance(answers[0], ErrorMessage) and answers[0].code == "unsupported"
    assert "secure_aggregation" in answers[0].message and code == 4426


def test_a_masked_input_sent_to_the_server_is_refused(serve: Any) -> None:
    server = serve(peers_task())
    hello = Hello(task_id="secure", capabilities=["decentralized", "secure_aggregation"])
    masked = SecureInput(round=0, words=bytes(8))
    answers, code = _frames(server.url, hello, [masked], 3)  # a status may come between
    welcome = next(m for m in answers if isinstance(m, Welcome))
    assert welcome.capabilities == ["decentralized", "secure_aggregation"]
    error = next(m for m in answers if isinstance(m, ErrorMessage))
    assert error.code == "unexpected" and "masked inputs go to the peers" in error.message
    assert code is None  # a refusal, not a disconnection


def test_a_round_whose_peers_all_left_starts_afresh_for_new_peers(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = peers_task(min_participants=3)
    server = serve(task)
    record = Recorder(monkeypatch)
    hub = MemoryHub()
    first, second = record.peers(server.url, task, 3, hub), record.peers(server.url, task, 3, hub)
    leaving = {id(p) for p in first}
    real_share = peer_secure.SecureParticipant.share
    quitters: set[str] = set()

    def share(self: Any, setup: Any) -> Any:
        if self.me in quitters:
            raise asyncio.CancelledError  # all of round 0's first peers leave while sharing
        return real_share(self, setup)

    monkeypatch.setattr(peer_secure.SecureParticipant, "share", share)

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            runs = [asyncio.ensure_future(p.run(rounds=1)) for p in first]
            while not all(p.client_id for p in first):
                await asyncio.sleep(0.01)
            quitters.update(p.client_id for p in first if id(p) in leaving and p.client_id)
            await asyncio.gather(*runs, return_exceptions=True)
            return list(await asyncio.gather(*(p.run(rounds=1) for p in second)))

    results = asyncio.run(body())

    assert [r.rounds for r in results] == [1, 1, 1]
    assert len({p.timings[0].digest for p in second}) == 1
    assert all(p.timings[0].round == 0 for p in second)  # round 0, started afresh
    history = httpx.get(f"{server.url}/api/tasks/secure/rounds", timeout=5).json()
    assert [h["round"] for h in history] == [0] and history[0]["contributors"] == 3


def test_two_survivors_of_three_abort_rather_than_read_each_others_update(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = peers_task(min_participants=3)
    server = serve(task)
    record = Recorder(monkeypatch)
    peers = record.peers(server.url, task, 3, MemoryHub())
    real_mask = peer_secure.SecureParticipant.mask

    def mask(self: Any, words: np.ndarray, senders: Any) -> np.ndarray:
        if self.me == peers[2].client_id:
            raise asyncio.CancelledError  # shares, then leaves: 2 survivors would remain
        return real_mask(self, words, senders)

    monkeypatch.setattr(peer_secure.SecureParticipant, "mask", mask)

    async def body() -> list[Any]:
        async with asyncio.timeout(120):
            runs = [asyncio.ensure_future(p.run(rounds=1)) for p in peers]
            await asyncio.gather(runs[2], return_exceptions=True)
            while not any(isinstance(m, SecureAbort) for m in record.from_server["peer-0"]):
                await asyncio.sleep(0.02)
            return list(runs)  # the two left wait for a third peer: ended with the loop

    asyncio.run(body())
    aborts = [m for m in record.from_server["peer-0"] if isinstance(m, SecureAbort)]
    assert len(aborts) == 1 and "only 2 survivors" in aborts[0].reason
    assert not any(isinstance(m, SecureReveals) for m in record.from_server["peer-0"])
    history = httpx.get(f"{server.url}/api/tasks/secure/rounds", timeout=5).json()
    assert "only 2 survivors" in history[0]["aggregation"]["aborted"]


def test_a_server_shutdown_in_a_secure_round_ends_every_peer_at_once(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops (as on SIGTERM) once the roster reached the peers: a restarted server
    would not have the round's secure state, and peers of a decentralized task stop when the
    server goes away (docs/operations.md) — each with `ServerError`, within seconds, none
    waiting for a phase that will not come."""
    task = peers_task()
    server = serve(task)
    record = Recorder(monkeypatch)
    peers = record.peers(server.url, task, 4, MemoryHub())
    roster = threading.Event()
    for p in peers:
        seen = p.on_message

        def on_message(m: Any, seen: Any = seen) -> None:
            seen(m)
            if isinstance(m, SecureSetup):
                roster.set()

        p.on_message = on_message
    stopper = threading.Thread(target=lambda: roster.wait(60) and server.stop(), daemon=True)
    stopper.start()

    async def body() -> list[Any]:
        async with asyncio.timeout(60):
            return await asyncio.gather(*(p.run(rounds=2) for p in peers), return_exceptions=True)

    started = time.monotonic()
    results = asyncio.run(body())
    stopper.join(30)
    assert roster.is_set()
    assert all(isinstance(r, ServerError) for r in results), results
    assert time.monotonic() - started < 30
