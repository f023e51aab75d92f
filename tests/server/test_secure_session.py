"""A federated session with secure aggregation (disco.server.secure): the four phases with fake
participants that run the real participant side (disco.secure.participant)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import numpy as np
import pytest

from disco.models import init_weights
from disco.protocol import (
    ErrorMessage,
    RoundResult,
    SecureAbort,
    SecureEnvelope,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureSetup,
    SecureShare,
    SecureShares,
    SecureUnmask,
    Welcome,
)
from disco.secure import quantize
from disco.secure.participant import SecureParticipant
from disco.secure.roster import Member, RoundSetup
from disco.server import secure as secure_module
from disco.server.secure import SecureSession
from disco.weights import Weights

pytestmark = pytest.mark.timeout(30)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def secure_task(kit: Any, min_participants: int = 3, **settings: Any) -> Any:
    task = kit.make_task(min_participants=min_participants, deadline=5.0)
    data = task.model_dump(mode="json")
    data["training"]["secure_aggregation"] = settings
    return type(task).model_validate(data)


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


class Member_:
    """A fake connection that runs the participant side of each phase when asked to."""

    def __init__(self, kit: Any, session: SecureSession, name: str) -> None:
        self.peer = kit.FakeParticipant(name)
        self.session = session
        self.me: SecureParticipant | None = None
        self.setup: RoundSetup | None = None
        self.connection = ""

    async def join(self) -> None:
        self.connection = await self.session.join(self.peer, key=f"key-{self.peer.name}")
        self.id = self.peer.of(Welcome)[-1].client_id

    def last(self, cls: type) -> Any:
        found = self.peer.of(cls)
        return found[-1] if found else None

    async def keys(self, r: int) -> None:
        self.me = SecureParticipant(self.session.task.id, r, self.id)
        c, s = self.me.keys()
        await self.session.receive(self.connection, SecureKeys(round=r, c_public=c, s_public=s))

    async def shares(self) -> None:
        m = self.last(SecureSetup)
        self.setup = RoundSetup(
            self.session.task.id,
            m.round,
            tuple(Member(x.id, x.position, x.c_public, x.s_public) for x in m.members),
            m.threshold,
            m.clip,
            m.weight_cap,
            m.bits,
            m.length,
        )
        assert self.me is not None
        out = self.me.share(self.setup)
        envelopes = [SecureEnvelope(peer=p, data=d) for p, d in out.envelopes.items()]
        message = SecureShares(round=m.round, commitment=out.commitment, envelopes=envelopes)
        await self.session.receive(self.connection, message)

    async def masked(self, change: np.ndarray, weight: int) -> np.ndarray:
        inbox = self.last(SecureInbox)
        assert self.me is not None and self.setup is not None
        self.me.receive({e.peer: e.data for e in inbox.envelopes})
        capped = min(weight, self.setup.weight_cap)  # as the client does
        words = quantize(change, capped, self.setup.clip, self.setup.bits)
        masked = self.me.mask(words, inbox.senders)
        message = SecureInput(round=inbox.round, words=masked.astype("<u4").tobytes())
        await self.session.receive(self.connection, message)
        return masked

    async def reveal(self) -> None:
        m = self.last(SecureUnmask)
        assert self.me is not None
        shares = self.me.reveal(m.survivors, m.dropped)
        message = SecureReveal(
            round=m.round, shares=[SecureShare(of=o, kind=k, share=s) for o, k, s in shares]
        )
        await self.session.receive(self.connection, message)


async def to_inboxes(members: list[Member_]) -> None:
    """Every member joins, sends its keys and its shares, and has its inbox (round 0)."""
    for m in members:
        await m.join()
    for m in members:
        await m.keys(0)
    await until(lambda: all(m.last(SecureSetup) for m in members), "setup to everyone")
    for m in members:
        await m.shares()
    await until(lambda: all(m.last(SecureInbox) for m in members), "inboxes")


def _flat(w: Weights) -> np.ndarray:
    return np.concatenate([a.reshape(-1) for a in w.values()])


def test_three_members_the_new_model_is_the_weighted_mean_of_their_changes(kit: Any) -> None:
    async def body() -> None:
        task = secure_task(kit, clip=2.0, weight_cap=100)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(3)]
        await to_inboxes(members)
        assert members[0].peer.of(Welcome)[0].capabilities == ["secure_aggregation"]
        rng = np.random.default_rng(1)
        changes = [rng.normal(0, 0.5, g.size).astype(np.float32) for _ in members]
        weights = [3, 150, 10]  # 150 counts as the cap, 100
        sent = [await m.masked(c, w) for m, c, w in zip(members, changes, weights, strict=True)]
        for masked, change in zip(sent, changes, strict=True):
            assert not np.array_equal(masked[1:], quantize(change, 1, 2.0, 0)[1:])
        await until(lambda: all(m.last(SecureUnmask) for m in members), "unmask")
        for m in members:
            await m.reveal()
        await s.wait_for_round(1, timeout=10)

        capped = np.array([3, 100, 10], dtype=np.float64)
        exact = sum(w * np.clip(c, -2, 2) for w, c in zip(capped, changes, strict=True))
        expected = _flat(g).astype(np.float64) + exact / capped.sum()
        bits = members[0].setup.bits  # type: ignore[union-attr]
        result = members[0].last(RoundResult)
        assert result.round == 1 and result.contributors == 3 and result.num_samples == 113
        got = _flat(result.weights).astype(np.float64)
        assert np.max(np.abs(got - expected)) <= 2.0**-bits + 1e-6  # quantisation, float32
        assert s.weights == result.weights

    run(body())


def test_a_member_that_leaves_before_its_input_is_unmasked_without_it(kit: Any) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(4)]
        await to_inboxes(members)
        await s.leave(members[3].connection)  # shared, then left: its key will be rebuilt
        changes = [np.full(g.size, 0.25 * (i + 1), np.float32) for i in range(3)]
        for m, c in zip(members[:3], changes, strict=True):
            await m.masked(c, 1)
        await until(lambda: all(m.last(SecureUnmask) for m in members[:3]), "unmask")
        assert members[0].last(SecureUnmask).dropped == [members[3].id]
        for m in members[:3]:
            await m.reveal()
        await s.wait_for_round(1, timeout=10)
        got = _flat(members[0].last(RoundResult).weights) - _flat(g)
        np.testing.assert_allclose(got, 0.5, atol=1e-4)  # mean of 0.25, 0.5, 0.75

    run(body())


def test_too_few_inputs_abort_and_the_next_round_starts_from_the_same_model(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(3)]
        await to_inboxes(members)
        await members[0].masked(np.zeros(g.size, np.float32), 1)
        await s.leave(members[1].connection)
        await s.leave(members[2].connection)  # 1 input of 3, threshold 2: abort
        await s.wait_for_round(1, timeout=10)
        abort = members[0].last(SecureAbort)
        assert abort is not None and abort.round == 0 and "masked inputs" in abort.reason
        assert members[0].last(RoundResult) is None  # the abort opens round 1
        assert s.round == 1 and s.weights == g
        assert members[0].last(SecureUnmask) is None  # nothing was asked to be revealed

    run(body())


def test_late_keys_wait_for_the_next_round_and_plain_updates_are_refused(kit: Any) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(3)]
        for m in members:
            await m.join()
        for m in members:
            await m.keys(0)
        await until(lambda: all(m.last(SecureSetup) for m in members), "setup")
        late = Member_(kit, s, "late")
        await late.join()
        await late.keys(0)
        refusal = late.last(ErrorMessage)
        assert refusal.code == "stale" and "next round" in refusal.message
        await s.submit(late.connection, kit.update(0, g))
        assert late.peer.of(ErrorMessage)[-1].code == "unexpected" and s.reported == 0
        assert s.round == 0

    run(body())


def test_a_silent_member_at_the_keys_phase_is_left_out_after_the_deadline(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secure_module, "KEYS_S", 0.2)

    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        s = SecureSession(task, 0, init_weights(task.model, seed=0))
        members = [Member_(kit, s, f"m{i}") for i in range(4)]
        for m in members:
            await m.join()
        for m in members[:3]:
            await m.keys(0)
        await until(lambda: members[0].last(SecureSetup) is not None, "setup after KEYS_S")
        assert [x.id for x in members[0].last(SecureSetup).members] == sorted(
            m.id for m in members[:3]
        )
        assert members[3].last(SecureSetup) is None

    run(body())


def test_late_input_is_stale_and_keys_are_replaced_and_only_those_present_count(
    kit: Any,
) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(5)]
        for m in members:
            await m.join()
        await members[3].keys(0)
        await s.leave(members[3].connection)  # sent keys, left: not in the roster
        await members[0].keys(0)
        await members[0].keys(0)  # reconnected before the roster: its new keys replace the old
        for m in members[1:3] + members[4:]:
            await m.keys(0)
        await until(lambda: members[0].last(SecureSetup) is not None, "setup")
        roster = members[0].last(SecureSetup).members
        assert sorted(x.id for x in roster) == sorted(m.id for m in members if m is not members[3])
        assert members[0].me is not None
        assert (
            roster[[x.id for x in roster].index(members[0].id)].c_public == members[0].me.keys()[0]
        )
        live = [members[0], members[1], members[2], members[4]]
        for m in live:
            await m.shares()
        await until(lambda: all(m.last(SecureInbox) for m in live), "inboxes")
        for m in live[:3]:
            await m.masked(np.zeros(g.size, np.float32), 1)
        # m4 trains slowly: at the deadline (5 s) the unmasking starts without its input
        await until(lambda: members[0].last(SecureUnmask) is not None, "unmask at the deadline")
        late = members[4]
        words = np.zeros(late.setup.length, np.uint32)  # type: ignore[union-attr]
        await s.receive(late.connection, SecureInput(round=0, words=words.tobytes()))
        refusal = late.last(ErrorMessage)
        assert refusal.code == "stale" and "goes on without you" in refusal.message
        assert s.reported == 3 and members[0].last(SecureUnmask).dropped == [late.id]

    run(body())


def test_a_weight_no_participant_may_send_aborts_the_round(kit: Any) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3, weight_cap=10)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(3)]
        await to_inboxes(members)
        for m in members[:2]:
            await m.masked(np.full(g.size, 0.1, np.float32), 5)
        members[2].setup = RoundSetup(  # a participant that ignores the weight cap
            **{**members[2].setup.__dict__, "weight_cap": 30}  # type: ignore[union-attr]
        )
        await members[2].masked(np.full(g.size, 0.1, np.float32), 30)  # Σw 40 > 3 × 10
        await until(lambda: all(m.last(SecureUnmask) for m in members), "unmask")
        for m in members:
            await m.reveal()
        await s.wait_for_round(1, timeout=10)
        abort = members[0].last(SecureAbort)
        assert abort is not None and "weights add up to" in abort.reason
        assert s.weights == g

    run(body())


def test_a_member_that_reconnects_is_sent_again_what_it_still_has_to_answer(kit: Any) -> None:
    async def body() -> None:
        task = secure_task(kit, min_participants=3)
        g = init_weights(task.model, seed=0)
        s = SecureSession(task, 0, g)
        members = [Member_(kit, s, f"m{i}") for i in range(3)]
        for m in members:
            await m.join()
        for m in members:
            await m.keys(0)
        await until(lambda: all(m.last(SecureSetup) for m in members), "setup")
        blip = members[2]
        await s.leave(blip.connection)  # before sharing: the setup comes again on rejoining
        blip.peer.inbox.clear()
        blip.connection = await s.join(blip.peer, key=f"key-{blip.peer.name}")
        assert blip.last(SecureSetup) is not None
        for m in members:
            await m.shares()
        await until(lambda: all(m.last(SecureInbox) for m in members), "inboxes")
        await s.leave(blip.connection)  # before its input: its inbox comes again
        blip.peer.inbox.clear()
        blip.connection = await s.join(blip.peer, key=f"key-{blip.peer.name}")
        assert blip.last(SecureInbox) is not None
        for m in members:
            await m.masked(np.full(g.size, 0.25, np.float32), 1)
        await until(lambda: all(m.last(SecureUnmask) for m in members), "unmask")
        for m in members:
            await m.reveal()
        await s.wait_for_round(1, timeout=10)
        got = _flat(members[0].last(RoundResult).weights) - _flat(g)
        np.testing.assert_allclose(got, 0.25, atol=1e-4)

    run(body())
