"""FedAvg against tests/vectors/aggregation_mean.json, which the browser's combine reads too
(web/tests/aggregation.test.ts): every peer of a decentralized session must end a round with the
same model, bit for bit, whatever language it runs in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from disco.aggregation import MeanAggregator, Update
from disco.aggregation.mean import COUNT_LIMIT, COUNT_ROOM, FRACTION_BITS, MAX_CHANGE, ROOM
from disco.decentralized.peer import PeerClient
from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((VECTORS_DIR / "aggregation_mean.json").read_text(encoding="utf-8"))
CASES = VECTORS["cases"]

MARKERS = {
    "max_share": ("max_share must be",),
    "count": ("num_samples must be",),
    "no_updates": ("nothing to aggregate",),
    "duplicate": ("one update per participant",),
    "not_finite": ("is not finite", "produced NaN or infinite"),
    "out_of_range": (f"by {MAX_CHANGE:g} or more in one round",),
    "round_full": ("round full",),
    "shape": ("do not match the model", "has shape", "another order", "does not fit the model"),
}
"""What Python's refusal of each kind says."""

Contribution = tuple[str, Weights, int]


def weights(tensors: list[dict[str, Any]]) -> Weights:
    return Weights(
        (
            t["name"],
            np.array([int(b, 16) for b in t["bits"]], "<u4").view("<f4").reshape(t["shape"]),
        )
        for t in tensors
    )


def bits(w: Weights) -> list[tuple[str, list[int], list[str]]]:
    return [
        (n, list(a.shape), [f"{int(u):08x}" for u in a.reshape(-1).view("<u4")])
        for n, a in w.items()
    ]


def contributions(case: dict[str, Any]) -> list[Contribution]:
    return [(u["participant"], weights(u["weights"]), u["num_samples"]) for u in case["updates"]]


def through_aggregate(
    model: Weights, updates: list[Contribution], max_share: float | None
) -> Weights:
    """What `PeerClient._combine` does, spelled out: changes in float32, in participant order."""
    aggregator = MeanAggregator(max_share)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing change is then refused
        changes = [Update(p, w - model, n) for p, w, n in sorted(updates, key=lambda u: u[0])]
    return aggregator.aggregate(model, changes, round=3).weights


def through_peer(model: Weights, updates: list[Contribution], max_share: float | None) -> Weights:
    """`PeerClient._combine` itself, on stand-ins for the round's messages."""
    ids = [p for p, _, _ in updates]
    received: dict[str, Any] = {p: SimpleNamespace(weights=w, num_samples=n) for p, w, n in updates}
    peer = SimpleNamespace(client_id=ids[-1], _aggregator=MeanAggregator(max_share))
    own = received.pop(ids[-1])
    plan = SimpleNamespace(topology="all_to_all", round=3, peers=[])
    combine = SimpleNamespace(peers=list(reversed(ids)))
    with np.errstate(over="ignore", invalid="ignore"):
        return PeerClient._combine(peer, plan, model, own, combine, received)  # type: ignore


# -- the file ----------------------------------------------------------------------------------
def test_the_vectors_file_is_what_the_code_produces() -> None:
    script = VECTORS_DIR / "aggregation.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_limits_are_the_codes() -> None:
    assert VECTORS["limits"] == {
        "fraction_bits": FRACTION_BITS,
        "max_change": MAX_CHANGE,
        "count_limit": COUNT_LIMIT,
        "count_room": COUNT_ROOM,
    }


def test_the_vectors_cover_every_refusal_a_round_of_a_few_updates_can_meet() -> None:
    kinds = {c["error"] for c in CASES if "error" in c}
    assert kinds == set(MARKERS) - {"round_full"}  # round_full: 16,384 updates, tested below
    shares = {c["max_share"] for c in CASES if "result" in c}
    assert {None, 0.5, 1.0} <= shares


# -- every vector ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_reproduces_the_vector(case: dict[str, Any]) -> None:
    model, updates, max_share = weights(case["model"]), contributions(case), case["max_share"]
    ids = [p for p, _, _ in updates]
    ways = [through_aggregate]
    if ids and len(set(ids)) == len(ids):  # what a peer can be handed
        ways.append(through_peer)
    for way in ways:
        if "error" in case and way is through_peer:
            try:  # a round the rule cannot combine: a peer keeps the round's model, as all do
                assert bits(way(model, updates, max_share)) == bits(model)
            except (AggregationError, WeightsError) as exc:  # before any combining: bad input
                assert any(m in str(exc) for m in MARKERS[case["error"]]), str(exc)
        elif "error" in case:
            with pytest.raises((AggregationError, WeightsError)) as info:
                way(model, updates, max_share)
            assert any(m in str(info.value) for m in MARKERS[case["error"]]), str(info.value)
        else:
            got = way(model, updates, max_share)
            assert bits(got) == bits(weights(case["result"])), way.__name__


@pytest.mark.parametrize(
    "case", [c for c in CASES if "result" in c], ids=[c["name"] for c in CASES if "result" in c]
)
def test_the_result_does_not_depend_on_the_order_updates_arrive_in(case: dict[str, Any]) -> None:
    model, updates, max_share = weights(case["model"]), contributions(case), case["max_share"]
    want = bits(weights(case["result"]))
    for order in (updates[::-1], updates[1:] + updates[:1]):
        collector = MeanAggregator(max_share).open_round(model)
        for p, w, n in order:
            collector.add(p, w, n)
        assert bits(collector.result().weights) == want


def test_a_round_is_full_at_counts_totalling_2_to_the_31() -> None:
    model = Weights({"w": np.zeros(1, "<f4")})
    step = Weights({"w": np.full(1, 0.5, "<f4")})
    updates = [Update(f"p{i:05d}", step, COUNT_LIMIT) for i in range(ROOM)]
    assert ROOM * COUNT_LIMIT < COUNT_ROOM <= (ROOM + 1) * COUNT_LIMIT

    result = MeanAggregator(None).aggregate(model, updates)
    assert result.weights["w"].tolist() == [0.5]

    with pytest.raises(AggregationError, match="round full"):
        MeanAggregator(None).aggregate(model, [*updates, Update("p16383", step, COUNT_LIMIT)])
