"""A participant's identity in a session: the same across reconnects when it says hello with its
``participant_key`` (fake participants on the session, then a real client on a real server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from disco.aggregation import Aggregator, ParticipantReport, Update
from disco.client import FederatedClient
from disco.data.dataset import Dataset
from disco.models import init_weights
from disco.protocol import ErrorMessage, RoundResult, UpdateAck, Welcome
from disco.server import FederatedSession
from disco.server.session import identity_of
from disco.weights import Weights

pytestmark = pytest.mark.timeout(30)

KEY_A = "key-of-a-0123456789abcdef"
KEY_B = "key-of-b-0123456789abcdef"


def run(coro: Awaitable[Any]) -> Any:
    """Run one async test body."""
    return asyncio.run(coro)  # type: ignore[arg-type]


def new_session(kit: Any, aggregator: Aggregator | None = None, **task: Any) -> FederatedSession:
    t = kit.make_task(**task)
    return FederatedSession(t, 0, init_weights(t.model, seed=0), aggregator=aggregator)


def identity(participant: Any) -> str:
    """The identity the session gave a fake participant (its last Welcome's client_id)."""
    welcome: Welcome = participant.of(Welcome)[-1]
    return welcome.client_id


class Recorder(Aggregator):
    """The mean of the deltas; remembers which participant ids each round saw."""

    rule = "recorder"

    def __init__(self) -> None:
        self.rounds: list[list[str]] = []

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        self.rounds.append(sorted(u.participant for u in updates))
        mean = global_weights.map(np.zeros_like)
        for u in updates:
            mean = mean + u.delta.map(lambda a: a / len(updates))
        return mean, [ParticipantReport(u.participant, 1 / len(updates)) for u in updates]


# -- the session, with fake participants -------------------------------------------------------


def test_a_participant_rejoining_with_its_key_keeps_its_identity_and_counts_once(
    kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """a reports, drops and comes back with its key: same id, its resend (and any other update)
    is a duplicate, and the round closes when b reports."""
    caplog.set_level(logging.INFO, logger="disco.server")

    async def body() -> None:
        s = new_session(kit, min_participants=2, deadline=60)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b", "browser")
        ca, cb = await s.join(a, KEY_A), await s.join(b)
        ida = identity(a)
        assert ida == identity_of(s.task.id, KEY_A) and ida.startswith("p-") and len(ida) == 18
        assert ida != ca  # the connection id is not the identity
        update = kit.update(0, kit.filled(s.weights, 2.0), 5)
        assert isinstance(await s.submit(ca, update), UpdateAck)
        assert s._collector.participants == {ida: 5}

        await s.leave(ca)  # the connection dropped after the update arrived
        again = kit.FakeParticipant("a")
        ca2 = await s.join(again, KEY_A)
        assert identity(again) == ida and ca2 != ca
        for resent in (update, kit.update(0, kit.filled(s.weights, 3.0), 7)):
            reply = await s.submit(ca2, resent)
            assert isinstance(reply, ErrorMessage) and reply.code == "duplicate"
        assert (s.reported, s.round, s.participants) == (1, 0, 2)

        await s.submit(cb, kit.update(0, kit.filled(s.weights, 4.0), 5))
        await s.wait_for_round(1, timeout=5)  # everyone connected (a, b) reported
        (result,) = again.of(RoundResult)
        assert result.contributors == 2 and result.num_samples == 10

    run(body())
    assert f"a/python joined as {identity_of('tiny', KEY_A)}" in caplog.text
    assert f"a/python rejoined as {identity_of('tiny', KEY_A)} (2 connected)" in caplog.text
    assert KEY_A not in caplog.text  # the secret itself is never logged


def test_two_keys_are_two_participants(kit: Any) -> None:
    """Same name, kind and weights, other keys: two participants, both updates count."""

    async def body() -> None:
        s = new_session(kit, min_participants=2)
        a, b = kit.FakeParticipant("twin"), kit.FakeParticipant("twin")
        ca, cb = await s.join(a, KEY_A), await s.join(b, KEY_B)
        assert identity(a) != identity(b) and s.participants == 2
        update = kit.update(0, kit.filled(s.weights, 1.0))
        assert isinstance(await s.submit(ca, update), UpdateAck)
        await s.leave(ca)  # gone: for a key-less sender the heuristic would call b's a resend
        assert isinstance(await s.submit(cb, update), UpdateAck)
        await s.wait_for_round(1, timeout=5)
        assert b.of(RoundResult)[0].contributors == 2

    run(body())


def test_two_live_connections_with_one_key_are_one_participant(kit: Any) -> None:
    """a is connected twice: it counts once among the participants, its update once, and the
    round waits for b, not for a's second connection."""

    async def body() -> None:
        s = new_session(kit, min_participants=2, deadline=60)
        a1, a2, b = kit.FakeParticipant("a"), kit.FakeParticipant("a"), kit.FakeParticipant("b")
        c1, c2, cb = await s.join(a1, KEY_A), await s.join(a2, KEY_A), await s.join(b)
        assert identity(a1) == identity(a2) and s.participants == 2
        assert a2.of(Welcome)[0].participants == 1  # a's second connection: still one
        assert b.of(Welcome)[0].participants == 2

        ack = await s.submit(c1, kit.update(0, kit.filled(s.weights, 1.0)))
        assert isinstance(ack, UpdateAck) and (ack.reported, ack.participants) == (1, 2)
        reply = await s.submit(c2, kit.update(0, kit.filled(s.weights, 9.0)))
        assert isinstance(reply, ErrorMessage) and reply.code == "duplicate"
        await s.leave(c1)
        assert s.participants == 2  # a is still connected on c2
        await b.status(participants=2)

        await s.submit(cb, kit.update(0, kit.filled(s.weights, 3.0)))
        await s.wait_for_round(1, timeout=5)
        for p in (a2, b):  # every live connection gets the result
            (result,) = p.of(RoundResult)
            assert result.contributors == 2
            np.testing.assert_allclose(result.weights["dense_1.bias"], 2.0)  # (1 + 3) / 2

    run(body())


def test_without_a_key_every_connection_is_a_new_participant(kit: Any) -> None:
    """As before keys: a new id per connection, the connection id itself."""

    async def body() -> None:
        s = new_session(kit)
        first, second = kit.FakeParticipant("a"), kit.FakeParticipant("a")
        c1 = await s.join(first)
        await s.leave(c1)
        c2 = await s.join(second)
        assert (identity(first), identity(second)) == (c1, c2) and c1 != c2

    run(body())


def test_the_aggregator_sees_one_id_per_participant_across_rounds_and_reconnects(
    kit: Any,
) -> None:
    """Round 0: a (key), b (key), c (no key). Between the rounds a and c reconnect. Round 1: the
    aggregator sees a and b under the same ids; c, without a key, as a newcomer."""
    recorder = Recorder()

    async def body() -> None:
        s = new_session(kit, recorder, min_participants=3, deadline=60)
        a, b, c = (kit.FakeParticipant(n) for n in "abc")
        conns = {"a": await s.join(a, KEY_A), "b": await s.join(b, KEY_B), "c": await s.join(c)}
        ids0 = {"a": identity(a), "b": identity(b), "c": identity(c)}
        for conn in conns.values():
            await s.submit(conn, kit.update(0, kit.filled(s.weights, 1.0)))
        await s.wait_for_round(1, timeout=5)

        await s.leave(conns["a"])
        await s.leave(conns["c"])
        a2, c2 = kit.FakeParticipant("a"), kit.FakeParticipant("c")
        conns["a"], conns["c"] = await s.join(a2, KEY_A), await s.join(c2)
        ids1 = {"a": identity(a2), "b": identity(b), "c": identity(c2)}
        for conn in conns.values():
            await s.submit(conn, kit.update(1, kit.filled(s.weights, 2.0)))
        await s.wait_for_round(2, timeout=5)

        assert ids1["a"] == ids0["a"] and ids1["b"] == ids0["b"]
        assert ids1["c"] != ids0["c"]
        assert recorder.rounds == [sorted(ids0.values()), sorted(ids1.values())]

    run(body())


# -- a real client on a real server ------------------------------------------------------------


def test_a_python_client_that_reconnects_mid_session_keeps_its_identity(
    kit: Any, start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A `FederatedClient` loses its connection right after its update of round 0; it comes back
    as the same participant, its resend is a duplicate, and both rounds count it once."""
    caplog.set_level(logging.INFO, logger="disco.server")
    task = kit.make_task(min_participants=2, deadline=20)
    server = start_server(tasks=(task,))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    data = Dataset(x, (x.sum(axis=1) > 0).astype(np.int64))
    seen: list[Any] = []

    async def body() -> None:
        duplicate = asyncio.Event()
        client: FederatedClient

        def on_message(message: Any) -> None:
            seen.append(message)
            acks = [m for m in seen if isinstance(m, UpdateAck)]
            if isinstance(message, UpdateAck) and len(acks) == 1:
                client.link._channel._conn.transport.abort()  # the network drops, no close frame
            if isinstance(message, ErrorMessage) and message.code == "duplicate":
                duplicate.set()

        client = FederatedClient(
            task, data, server.url, name="py", on_message=on_message, wait_for_others_s=20
        )
        async with kit.WsClient(server.ws_url) as other:
            welcome = await other.hello(name="other")
            running = asyncio.create_task(client.run(2))
            async with asyncio.timeout(20):
                await duplicate.wait()  # py reconnected and resent its update of round 0
            g = welcome.weights
            for rnd in range(2):
                await other.send(kit.update(rnd, kit.filled(g, 0.1)))
                await other.expect(UpdateAck)
                g = (await other.expect(RoundResult, timeout=20)).weights
            result = await asyncio.wait_for(running, 20)
            assert result.rounds == 2 and result.weights == g

    run(body())
    welcomes = [m for m in seen if isinstance(m, Welcome)]
    assert len(welcomes) == 2 and welcomes[0].round == welcomes[1].round == 0
    (only,) = {w.client_id for w in welcomes}  # one identity on both connections
    assert only.startswith("p-")
    assert f"py/python rejoined as {only}" in caplog.text
    rounds = httpx.get(f"{server.url}/api/tasks/{task.id}/rounds", timeout=5).json()
    assert [r["contributors"] for r in rounds] == [2, 2]
    assert [sorted(p["name"] for p in r["participants"]) for r in rounds] == [["other", "py"]] * 2
