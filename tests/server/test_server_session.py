"""Round logic of `FederatedSession`, driven with fake participants (no sockets)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.aggregation import Aggregator, ParticipantReport, Update
from disco.errors import SessionError
from disco.models import init_weights
from disco.protocol import ErrorMessage, RoundResult, UpdateAck, Welcome
from disco.server import FederatedSession, Store
from disco.weights import Weights

pytestmark = pytest.mark.timeout(20)


def run(coro: Awaitable[Any]) -> Any:
    """Run one async test body."""
    return asyncio.run(coro)  # type: ignore[arg-type]


PLAIN_FEDAVG = {"rule": "mean", "max_share": 1.0}
"""FedAvg without the default share cap, to check the weighting itself."""


def new_session(kit: Any, **task_options: Any) -> FederatedSession:
    task = kit.make_task(**task_options)
    return FederatedSession(task, 0, init_weights(task.model, seed=0))


def test_round_closes_when_everyone_reported_with_sample_weighted_mean(kit: Any) -> None:
    """Prepare two participants; both report; the result is the exact sample-weighted mean."""

    async def body() -> None:
        s = new_session(kit, aggregation=PLAIN_FEDAVG)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b", "browser")
        ida, idb = await s.join(a), await s.join(b)
        g = s.weights
        assert isinstance(a.inbox[0], Welcome) and a.inbox[0].weights == g
        await a.status(participants=2)  # a heard that b joined

        ack = await s.submit(ida, kit.update(0, kit.filled(g, 1.0), 1, train_loss=1.0))
        assert isinstance(ack, UpdateAck) and ack.reported == 1
        assert s.round == 0  # b has not reported yet
        await s.submit(idb, kit.update(0, kit.filled(g, 4.0), 3, train_loss=2.0))
        await s.wait_for_round(1, timeout=5)

        for p in (a, b):
            (result,) = p.of(RoundResult)
            assert result.round == 1 and result.contributors == 2 and result.num_samples == 4
            assert result.metrics.train_loss == pytest.approx(1.75)  # (1*1 + 3*2) / 4
            for arr in result.weights.values():
                np.testing.assert_allclose(arr, 3.25)  # (1*1 + 3*4) / 4
        assert s.weights == a.of(RoundResult)[0].weights and s.reported == 0

    run(body())


def test_min_participants_state_transitions(kit: Any) -> None:
    """Prepare min=2; the state flips to enough when the second joins and back when one leaves."""

    async def body() -> None:
        s = new_session(kit, min_participants=2)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b")
        ida = await s.join(a)
        assert a.inbox[0].state == "waiting_for_participants"
        idb = await s.join(b)
        assert b.inbox[0].state == "enough_participants"
        await a.status(state="enough_participants")
        await s.submit(ida, kit.update(0, s.weights))
        await s.leave(idb)
        await a.status(state="waiting_for_participants", participants=1, reported=1)
        assert s.round == 0  # a alone reported: 1 < min 2, the round stays open

    run(body())


def rejected(reply: Any, code: str) -> bool:
    return isinstance(reply, ErrorMessage) and reply.code == code


def test_rejections_change_nothing(kit: Any) -> None:
    """Prepare a session at round 1; each bad update is refused and G, round, reports stay."""

    async def body() -> None:
        s = new_session(kit, min_participants=2)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b")
        ida, idb = await s.join(a), await s.join(b)
        g0 = s.weights
        await s.submit(ida, kit.update(0, g0))
        await s.submit(idb, kit.update(0, g0))
        await s.wait_for_round(1, timeout=5)
        await s.submit(ida, kit.update(1, kit.filled(g0, 0.5)))
        digest, g1 = s.digest, s.weights
        bad_shape = Weights({"dense_1.kernel": np.zeros((3, 1)), "dense_1.bias": np.zeros(1)})
        missing = Weights({"dense_1.kernel": np.zeros((2, 1))})
        extra = Weights({**g1, "extra": np.zeros(2)})
        nan = g1.map(lambda x: np.full_like(x, np.nan))
        inf = Weights({"dense_1.kernel": g1["dense_1.kernel"], "dense_1.bias": [np.inf]})
        cases = [
            (ida, kit.update(1, g1), "duplicate", "already"),
            (idb, kit.update(0, g1), "stale", "round 0"),
            (idb, kit.update(5, g1), "future", "round 5"),
            (idb, kit.update(1, bad_shape), "shape", "'dense_1.kernel' has shape (3, 1)"),
            (idb, kit.update(1, missing), "shape", "'dense_1.bias' is missing"),
            (idb, kit.update(1, extra), "shape", "unexpected tensor 'extra'"),
            (idb, kit.update(1, nan), "not_finite", "dense_1.kernel"),
            (idb, kit.update(1, inf), "not_finite", "dense_1.bias"),
            (idb, kit.update(1, kit.filled(g1, 500.0)), "out_of_range", "by 256 or more"),
        ]
        for client, upd, code, text in cases:
            reply = await s.submit(client, upd)
            assert rejected(reply, code) and text in reply.message, (code, reply)
            assert (s.round, s.digest, s.reported) == (1, digest, 1)
        assert s.weights == g1
        # the reordered-but-complete update is fine
        reordered = Weights([("dense_1.bias", g1["dense_1.bias"]), *list(g1.items())[:1]])
        assert isinstance(await s.submit(idb, kit.update(1, reordered)), UpdateAck)
        await s.wait_for_round(2, timeout=5)

    run(body())


def test_silent_participant_round_closes_at_deadline(kit: Any) -> None:
    """Prepare b that never reports; the round closes once the deadline after a's update ends."""

    async def body() -> None:
        s = new_session(kit, deadline=0.3)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b")
        ida, _ = await s.join(a), await s.join(b)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await s.submit(ida, kit.update(0, kit.filled(s.weights, 2.0)))
        assert 0 < s.deadline_in() <= 0.3  # type: ignore[operator]
        await s.wait_for_round(1, timeout=5)
        assert loop.time() - start >= 0.29
        assert b.of(RoundResult)[0].contributors == 1  # b still gets the new model

    run(body())


def test_leaver_is_not_awaited_but_its_update_counts(kit: Any) -> None:
    """Prepare three; a reports and drops, b drops; c's report closes the round at once."""

    async def body() -> None:
        s = new_session(kit, deadline=60)
        a, b, c = (kit.FakeParticipant(n) for n in "abc")
        ida, idb, idc = [await s.join(p) for p in (a, b, c)]
        await s.submit(ida, kit.update(0, kit.filled(s.weights, 1.0), 1))
        await s.leave(ida)
        await s.leave(idb)
        await s.submit(idc, kit.update(0, kit.filled(s.weights, 3.0), 1))
        await s.wait_for_round(1, timeout=2)  # far before the 60 s deadline
        (result,) = c.of(RoundResult)
        assert result.contributors == 2 and not a.of(RoundResult) and not b.of(RoundResult)
        np.testing.assert_allclose(result.weights["dense_1.bias"], 2.0)

    run(body())


def test_deadline_with_too_few_reports_keeps_waiting(kit: Any) -> None:
    """Prepare min=2; the deadline passes with one report; a late joiner's report closes it."""

    async def body() -> None:
        s = new_session(kit, min_participants=2, deadline=0.2)
        a = kit.FakeParticipant("a")
        ida = await s.join(a)
        await s.submit(ida, kit.update(0, s.weights))
        await asyncio.sleep(0.4)
        assert s.round == 0 and s.phase == "collecting"
        late = kit.FakeParticipant("late")
        idl = await s.join(late)
        assert late.inbox[0].round == 0 and late.inbox[0].weights == s.weights
        await s.submit(idl, kit.update(0, s.weights))
        await s.wait_for_round(1, timeout=2)

    run(body())


def test_updates_while_aggregating_are_stale_and_joiners_get_the_new_round(
    kit: Any, tmp_path: Path
) -> None:
    """Prepare a save that blocks; during it an update is stale and a join waits for the result."""

    async def body() -> None:
        task = kit.make_task(deadline=0.1)
        store = Store(tmp_path, keep_rounds=2)
        store.put_task(task, init_weights(task.model, seed=0))
        release = threading.Event()

        def slow_save(*args: Any) -> None:
            release.wait(5)
            store.save_round(*args)

        s = FederatedSession(task, 0, init_weights(task.model, seed=0), save=slow_save)
        a, b, c = (kit.FakeParticipant(n) for n in "abc")
        ida, idb = await s.join(a), await s.join(b)
        await s.submit(ida, kit.update(0, s.weights))
        while s.phase != "aggregating":
            await asyncio.sleep(0.02)
        reply = await s.submit(idb, kit.update(0, s.weights))
        assert rejected(reply, "stale") and "closing" in reply.message
        joining = asyncio.ensure_future(s.join(c))
        await asyncio.sleep(0.1)
        assert not joining.done()
        release.set()
        await asyncio.wait_for(joining, 5)
        assert c.inbox[0].round == 1 and not c.of(RoundResult)
        assert store.load_state(task.id)[0] == 1  # type: ignore[index]
        assert [r.contributors for r in store.history(task.id)] == [1]
        await s.aclose()
        with pytest.raises(SessionError):
            await s.join(kit.FakeParticipant())
        store.close()

    run(body())


def test_concurrent_joins_and_updates_close_exactly_once(kit: Any) -> None:
    """Prepare 20 participants joining and reporting concurrently; one round closes with all."""

    async def body() -> None:
        s = new_session(kit)
        people = [kit.FakeParticipant(f"p{i}") for i in range(20)]
        ids = await asyncio.gather(*(s.join(p) for p in people))
        replies = await asyncio.gather(
            *(
                s.submit(i, kit.update(0, kit.filled(s.weights, k), k + 1))
                for k, i in enumerate(ids)
            )
        )
        assert all(isinstance(r, UpdateAck) for r in replies)
        await s.wait_for_round(1, timeout=5)
        await asyncio.sleep(0.05)
        assert s.round == 1
        assert all(len(p.of(RoundResult)) == 1 for p in people)
        expected = sum(k * (k + 1) for k in range(20)) / sum(k + 1 for k in range(20))
        np.testing.assert_allclose(s.weights["dense_1.kernel"], expected, rtol=1e-6)

    run(body())


def test_log_lines_name_participant_samples_and_weight(
    kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepare a python and a browser participant; the log shows each update's weight."""
    caplog.set_level(logging.INFO, logger="disco.server")

    async def body() -> None:
        s = new_session(kit, aggregation=PLAIN_FEDAVG)
        py, web = kit.FakeParticipant("alice"), kit.FakeParticipant("bob", "browser")
        ids = [await s.join(py), await s.join(web)]
        for i, n in zip(ids, (30, 10), strict=True):
            await s.submit(i, kit.update(0, s.weights, n))
        await s.wait_for_round(1, timeout=5)

    run(body())
    text = caplog.text
    assert "accepted update from alice/python" in text and "num_samples=30 reported=1/2" in text
    assert "accepted update from bob/browser" in text and "num_samples=10 reported=2/2" in text
    assert "round 0 closed" in text and "rule=mean" in text
    assert "alice/python n=30 share=0.7500" in text and "bob/browser n=10 share=0.2500" in text


def test_wait_for_round_times_out(kit: Any) -> None:
    """Prepare an idle session; waiting for round 1 fails with a clear `SessionError`."""

    async def body() -> None:
        with pytest.raises(SessionError, match="did not open"):
            await new_session(kit).wait_for_round(1, timeout=0.05)

    run(body())


def test_update_resent_after_a_reconnect_counts_once(kit: Any) -> None:
    """A participant reports, drops, rejoins under a new id and resends: refused as duplicate."""

    async def body() -> None:
        s = new_session(kit, min_participants=2)
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b")
        ida, _ = await s.join(a), await s.join(b)
        update = kit.update(0, kit.filled(s.weights, 2.0), 5)
        assert isinstance(await s.submit(ida, update), UpdateAck)
        await s.leave(ida)  # the connection dropped after the update arrived
        again = kit.FakeParticipant("a")
        reply = await s.submit(await s.join(again), update)
        assert isinstance(reply, ErrorMessage) and reply.code == "duplicate"
        assert s.reported == 1 and s.round == 0
        # someone else sending bit-identical weights is still welcome
        other = kit.FakeParticipant("c")
        assert isinstance(await s.submit(await s.join(other), update), UpdateAck)

    run(body())


def test_the_session_combines_through_its_aggregator_and_records_the_report(
    kit: Any, tmp_path: Path
) -> None:
    """The session calls only the Aggregator interface: a rule it has never heard of plugs in,
    sees deltas from the round's model and stable ids, and its report lands in the history."""
    seen: list[list[Update]] = []

    class LargestSample(Aggregator):
        rule = "largest_sample"

        def combine(
            self, global_weights: Weights, updates: Sequence[Update]
        ) -> tuple[Weights, list[ParticipantReport]]:
            seen.append(list(updates))
            best = max(updates, key=lambda u: u.num_samples)
            return best.delta, [
                ParticipantReport(u.participant, float(u is best), u is best, score=1.5)
                for u in updates
            ]

    async def body() -> None:
        task = kit.make_task()
        store = Store(tmp_path)
        g = init_weights(task.model, seed=0)
        store.put_task(task, g)
        s = FederatedSession(task, 0, g, save=store.save_round, aggregator=LargestSample())
        a, b = kit.FakeParticipant("a"), kit.FakeParticipant("b", "browser")
        ida, idb = await s.join(a), await s.join(b)
        await s.submit(ida, kit.update(0, kit.filled(g, 1.0), 3))
        await s.submit(idb, kit.update(0, kit.filled(g, 7.0), 9))
        await s.wait_for_round(1, timeout=5)
        for arr in s.weights.values():
            np.testing.assert_allclose(arr, 7.0)
        (updates,) = seen
        assert {u.participant for u in updates} == {ida, idb}
        for u in updates:  # deltas from the round's global model
            expected = kit.filled(g, 1.0 if u.participant == ida else 7.0) - g
            assert u.delta == expected
        (rnd,) = store.history(task.id)
        assert rnd.aggregation == {"rule": "largest_sample"}
        chosen = {p.name: (p.selected, p.share, p.score) for p in rnd.participants}
        assert chosen == {"a": (False, 0.0, 1.5), "b": (True, 1.0, 1.5)}
        store.close()

    run(body())


def test_by_default_no_participant_gets_more_than_half_a_round(kit: Any, tmp_path: Path) -> None:
    """A participant claiming 2^40 samples gets the default cap (half), not the whole model."""

    async def body() -> None:
        task = kit.make_task()
        store = Store(tmp_path)
        g = init_weights(task.model, seed=0)
        store.put_task(task, g)
        s = FederatedSession(task, 0, g, save=store.save_round)
        people = [kit.FakeParticipant(n) for n in ("h1", "h2", "liar")]
        ids = [await s.join(p) for p in people]
        await s.submit(ids[0], kit.update(0, kit.filled(g, 1.0), 100))
        await s.submit(ids[1], kit.update(0, kit.filled(g, 1.0), 300))
        await s.submit(ids[2], kit.update(0, kit.filled(g, 9.0), 2**40))
        await s.wait_for_round(1, timeout=5)
        for arr in s.weights.values():
            np.testing.assert_allclose(arr, 5.0, rtol=1e-6)  # half 1.0, half 9.0
        (rnd,) = store.history(task.id)
        assert rnd.aggregation == {"rule": "mean", "max_share": 0.5}
        shares = {p.name: (round(p.share, 6), p.clipped) for p in rnd.participants}
        assert shares == {"h1": (0.125, False), "h2": (0.375, False), "liar": (0.5, True)}
        store.close()

    run(body())


def test_a_round_keeps_no_update_but_in_its_collector(kit: Any) -> None:
    """With FedAvg each update is folded into the round's running sum when accepted: the session
    holds its digest, count and metrics, not its weights."""

    async def body() -> None:
        s = new_session(kit, min_participants=3)
        people = [kit.FakeParticipant(n) for n in "abc"]
        ids = [await s.join(p) for p in people]
        g = s.weights
        for i, cid in enumerate(ids[:2]):
            assert isinstance(
                await s.submit(cid, kit.update(0, kit.filled(g, float(i)))), UpdateAck
            )
        held = [a for a in s._updates.values()]
        assert all(not any(isinstance(v, Weights) for v in vars(a).values()) for a in held)
        assert s._collector.participants == {ids[0]: 10, ids[1]: 10}  # the kit claims 10
        await s.submit(ids[2], kit.update(0, kit.filled(g, 2.0)))
        await s.wait_for_round(1, timeout=5)
        for arr in s.weights.values():
            np.testing.assert_allclose(arr, 1.0)
        assert s._collector.participants == {}  # a new round, a new collector

    run(body())
