"""What a peer keeps of the frames other peers send it (`PeerExchange`), over in-memory channels:
updates in a plain task, masked inputs in a secure one, each checked, the other kind refused."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest

from disco.decentralized.exchange import PeerExchange
from disco.protocol import ErrorMessage, PeerAck, PeerMasked, PeerUpdate, decode, encode
from disco.transport.memory import memory_pair
from disco.weights import Weights

MODEL = Weights([("w", np.zeros((2, 3), np.float32)), ("b", np.zeros(2, np.float32))])


def masked(round: int = 0, words: bytes | None = None, digest: str | None = None) -> PeerMasked:
    data = bytes(range(4 * (1 + MODEL.size))) if words is None else words
    return PeerMasked(round=round, words=data, digest=digest or hashlib.sha256(data).hexdigest())


def update(round: int = 0) -> PeerUpdate:
    weights = Weights([(n, a + 0.5) for n, a in MODEL.items()])
    return PeerUpdate(round=round, num_samples=3, weights=weights, digest=weights.digest())


def answer(secure: bool, message: PeerMasked | PeerUpdate) -> tuple[object, PeerExchange]:
    """What a peer answers `message` with, and its exchange afterwards."""

    async def body() -> tuple[object, PeerExchange]:
        exchange = PeerExchange(MODEL, lambda round: None, secure=secure)
        exchange.accepting = {0}
        mine, theirs = memory_pair()
        exchange.watch("p-other", mine)
        await theirs.send(encode(message), timeout=5)
        reply = decode(await theirs.receive(timeout=5))
        await exchange.aclose()
        return reply, exchange

    return asyncio.run(body())


def test_a_secure_peer_keeps_a_whole_masked_input_and_acknowledges_it() -> None:
    sent = masked()
    reply, exchange = answer(True, sent)
    assert reply == PeerAck(round=0, digest=sent.digest)
    assert exchange.masked[0]["p-other"] == sent and exchange.holders(0) == ["p-other"]


@pytest.mark.parametrize(
    ("secure", "message", "error"),
    [
        (True, update(), "updates travel masked (peer_masked), never in the clear"),
        (False, masked(), "does not use secure aggregation: its updates travel as peer_update"),
        (True, masked(round=1), "round 1 is not open here"),
        (True, masked(words=bytes(4 * MODEL.size)), f"is {1 + MODEL.size} words"),
        (True, masked(words=bytes(10)), "whole 32-bit words, not 10 bytes"),
        (True, masked(digest="0" * 64), "digest does not match its words"),
    ],
)
def test_what_a_peer_must_not_keep_is_refused_and_changes_nothing(
    secure: bool, message: PeerMasked | PeerUpdate, error: str
) -> None:
    reply, exchange = answer(secure, message)
    assert isinstance(reply, ErrorMessage) and error in reply.message
    assert exchange.holders(0) == [] and exchange.holders(1) == []


def test_a_second_masked_input_from_the_same_peer_is_refused_and_the_first_kept() -> None:
    first, second = masked(), masked(words=bytes(4 * (1 + MODEL.size)))

    async def body() -> tuple[object, object, PeerExchange]:
        exchange = PeerExchange(MODEL, lambda round: None, secure=True)
        exchange.accepting = {0}
        mine, theirs = memory_pair()
        exchange.watch("p-other", mine)
        replies = []
        for message in (first, second):
            await theirs.send(encode(message), timeout=5)
            replies.append(decode(await theirs.receive(timeout=5)))
        await exchange.aclose()
        return replies[0], replies[1], exchange

    ack, refusal, exchange = asyncio.run(body())
    assert ack == PeerAck(round=0, digest=first.digest)
    assert isinstance(refusal, ErrorMessage)
    assert refusal.message == "a masked input of round 0 from this peer arrived already"
    assert exchange.masked[0]["p-other"] == first
