"""The decisions of a decentralized round, as pure functions of what its peers reported.

`DecentralizedSession` (`disco.server.decentralized`) keeps the open round's state (`OpenRound`),
runs its deadlines and sends the messages; what it decides is here (docs/protocol.md §18.5):

* who of the round's members is still live (`live`), and whether a phase is done: every live
  member has every live neighbour's channel open (`connected`), holds every live neighbour's
  update (`exchanged`), has reported its digest (`combined`);
* whom the round goes on without when channels did not open by ``connect_s`` (`excluded`): one
  at a time, the member with the most missing channels, until the rest are fully connected;
* the combine set (`combine_set`): the updates that more than half of the live members expected
  to hold them do hold, so no single peer can shrink the round by claiming it received nothing;
* what each member is told when the round starts (`round_plan`), and which peer a member that
  lacks the round's model fetches it from (`model_source`);
* the round's outcome (`outcome`): the most reported digest, the agreed one, and who must resync
  from whom; and the round's history row (`round_record`).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from disco.decentralized.topology import Round, mixing_weights
from disco.protocol import PeerInfo, RoundPlan
from disco.server.participants import Participant
from disco.server.store import RoundRecord

__all__ = [
    "OpenRound",
    "Outcome",
    "Phase",
    "combine_set",
    "combined",
    "connected",
    "exchanged",
    "excluded",
    "holds_model",
    "live",
    "missing",
    "model_source",
    "outcome",
    "round_plan",
    "round_record",
]

Phase = Literal[
    "waiting", "connecting", "sharing", "exchanging", "unmasking", "combining", "stopped"
]
"""A round's phases; "sharing" and "unmasking" are secure rounds' (docs/protocol.md §19.1)."""


@dataclass
class OpenRound:
    """The round in progress, as the server tracks it (members by identity)."""

    number: int
    neighbours: dict[str, tuple[str, ...]]
    all_to_all: bool
    digest: str | None
    started: float
    phase: Phase = "connecting"
    ready: dict[str, set[str]] = field(default_factory=dict)
    exchange: set[str] = field(default_factory=set)
    received: dict[str, set[str]] = field(default_factory=dict)
    contributors: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # members that left (or came back anew) since
    digests: dict[str, str] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


# -- the barriers ------------------------------------------------------------------------------
def live(rnd: OpenRound, present: Container[str], among: set[str] | None = None) -> set[str]:
    """The members (of `among`, default all) still in the session (`present`) and the round."""
    pool = set(rnd.neighbours) if among is None else among
    return {p for p in pool if p in present and p not in rnd.gone}


def missing(rnd: OpenRound, member: str, live: set[str]) -> set[str]:
    """Live neighbours `member` has no channel with (both must report it open)."""
    mine = rnd.ready.get(member, set())
    return {
        n
        for n in rnd.neighbours[member]
        if n in live and not (n in mine and member in rnd.ready.get(n, set()))
    }


def connected(rnd: OpenRound, present: Container[str]) -> bool:
    """Whether every live member has a channel open with every live neighbour."""
    members = live(rnd, present)
    return all(missing(rnd, m, members) == set() for m in members)


def exchanged(rnd: OpenRound, present: Container[str]) -> bool:
    """Whether every live member that passed the barrier holds every such neighbour's update."""
    members = live(rnd, present, rnd.exchange)
    return all(
        {n for n in rnd.neighbours[m] if n in members} <= rnd.received.get(m, set())
        for m in members
    )


def combined(rnd: OpenRound, present: Container[str]) -> bool:
    """Whether every live member that passed the barrier has reported its digest."""
    return live(rnd, present, rnd.exchange) <= set(rnd.digests)


def excluded(rnd: OpenRound, present: Container[str], order: Mapping[str, int]) -> list[str]:
    """The members to leave out at ``connect_s``, one at a time, so that the rest are fully
    connected: the one with the most missing channels first (then one that reported nothing,
    then the latest to join, by `order`).

    The gaps are counted once and updated as members leave, and the worst is taken from a heap
    (stale entries skipped): about (members + exclusions × degree) × log members, not a pass
    over every member for each exclusion."""
    members = live(rnd, present)
    gaps = {m: missing(rnd, m, members) for m in members}

    def key(m: str) -> tuple[int, bool, int, str]:  # smallest first: the worst member
        return (-len(gaps[m]), m in rnd.ready, -order[m], m)

    heap = [key(m) for m in members if gaps[m]]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        entry = heapq.heappop(heap)
        worst = entry[3]
        if worst not in gaps or not gaps[worst] or entry != key(worst):
            continue  # excluded already, or its gaps changed since this entry
        out.append(worst)
        for n in gaps.pop(worst):
            if n in gaps and worst in gaps[n]:
                gaps[n].discard(worst)
                if gaps[n]:
                    heapq.heappush(heap, key(n))
    return out


# -- what is combined --------------------------------------------------------------------------
def held_widely(rnd: OpenRound, sender: str, live: set[str]) -> bool:
    """Whether more than half of the live members that should hold `sender`'s update (its
    neighbours, and itself) do: one peer that claims to hold nothing cannot shrink the round
    to its own update, and an update that reached only a few before its sender died is left
    out. A live member that lacks an update combined by the others ends with another digest
    and is told to resync."""
    expected = {m for m in live if m == sender or sender in rnd.neighbours[m]}
    held = {m for m in expected if m == sender or sender in rnd.received.get(m, set())}
    if sender in live and len(expected) <= 2:  # of two, neither can drop the other's update
        return True
    return 2 * len(held) > len(expected)


def combine_set(rnd: OpenRound, live: set[str]) -> list[str]:
    """The updates every member combines (sorted senders): those `held_widely`."""
    return sorted(s for s in rnd.exchange if held_widely(rnd, s, live))


# -- the round's model -------------------------------------------------------------------------
def holds_model(holds: tuple[int, str] | None, round: int, agreed: str | None) -> bool:
    """Whether a peer that `holds` (round, digest) holds the model of `round`: the `agreed`
    one, or any model of it when there is none (after a sparse round)."""
    if holds is None or holds[0] != round:
        return False
    return agreed is None or holds[1] == agreed


def round_plan(
    rnd: OpenRound,
    graph: Round,
    member: str,
    participant: Callable[[str], Participant],
    *,
    model_from: str | None,
    connect_s: float,
    exchange_s: float,
) -> RoundPlan:
    """`member`'s plan of round `rnd` drawn as `graph`: its neighbours (named as `participant`
    of each says) and mixing weights, the digest of the round's model and where to fetch it."""
    weights = mixing_weights(graph, member)
    return RoundPlan(
        round=rnd.number,
        peers=[
            PeerInfo(
                id=n,
                name=participant(n).name,
                kind=_kind(participant(n).kind),
                weight=weights[n],
            )
            for n in graph.neighbours[member]
        ],
        members=len(graph.neighbours),
        topology="all_to_all" if graph.all_to_all else "sparse",
        self_weight=weights[member],
        digest=rnd.digest,
        model_from=model_from,
        connect_s=connect_s,
        exchange_s=exchange_s,
    )


def _kind(kind: str) -> Literal["python", "browser"]:
    return "browser" if kind == "browser" else "python"


def model_source(holders: Sequence[str], neighbours: Sequence[str], order: int, round: int) -> str:
    """The holder a member that lacks the round's model fetches it from: one of its neighbours
    if any holds it, spread over the holders by the member's join `order` and the round."""
    pool = [h for h in holders if h in neighbours] or list(holders)
    return pool[(order + round) % len(pool)]


@dataclass(frozen=True)
class Outcome:
    """How a closed round ends: its digests counted, the agreed model, who resyncs."""

    top: str | None  # the most reported digest (of a tie, the smallest); None: none reported
    agreeing: int  # members that reported `top`
    agreed: str | None  # the round's model as the peers agreed it; None: no agreement
    differ: list[str]  # members still here whose digest is not the agreed one
    resyncs: list[tuple[str, str]]  # (member, peer to fetch the agreed model from)


def outcome(rnd: OpenRound, present: Container[str]) -> Outcome:
    """The digests of `rnd` counted; `present`: the identities still in the session."""
    counts = Counter(rnd.digests.values())  # every member that reported, gone or not
    top = min(counts, key=lambda d: (-counts[d], d)) if counts else None
    # a strict majority, or no agreed model: a tie (one hostile peer of two) resyncs no one;
    # but a round that began from different models (after a sparse one, or one without a
    # majority) takes the most reported digest, so honest peers come together again
    majority = top is not None and 2 * counts[top] > len(rnd.digests)
    agreed = top if majority or (rnd.digest is None and len(rnd.digests) > 2) else None
    reported = {m: d for m, d in rnd.digests.items() if m in present}  # still here
    if agreed is not None and agreed not in reported.values():
        # those who hold it have left: go on with the model most of those still here hold
        here = Counter(reported.values())
        agreed = min(here, key=lambda d: (-here[d], d)) if here else None
    differ = sorted(m for m, d in reported.items() if d != agreed)
    resyncs: list[tuple[str, str]] = []
    if rnd.all_to_all and agreed is not None:
        holders = sorted(m for m, d in reported.items() if d == agreed)
        resyncs = [(m, holders[i % len(holders)]) for i, m in enumerate(differ)]
    agreeing = counts[top] if top is not None else 0
    return Outcome(top, agreeing, agreed, differ, resyncs)


def round_record(
    rnd: OpenRound, result: Outcome, rule: Mapping[str, Any], duration_s: float
) -> RoundRecord:
    """The history row of a closed round: no model, no metrics; the task's `rule` settings with
    the round's topology and digest counts."""
    return RoundRecord(
        round=rnd.number,
        contributors=len(rnd.contributors),
        num_samples=0,
        digest=result.top or "",
        duration_s=duration_s,
        aggregation={
            **rule,
            "topology": "all_to_all" if rnd.all_to_all else "sparse",
            "peers": len(rnd.exchange),
            "digests": len(rnd.digests),
            "agreeing": result.agreeing,
        },
    )
