"""Decentralized topology: all to all for small sessions, redrawn k-regular graphs beyond, and
Metropolis–Hastings mixing that keeps the average and brings the models together."""

from __future__ import annotations

import numpy as np
import pytest

from disco.decentralized import Round, mixing_weights, peer_graph
from disco.errors import ConfigError

PEERS = [f"peer-{i:02d}" for i in range(20)]


def connected(graph: Round) -> bool:
    start = next(iter(graph.neighbours))
    seen, todo = {start}, [start]
    while todo:
        for q in graph.neighbours[todo.pop()]:
            if q not in seen:
                seen.add(q)
                todo.append(q)
    return len(seen) == len(graph.neighbours)


def test_up_to_the_limit_everyone_exchanges_with_everyone() -> None:
    graph = peer_graph(PEERS[:16], b"round-1")

    assert graph.all_to_all
    assert all(len(n) == 15 and p not in n for p, n in graph.neighbours.items())
    assert mixing_weights(graph, "peer-03") == {p: 1 / 16 for p in PEERS[:16]}


@pytest.mark.parametrize(("n", "k"), [(20, 4), (20, 3), (17, 4), (40, 6), (33, 5)])
def test_beyond_it_a_connected_k_regular_graph(n: int, k: int) -> None:
    graph = peer_graph(PEERS[:n] if n <= 20 else [f"p{i}" for i in range(n)], b"seed", degree=k)

    degrees = sorted(graph.degree(p) for p in graph.neighbours)
    if k % 2 and n % 2:  # odd k needs an even count: the one left over gets k + 1
        assert degrees == [k] * (n - 1) + [k + 1]
    else:
        assert degrees == [k] * n
    assert not graph.all_to_all and connected(graph)
    for p, near in graph.neighbours.items():  # symmetric, no self-loops
        assert p not in near and all(p in graph.neighbours[q] for q in near)


def test_the_graph_depends_on_the_seed_not_on_the_order_of_the_peers() -> None:
    a = peer_graph(PEERS, b"round-7")
    assert peer_graph(list(reversed(PEERS)), b"round-7") == a
    assert peer_graph(PEERS, b"round-8") != a


def test_metropolis_hastings_weights() -> None:
    graph = peer_graph([f"p{i}" for i in range(17)], b"seed", degree=3)  # one peer of degree 4
    big = next(p for p in graph.neighbours if graph.degree(p) == 4)
    w = mixing_weights(graph, big)

    assert w == {**{q: 1 / 5 for q in graph.neighbours[big]}, big: pytest.approx(1 / 5)}
    other = graph.neighbours[big][0]
    assert mixing_weights(graph, other)[big] == w[other]  # symmetric
    lone = next(p for p in graph.neighbours if p not in graph.neighbours[big] and p != big)
    assert set(mixing_weights(graph, lone).values()) == {1 / 4}


def test_mixing_keeps_the_average_and_brings_the_models_together() -> None:
    ids = [f"p{i}" for i in range(30)]
    values = dict(zip(ids, np.random.default_rng(0).normal(size=30), strict=True))
    mean, spread = np.mean(list(values.values())), np.std(list(values.values()))
    for r in range(30):
        graph = peer_graph(ids, f"round-{r}".encode())
        values = {p: sum(w * values[q] for q, w in mixing_weights(graph, p).items()) for p in ids}
    assert np.mean(list(values.values())) == pytest.approx(mean, abs=1e-12)
    assert np.std(list(values.values())) < 1e-3 * spread


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        peer_graph(["a", "a", "b"], b"s")
    with pytest.raises(ConfigError, match="degree of at least 2"):
        peer_graph(PEERS, b"s", degree=1)
