"""The decentralized round's decisions as pure functions (disco.server.peer_rounds)."""

from __future__ import annotations

import random

from disco.decentralized.topology import peer_graph
from disco.server import peer_rounds


def _round(neighbours: dict[str, tuple[str, ...]]) -> peer_rounds.OpenRound:
    return peer_rounds.OpenRound(
        number=1, neighbours=neighbours, all_to_all=False, digest=None, started=0.0
    )


def test_exclusion_takes_the_member_with_most_missing_channels_first() -> None:
    # a—b, a—c, b—c all open; d reported nothing and misses all three: only d goes
    everyone = ("a", "b", "c", "d")
    rnd = _round({p: tuple(q for q in everyone if q != p) for p in everyone})
    rnd.ready = {"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}}
    order = {p: i for i, p in enumerate(everyone)}
    assert peer_rounds.excluded(rnd, set(everyone), order) == ["d"]
    # a channel a—b that only a reports open is missing for both; the later joiner goes
    rnd.ready = {"a": {"b", "c", "d"}, "b": {"c", "d"}, "c": {"a", "b", "d"}, "d": {"a", "b", "c"}}
    assert peer_rounds.excluded(rnd, set(everyone), order) == ["b"]


def test_exclusion_among_ten_thousand_sparse_peers_leaves_the_rest_connected() -> None:
    """A large sparse round where a tenth of the peers opened nothing and some channels failed:
    every silent peer is left out, the peers left are fully connected, and most stay."""
    ids = [f"p{i:05d}" for i in range(10_000)]
    graph = peer_graph(ids, b"seed", degree=4)
    rng = random.Random(7)
    silent = set(rng.sample(ids, 1_000))
    rnd = _round(graph.neighbours)
    for p in ids:
        if p not in silent:
            rnd.ready[p] = {n for n in graph.neighbours[p] if rng.random() < 0.97}
    order = {p: i for i, p in enumerate(ids)}

    out = peer_rounds.excluded(rnd, set(ids), order)

    assert silent <= set(out) and len(out) == len(set(out))
    rest = set(ids) - set(out)
    assert all(peer_rounds.missing(rnd, p, rest) == set() for p in rest)
    assert len(rest) > 7_000  # exclusions are one at a time, not whole neighbourhoods
