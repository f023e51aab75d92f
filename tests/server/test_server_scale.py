"""Messages per round grow linearly with the participants (issue: a round of n once cost n²).

A federated session with n fake participants (in process, no network): all join, all send an
update, the round closes. Each participant receives its welcome, its acknowledgement, the result
and a few coalesced statuses (`disco.server.status`) — a number that does not grow with n.
"""

from __future__ import annotations

import asyncio
from typing import Any

from disco.models import init_weights
from disco.protocol import RoundResult, Status, UpdateAck, Welcome
from disco.server.session import FederatedSession


def messages_in_a_round(kit: Any, n: int) -> tuple[int, int]:
    """(messages every participant received in all, the statuses among them) for one round."""

    async def body() -> tuple[int, int]:
        task = kit.make_task(min_participants=n, deadline=60)
        session = FederatedSession(task, 0, init_weights(task.model, seed=0))
        people = [kit.FakeParticipant(f"p{i}") for i in range(n)]
        connections = [await session.join(p) for p in people]
        for i, c in enumerate(connections):
            update = kit.update(0, kit.filled(session.weights, float(i % 7)))
            assert isinstance(await session.submit(c, update), UpdateAck)
        await session.wait_for_round(1, timeout=30)
        await session.aclose()
        for p in people:
            assert len(p.of(Welcome)) == len(p.of(RoundResult)) == 1
        return sum(len(p.inbox) for p in people), sum(len(p.of(Status)) for p in people)

    return asyncio.run(body())


def test_messages_per_round_grow_linearly_with_participants(kit: Any) -> None:
    sizes = (50, 100, 200, 400)
    counts = {n: messages_in_a_round(kit, n) for n in sizes}
    per_participant = {n: total / n for n, (total, _) in counts.items()}
    # welcome, ack and result, and statuses coalesced in time: a handful each, whatever n
    assert all(3 < m <= 12 for m in per_participant.values()), per_participant
    assert per_participant[400] <= 1.5 * per_participant[50], per_participant
    # what a status per change would send: one to everyone at each join and each update
    assert counts[400][1] < 400 * 2 * 400 / 50, counts
