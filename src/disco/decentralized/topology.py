"""Who exchanges models with whom in a decentralized round, and how the models are mixed.

**All to all** (up to ``all_to_all_limit`` peers, 16 by default): every peer sends its update to
every other, and each combines all of them with the task's aggregation rule. Every rule is
bit-identical whatever the order updates arrive in (`disco.aggregation`), so all peers end the
round with the same model, bit for bit, and the server can check that by comparing digests.

**Sparse** (more peers): each round the server draws a random k-regular graph and each peer
exchanges with its k neighbours only, then mixes (D-PSGD, Lian et al. 2017):

    xᵢ ← Σⱼ Wᵢⱼ xⱼ   over i and its neighbours, Metropolis–Hastings weights
    Wᵢⱼ = 1 / (1 + max(dᵢ, dⱼ)) for a neighbour j,   Wᵢᵢ = 1 − Σⱼ Wᵢⱼ

W is symmetric and doubly stochastic, so the average of all models is what it would be with
all-to-all averaging, and the models approach each other (consensus) as rounds go by — but they
are *not* identical after a round: in sparse rounds each peer keeps its own model, and the
digests the peers report differ by design. On a k-regular graph every weight is 1/(k + 1).

The graph: the peers in a random order (from the round's seed) on a ring, each joined to its k/2
nearest on either side, and for odd k also to the one opposite. It is always connected and
k-regular (odd k needs an even number of peers; otherwise the one left over gets k + 1), drawn
afresh every round, so over rounds every peer meets many others. It is not uniform over all
k-regular graphs; what D-PSGD needs is connected, symmetric weights, redrawn.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from disco.errors import ConfigError

__all__ = ["ALL_TO_ALL_LIMIT", "Round", "mixing_weights", "peer_graph"]

ALL_TO_ALL_LIMIT = 16
"""Up to this many peers, everyone exchanges with everyone."""


@dataclass(frozen=True)
class Round:
    """One round's topology: each peer's neighbours (sorted), and whether it is all to all."""

    neighbours: dict[str, tuple[str, ...]]
    all_to_all: bool

    def degree(self, peer: str) -> int:
        return len(self.neighbours[peer])


def peer_graph(
    peers: list[str], seed: bytes, *, degree: int = 4, all_to_all_limit: int = ALL_TO_ALL_LIMIT
) -> Round:
    """The round's graph over `peers` (distinct ids): all to all up to `all_to_all_limit`
    peers, else a random `degree`-regular graph drawn from `seed` (the same seed and peers give
    the same graph, in any order of `peers`)."""
    if len(set(peers)) != len(peers):
        raise ConfigError(f"peer ids must be distinct, got {sorted(peers)}")
    ids = sorted(peers)
    n = len(ids)
    if n <= all_to_all_limit or degree >= n - 1:
        return Round({p: tuple(q for q in ids if q != p) for p in ids}, all_to_all=True)
    if degree < 2:
        raise ConfigError(f"a sparse round needs a degree of at least 2, got {degree}")
    order = list(ids)
    random.Random(hashlib.sha256(seed).digest()).shuffle(order)
    links: dict[str, set[str]] = {p: set() for p in ids}

    def join(a: str, b: str) -> None:
        links[a].add(b)
        links[b].add(a)

    for i, p in enumerate(order):
        for step in range(1, degree // 2 + 1):
            join(p, order[(i + step) % n])
    if degree % 2:  # the one opposite on the ring; with n odd, the last one shares a partner
        for i in range((n + 1) // 2):
            join(order[i], order[(i + n // 2) % n])
    return Round({p: tuple(sorted(links[p])) for p in ids}, all_to_all=False)


def mixing_weights(graph: Round, peer: str) -> dict[str, float]:
    """`peer`'s Metropolis–Hastings weights over itself and its neighbours (they sum to 1)."""
    own = graph.degree(peer)
    weights = {q: 1.0 / (1 + max(own, graph.degree(q))) for q in graph.neighbours[peer]}
    weights[peer] = 1.0 - sum(weights.values())
    return weights
