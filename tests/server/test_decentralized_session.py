"""The server side of a decentralized session, driven message by message (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from disco.models import init_weights
from disco.protocol import (
    Combine,
    DigestReport,
    ErrorMessage,
    Exchange,
    Ready,
    Received,
    Resync,
    RoundPlan,
    Signal,
    Welcome,
)
from disco.server.decentralized import DecentralizedSession
from disco.server.store import RoundRecord
from disco.task import Task

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _task(kit: Any, min_participants: int = 3, deadline: float = 5.0) -> Task:
    task: Task = kit.make_task("p2p", min_participants=min_participants)
    return task.with_training(scheme="decentralized", round_deadline_s=deadline)


class Peers:
    """A session and its fake peers, by name."""

    def __init__(self, kit: Any, n: int, **options: Any) -> None:
        task = _task(kit, options.pop("min_participants", n), deadline=options.pop("deadline", 5.0))
        self.initial = init_weights(task.model, seed=0)
        self.records: list[RoundRecord] = []
        self.session = DecentralizedSession(
            task, 0, self.initial, record=lambda _, r: self.records.append(r), **options
        )
        self.kit = kit
        self.fakes: dict[str, Any] = {}
        self.conn: dict[str, str] = {}
        self.n = n

    async def join(self, name: str) -> str:
        fake = self.kit.FakeParticipant(name)
        self.conn[name] = await self.session.join(fake, key=f"key-of-{name}-0123456789")
        self.fakes[name] = fake
        return str(fake.of(Welcome)[0].client_id)

    def id(self, name: str) -> str:
        return str(self.fakes[name].of(Welcome)[0].client_id)

    def last(self, name: str, cls: type) -> Any:
        found = self.fakes[name].of(cls)
        return found[-1] if found else None

    async def send(self, name: str, message: Any) -> None:
        await self.session.receive(self.conn[name], message)

    async def all_ready(self, r: int, names: list[str]) -> None:
        for n in names:
            others = [self.id(m) for m in names if m != n]
            await self.send(n, Ready(round=r, connected=others))

    async def all_received(self, r: int, names: list[str]) -> None:
        for n in names:
            others = [self.id(m) for m in names if m != n]
            await self.send(n, Received(round=r, peers=others))


def test_a_round_goes_plan_barrier_exchange_combine_digests(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names[:2]:
            await s.join(n)
        assert s.last("x", RoundPlan) is None  # not enough peers yet
        await s.join("z")
        plan = s.last("x", RoundPlan)
        assert plan.round == 0 and plan.topology == "all_to_all" and plan.members == 3
        assert {p.id for p in plan.peers} == {s.id("y"), s.id("z")}
        assert plan.digest == s.initial.digest() and plan.model_from is None
        assert s.fakes["x"].of(Welcome)[0].weights is None  # no model in any frame

        await s.all_ready(0, names[:2])
        assert s.last("x", Exchange) is None  # z has not reported its channels
        await s.all_ready(0, names)
        assert s.last("x", Exchange).peers == sorted(s.id(n) for n in names)

        await s.all_received(0, names)
        assert s.last("z", Combine).peers == sorted(s.id(n) for n in names)
        for n in names:
            await s.send(n, DigestReport(round=0, digest=A))
        assert s.session.round == 1 and s.session.agreed_digest == A
        assert s.records[0].contributors == 3 and s.records[0].digest == A
        second = s.last("y", RoundPlan)
        assert second.round == 1 and second.digest == A and second.model_from is None

    asyncio.run(body())


def test_a_peer_that_leaves_mid_exchange_does_not_stall_the_round(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        await s.all_ready(0, names)
        x, y, z = (s.id(n) for n in names)
        # z's update reached x only, then z is gone
        await s.send("x", Received(round=0, peers=[y, z]))
        await s.send("y", Received(round=0, peers=[x]))
        await s.session.leave(s.conn["z"])
        combine = s.last("x", Combine)
        assert combine.peers == sorted([x, y])  # z's update did not reach every live peer
        assert s.last("z", Combine) is None

    asyncio.run(body())


def test_the_barrier_excludes_the_peer_that_cannot_connect(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3, connect_s=0.2)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        x, y = s.id("x"), s.id("y")
        await s.send("x", Ready(round=0, connected=[y]))
        await s.send("y", Ready(round=0, connected=[x]))
        async with asyncio.timeout(5):
            while s.last("x", Exchange) is None:
                await asyncio.sleep(0.02)
        assert s.last("x", Exchange).peers == sorted([x, y])
        assert s.last("z", Exchange).peers == []  # told it sits this round out

    asyncio.run(body())


def test_a_differing_digest_is_told_to_resync_and_the_next_plan_repairs_it(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        await s.all_ready(0, names)
        await s.all_received(0, names)
        await s.send("x", DigestReport(round=0, digest=A))
        await s.send("y", DigestReport(round=0, digest=A))
        await s.send("z", DigestReport(round=0, digest=B))
        resync = s.last("z", Resync)
        assert resync.round == 1 and resync.digest == A and resync.peer in (s.id("x"), s.id("y"))
        assert s.last("x", Resync) is None
        plan = s.last("z", RoundPlan)  # it still holds another model: fetch the agreed one
        assert plan.round == 1 and plan.model_from in (s.id("x"), s.id("y"))
        assert s.last("x", RoundPlan).model_from is None

    asyncio.run(body())


def test_a_late_joiner_is_planned_with_a_peer_that_holds_the_model(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 2, min_participants=2)
        for n in ("x", "y"):
            await s.join(n)
        await s.all_ready(0, ["x", "y"])
        await s.join("late")  # joins during round 0: waits for round 1
        assert s.last("late", RoundPlan) is None
        await s.all_received(0, ["x", "y"])
        for n in ("x", "y"):
            await s.send(n, DigestReport(round=0, digest=C))
        plan = s.last("late", RoundPlan)
        assert plan.round == 1 and plan.members == 3 and plan.digest == C
        assert plan.model_from in (s.id("x"), s.id("y"))

    asyncio.run(body())


def test_when_every_holder_leaves_the_session_starts_over_from_the_initial_model(
    kit: Any,
) -> None:
    async def body() -> None:
        s = Peers(kit, 2, min_participants=2)
        for n in ("x", "y"):
            await s.join(n)
        await s.all_ready(0, ["x", "y"])
        await s.all_received(0, ["x", "y"])
        for n in ("x", "y"):
            await s.send(n, DigestReport(round=0, digest=C))
        for n in ("x", "y"):
            await s.session.leave(s.conn[n])
        for n in ("u", "v"):
            await s.join(n)
        plan = s.last("u", RoundPlan)
        assert plan.round == 1 and plan.digest == s.initial.digest() and plan.model_from is None

    asyncio.run(body())


def test_signals_are_relayed_between_peers_only(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        for n in ("x", "y"):
            await s.join(n)
        await s.send("x", Signal(peer=s.id("y"), kind="offer", data="sdp"))
        relayed = s.last("y", Signal)
        assert relayed == Signal(peer=s.id("x"), kind="offer", data="sdp")  # from x
        await s.send("x", Signal(peer="p-nobody", kind="answer", data="sdp"))
        assert s.last("x", ErrorMessage).code == "unknown_peer"
        await s.send("x", Signal(peer=s.id("x"), kind="answer", data="sdp"))
        assert s.last("x", ErrorMessage).code == "unknown_peer"  # not to itself

    asyncio.run(body())


def test_a_flood_of_signals_is_cut_off(kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("disco.server.decentralized.SIGNALS_PER_10_S", 5)

    async def body() -> None:
        s = Peers(kit, 3)
        for n in ("x", "y"):
            await s.join(n)
        for _ in range(8):
            await s.send("x", Signal(peer=s.id("y"), kind="candidate", data="c"))
        assert len(s.fakes["y"].of(Signal)) == 5
        assert "slow down" in s.last("x", ErrorMessage).message

    asyncio.run(body())


def test_one_peer_claiming_to_hold_nothing_cannot_shrink_the_round(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3, deadline=0.2)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        await s.all_ready(0, names)
        x, y, z = (s.id(n) for n in names)
        await s.send("x", Received(round=0, peers=[]))  # x says nothing reached it
        await s.send("y", Received(round=0, peers=[x, z]))
        await s.send("z", Received(round=0, peers=[x, y]))
        async with asyncio.timeout(5):  # the exchange deadline passes
            while s.last("y", Combine) is None:
                await asyncio.sleep(0.02)
        assert s.last("y", Combine).peers == sorted([x, y, z])  # not just [x]
        for n, digest in (("x", B), ("y", A), ("z", A)):
            await s.send(n, DigestReport(round=0, digest=digest))
        assert s.last("x", Resync).digest == A  # x lacked them: it fetches the agreed model

    asyncio.run(body())


def test_a_peer_back_on_a_new_connection_is_not_waited_for_in_its_old_round(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        await s.all_ready(0, ["x", "y"])
        await s.join("z")  # the same key again: a new connection of z, without the plan
        assert s.last("x", Exchange).peers == sorted([s.id("x"), s.id("y")])

    asyncio.run(body())


def test_a_tie_of_two_digests_resyncs_no_one(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 2, min_participants=2, deadline=0.2)
        for n in ("x", "y"):
            await s.join(n)
        await s.all_ready(0, ["x", "y"])
        await s.send("x", Received(round=0, peers=[]))  # x claims y's update never came
        await s.send("y", Received(round=0, peers=[s.id("x")]))
        async with asyncio.timeout(5):
            while s.last("y", Combine) is None:
                await asyncio.sleep(0.02)
        assert s.last("y", Combine).peers == sorted([s.id("x"), s.id("y")])  # y's update stays
        await s.send("x", DigestReport(round=0, digest="0" * 64))  # the smallest digest
        await s.send("y", DigestReport(round=0, digest=A))
        assert s.last("y", Resync) is None and s.last("x", Resync) is None
        assert s.session.agreed_digest is None  # no majority: each keeps its own model
        assert s.last("y", RoundPlan).model_from is None

    asyncio.run(body())


def test_when_the_majority_left_the_session_goes_on_with_the_model_still_here(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        await s.all_ready(0, names)
        await s.all_received(0, names)
        for n in ("x", "y"):
            await s.send(n, DigestReport(round=0, digest=A))
            await s.session.leave(s.conn[n])  # done with their rounds
        await s.send("z", DigestReport(round=0, digest=B))
        assert s.session.round == 1 and s.session.agreed_digest == B  # the model still here
        assert s.last("z", Resync) is None  # (no one left to fetch A from)
        assert s.records[-1].digest == A and s.records[-1].aggregation["agreeing"] == 2

    asyncio.run(body())


def test_a_round_that_began_from_different_models_settles_on_one(kit: Any) -> None:
    async def body() -> None:
        s = Peers(kit, 3)
        names = ["x", "y", "z"]
        for n in names:
            await s.join(n)
        for r in (0, 1):
            await s.all_ready(r, names)
            await s.all_received(r, names)
            for n, digest in zip(names, (C, A, B), strict=True):
                await s.send(n, DigestReport(round=r, digest=digest))
            if r == 0:  # all different from one model: no majority, no one resynced
                assert s.session.agreed_digest is None and s.last("x", Resync) is None
                assert s.last("x", RoundPlan).digest is None
        assert s.session.agreed_digest == A  # from different models: the smallest, to agree
        assert s.last("x", Resync).digest == A and s.last("x", Resync).peer == s.id("y")
        assert s.last("y", Resync) is None
        assert s.last("z", RoundPlan).digest == A

    asyncio.run(body())
