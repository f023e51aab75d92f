"""Generate tests/vectors/aggregation_mean.json: FedAvg ("mean") as every peer must compute it.

    python tests/vectors/aggregation.py           rewrite the file from what the code produces
    python tests/vectors/aggregation.py --check   exit 1 if the committed file differs

Peers of a decentralized session each combine a round's updates themselves (Python:
`disco.decentralized.peer.PeerClient._combine`; the browser: web/src/core/aggregation), and every
peer must end with the same model, bit for bit. A case is the round's model, each participant's
trained weights with the sample count it claims, and ``max_share``; its result is what a Python
peer computes: the updates in participant order, each change ``trained − model`` in float32, then
``MeanAggregator(max_share).aggregate(model, updates)``. Every result is computed both through
the peer's own `_combine` and through `aggregate` directly, and the two must agree; the cases a
peer cannot be handed (no update, two from one participant) go through `aggregate` alone.

Floats are written as float32 bit patterns (8 hex digits of the uint32), so nothing is lost. A
refused case names the kind of refusal instead of a result. Read by
tests/aggregation/test_aggregation_vectors.py and web/tests/aggregation.test.ts.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump, write_or_check

from disco.aggregation import MeanAggregator, Update
from disco.aggregation.mean import COUNT_LIMIT, COUNT_ROOM, FRACTION_BITS, MAX_CHANGE
from disco.decentralized.peer import PeerClient
from disco.errors import AggregationError, WeightsError
from disco.weights import Weights

logging.getLogger("disco.client.peers").setLevel(logging.ERROR)  # refused rounds say so

PATH = Path(__file__).with_name("aggregation_mean.json")

Tensors = list[tuple[str, tuple[int, ...], np.ndarray]]


@dataclass(frozen=True)
class Case:
    name: str
    model: Weights
    updates: list[tuple[str, Weights, int]]  # participant, trained weights, claimed count
    max_share: float | None = 0.5


CASES: list[Case] = []


def case(
    name: str,
    model: Weights,
    updates: list[tuple[str, Weights, int]],
    max_share: float | None = 0.5,
) -> None:
    CASES.append(Case(name, model, updates, max_share))


# -- building blocks ---------------------------------------------------------------------------
def f32(values: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(values, dtype="<f4")
    return a if shape is None else a.reshape(shape)


def bits(*patterns: int) -> np.ndarray:
    """float32 values chosen by their IEEE-754 bit patterns."""
    return np.array(patterns, dtype="<u4").view("<f4")


def uniform(rng: random.Random, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Values in [-scale, scale] from Python's own generator (stable across versions)."""
    n = int(np.prod(shape, dtype=np.int64))
    return f32([rng.uniform(-scale, scale) for _ in range(n)], shape)


def moved(model: Weights, changes: dict[str, np.ndarray]) -> Weights:
    """`model + change` in float32, tensor by tensor (the change as trained would make it)."""
    return Weights((n, np.add(a, f32(changes[n], a.shape))) for n, a in model.items())


def random_round(
    seed: int, shapes: dict[str, tuple[int, ...]], counts: dict[str, int], scale: float = 0.01
) -> tuple[Weights, list[tuple[str, Weights, int]]]:
    rng = random.Random(seed)
    model = Weights((n, uniform(rng, s, 1.0)) for n, s in shapes.items())
    updates = [
        (p, moved(model, {n: uniform(rng, s, scale) for n, s in shapes.items()}), count)
        for p, count in counts.items()
    ]
    return model, updates


def changes_of(model: Weights, per_participant: dict[str, tuple[int, np.ndarray]]) -> list[Any]:
    """Updates whose changes from `model` are the given ones (exactly, `model` must allow it)."""
    out = []
    for p, (count, change) in per_participant.items():
        trained = moved(model, {n: change for n in model})
        assert np.array_equal(trained["w"] - model["w"], f32(change)), p
        out.append((p, trained, count))
    return out


# -- the cases ---------------------------------------------------------------------------------
case("two updates, equal counts", *random_round(1, {"w": (2, 3)}, {"a": 8, "b": 8}))
case(
    "two updates, unequal counts, no cap",
    *random_round(2, {"w": (2, 3)}, {"a": 3, "b": 11}),
    max_share=None,
)
case(
    "five updates, unequal counts",
    *random_round(3, {"w": (4, 4), "b": (4,)}, {"p1": 1, "p2": 2, "p3": 3, "p4": 50, "p5": 7}),
)
case("one update", *random_round(4, {"w": (5,)}, {"solo": 42}))
case(
    "participants given out of order",
    *random_round(5, {"w": (3,)}, {"carol": 5, "alice": 2, "bob": 9}),
)
case(
    "counts above COUNT_LIMIT count as COUNT_LIMIT",
    *random_round(6, {"w": (6,)}, {"huge": 2**40, "limit": COUNT_LIMIT, "over": 200_000, "s": 9}),
    max_share=None,
)
case(
    "max_share 0.5: one dominant count is capped",
    *random_round(7, {"w": (2, 4)}, {"big": 1000, "x": 10, "y": 20, "z": 30}),
)
case(
    "max_share null: the dominant count is not capped",
    *random_round(7, {"w": (2, 4)}, {"big": 1000, "x": 10, "y": 20, "z": 30}),
    max_share=None,
)
case(
    "max_share 1: plain FedAvg",
    *random_round(8, {"w": (4,)}, {"big": 1000, "x": 10}),
    max_share=1.0,
)
case(
    "max_share 0.3: three counts capped",
    *random_round(9, {"w": (3, 2)}, {"a": 100, "b": 100, "c": 100, "d": 1, "e": 2}),
    max_share=0.3,
)
case(
    "max_share 0.1: six capped shares summed left to right",
    *random_round(
        10, {"w": (4,)}, {**{f"big{i}": 50 for i in range(6)}, **{f"s{i}": 1 for i in range(5)}}
    ),
    max_share=0.1,
)
case(
    "capped participants added in code-point order (not UTF-16 order)",
    Weights({"w": f32([0.0, 0.0, 0.5])}),
    [
        ("😀", Weights({"w": f32([-1.0, -0.75, 0.25])}), 100),  # U+1F600: last in Python
        ("ａ", Weights({"w": bits(0x30800000, 0x2F000000, 0x3EFFFFFF)}), 100),  # U+FF41
        ("a", Weights({"w": f32([1.0, 0.75, 0.75])}), 100),
        ("b", Weights({"w": f32([0.0, 0.0, 0.5])}), 1),
        ("c", Weights({"w": f32([0.0, 0.0, 0.5])}), 2),
    ],
    max_share=0.3,
)
TIE_1 = [k * 2.0**-25 for k in (1, 3, 5, 7, -1, -3, -5, -7)]  # n·Δ·2^24 = ±0.5, ±1.5, ...
TIE_2 = [k * 2.0**-26 for k in (1, 3, 5, 7, -1, -3, -5, -7)]
case(
    "rounding ties to even (n·Δ·2^24 = x.5)",
    Weights({"w": np.zeros(8, "<f4")}),
    changes_of(
        Weights({"w": np.zeros(8, "<f4")}), {"one": (1, f32(TIE_1)), "two": (2, f32(TIE_2))}
    ),
    max_share=None,
)
case(
    "rounding ties from a non-zero model",
    Weights({"w": np.full(8, 0.25, "<f4")}),
    changes_of(
        Weights({"w": np.full(8, 0.25, "<f4")}),
        {"one": (1, f32(TIE_1)), "two": (2, f32([-k * 2.0**-26 for k in range(1, 17, 2)]))},
    ),
    max_share=None,
)
NEGATIVE = Weights({"w": f32([1.0, -2.0, 0.5, 100.0, -0.001, 3.0])})
case(
    "negative changes",
    NEGATIVE,
    [
        ("a", moved(NEGATIVE, {"w": -f32([0.1, 0.25, 1e-3, 7.5, 1e-6, 2.0])}), 4),
        ("b", moved(NEGATIVE, {"w": -f32([0.3, 2.5, 1e-5, 0.01, 3e-7, 1.0])}), 9),
    ],
    max_share=None,
)
TINY = bits(0x30800000, 0x00000001, 0xB2000000, 0x33000001, 0x2B800000)
# 2^-30, the smallest subnormal, -2^-27, just above 2^-25, 2^-40
case(
    "tiny changes below 2^-24",
    Weights({"w": np.zeros(5, "<f4")}),
    changes_of(
        Weights({"w": np.zeros(5, "<f4")}),
        {"one": (1, TINY), "many": (COUNT_LIMIT, TINY), "five": (5, -TINY)},
    ),
    max_share=None,
)
NEAR = bits(0x437FFFFF, 0xC37FFFFF, 0x43000001, 0xC2FFFFFF, 0x437FFFFE)  # ±(256 − 2^-16), ...
case(
    "changes just below ±256 are allowed",
    Weights({"w": np.zeros(5, "<f4")}),
    changes_of(
        Weights({"w": np.zeros(5, "<f4")}),
        {"a": (COUNT_LIMIT, NEAR), "b": (COUNT_LIMIT, -NEAR), "c": (3, NEAR)},
    ),
    max_share=None,
)
case(
    "changes just below 256 from a non-zero model",
    Weights({"w": f32([100.0, -128.0, 0.5])}),
    [
        ("a", Weights({"w": f32([355.99997, 127.99998, 256.49997])}), 7),
        ("b", Weights({"w": f32([-155.99997, -383.99997, -255.49998])}), 2),
    ],
    max_share=None,
)


def large_round(seed: int, counts: dict[str, int]) -> tuple[Weights, list[Any]]:
    """Changes of 150 to 256: all up in the first value, all down in the second, either way in
    the third; with counts of 2^16 or more the sums pass 2^53."""
    rng = random.Random(seed)
    model = Weights({"w": f32([0.0, 0.5, -3.0])})
    updates = []
    for p, n in counts.items():
        up, down, either = (rng.uniform(150, 255.99) for _ in range(3))
        change = f32([up, -down, either * rng.choice((1, -1))])
        updates.append((p, moved(model, {"w": change}), n))
    return model, updates


case(
    "40 updates of COUNT_LIMIT with changes near ±256: sums beyond 2^53",
    *large_round(11, {f"p{i:02d}": COUNT_LIMIT for i in range(40)}),  # counts total 40·2^17
    max_share=None,
)
case(
    "40 updates, sums beyond 2^53, two capped",
    *large_round(12, {**{f"q{i:02d}": 3 * 2**15 for i in range(38)}, "x": 2**40, "y": 2**20}),
    max_share=0.02,
)


def cancelling_round() -> tuple[Weights, list[Any]]:
    """Sums that pass 2^53 and come back: 40 large changes up ("a…"), ten small ones ("b…"),
    the same 40 down ("c…"). The exact sum is the small ones' alone; float64 running sums in
    participant order would lose their low bits on the way (checked below)."""
    rng = random.Random(14)
    model = Weights({"w": np.zeros(3, "<f4")})
    large = [f32([rng.uniform(200, 255.99) for _ in range(3)]) for _ in range(40)]
    small = [f32([rng.uniform(-0.01, 0.01) for _ in range(3)]) for _ in range(10)]
    return model, [
        *((f"a{i:02d}", Weights({"w": d}), COUNT_LIMIT) for i, d in enumerate(large)),
        *((f"b{i:02d}", Weights({"w": d}), 1 + i) for i, d in enumerate(small)),
        *((f"c{i:02d}", Weights({"w": -d}), COUNT_LIMIT) for i, d in enumerate(large)),
    ]


def float64_sums_would_differ(updates: list[tuple[str, Weights, int]]) -> bool:
    """Whether float64 running sums of the terms, in participant order, miss the exact sums."""
    ordered = sorted(updates, key=lambda u: u[0])
    scale = 2.0**FRACTION_BITS
    terms = [np.rint(w["w"].astype(np.float64) * (n * scale)) for _, w, n in ordered]
    running = np.zeros(terms[0].size)
    for t in terms:
        running += t
    exact = [sum(int(t[i]) for t in terms) for i in range(running.size)]
    return [float(x) for x in exact] != running.tolist()


assert float64_sums_would_differ(cancelling_round()[1])
case(
    "sums that pass 2^53 and cancel: exact integers, not float64 running sums",
    *cancelling_round(),
    max_share=None,
)
case(
    "a scalar and zero-size tensors",
    Weights(
        [
            ("scalar", f32(0.75, ())),
            ("empty", np.zeros(0, "<f4")),
            ("block", np.zeros((2, 0, 3), "<f4")),
            ("tail", f32([1.5, -0.5])),
        ]
    ),
    [
        (
            p,
            Weights(
                [
                    ("scalar", f32(s, ())),
                    ("empty", np.zeros(0, "<f4")),
                    ("block", np.zeros((2, 0, 3), "<f4")),
                    ("tail", f32(t)),
                ]
            ),
            n,
        )
        for p, s, t, n in (("a", 0.8, [1.25, -0.5], 3), ("b", 0.7, [1.5, 0.0], 5))
    ],
)
case(
    "several tensors",
    *random_round(
        13,
        {
            "conv.kernel": (3, 3, 1, 2),
            "conv.bias": (2,),
            "dense.kernel": (4, 3),
            "dense.bias": (3,),
        },
        {"a": 60, "b": 25, "c": 15, "d": 40},
        scale=0.05,
    ),
)
case(
    "signed zeros: a model of -0.0 without change becomes +0.0",
    Weights({"w": bits(0x80000000, 0x00000000, 0x80000000)}),
    [
        ("a", Weights({"w": bits(0x80000000, 0x00000000, 0x00000000)}), 1),
        ("b", Weights({"w": bits(0x80000000, 0x80000000, 0x80000000)}), 2),
    ],
)
ZERO3 = Weights({"w": np.zeros(3, "<f4")})


def one_off(*values: float) -> list[tuple[str, Weights, int]]:
    return [("ok", ZERO3, 1), ("odd", Weights({"w": f32(values)}), 1)]


case("refused: a change of exactly 256", ZERO3, one_off(0.0, 256.0, 0.0))
case("refused: a change of -256", ZERO3, one_off(0.0, 0.0, -256.0))
case(
    "refused: 256 from a non-zero model",
    Weights({"w": f32([0.5, 0.5, 0.5])}),
    [
        ("ok", Weights({"w": f32([0.5, 0.5, 0.5])}), 1),
        ("odd", Weights({"w": f32([256.5, 1, 1])}), 1),
    ],
)
case(
    "refused: a change that rounds to 256 in float32",
    Weights({"w": f32([-1e-5, 0.0, 0.0])}),
    [
        ("ok", Weights({"w": f32([0.0, 0.0, 0.0])}), 1),
        ("odd", Weights({"w": bits(0x437FFFFF, 0, 0)}), 1),
    ],
)
case("refused: NaN", ZERO3, one_off(0.0, float("nan"), 0.0))
case("refused: infinity", ZERO3, one_off(float("-inf"), 0.0, 0.0))
case(
    "refused: a change that overflows float32",
    Weights({"w": f32([-3e38, 0.0, 0.0])}),
    [
        ("ok", Weights({"w": f32([-3e38, 0.0, 0.0])}), 1),
        ("odd", Weights({"w": f32([3e38, 0.0, 0.0])}), 1),
    ],
)
case(
    "refused: not finite comes before out of range",
    ZERO3,
    [("a", Weights({"w": f32([300.0, 0, 0])}), 1), ("b", Weights({"w": f32([0, 0, np.nan])}), 1)],
)
case(
    "refused: a shape that does not fit the model",
    ZERO3,
    [("ok", ZERO3, 1), ("odd", Weights({"w": np.zeros((3, 1), "<f4")}), 1)],
)
case(
    "refused: a missing tensor",
    Weights({"w": np.zeros(3, "<f4"), "b": np.zeros(1, "<f4")}),
    [
        ("ok", Weights({"w": np.zeros(3, "<f4"), "b": np.zeros(1, "<f4")}), 1),
        ("odd", Weights({"w": np.zeros(3, "<f4")}), 1),
    ],
)
case(
    "refused: tensors in another order",
    Weights({"w": np.zeros(3, "<f4"), "b": np.zeros(1, "<f4")}),
    [
        ("ok", Weights({"w": np.zeros(3, "<f4"), "b": np.zeros(1, "<f4")}), 1),
        ("odd", Weights({"b": np.zeros(1, "<f4"), "w": np.zeros(3, "<f4")}), 1),
    ],
)
case("refused: two updates from one participant", ZERO3, [("a", ZERO3, 1), ("a", ZERO3, 2)])
case("refused: no updates", ZERO3, [])
case("refused: a sample count of 0", ZERO3, [("ok", ZERO3, 1), ("odd", ZERO3, 0)])
case("refused: max_share below 0.01", ZERO3, [("ok", ZERO3, 1)], max_share=0.005)
case("refused: max_share above 1", ZERO3, [("ok", ZERO3, 1)], max_share=1.5)


# -- what Python computes ----------------------------------------------------------------------
REFUSALS = [
    ("max_share", "max_share must be"),
    ("count", "num_samples must be"),
    ("no_updates", "nothing to aggregate"),
    ("duplicate", "one update per participant"),
    ("not_finite", "not finite"),
    ("not_finite", "produced NaN or infinite"),
    ("out_of_range", "or more in one round"),
    ("round_full", "round full"),
    ("shape", "does not fit the model"),
]
"""Refusal kinds, by what the AggregationError says (a WeightsError is a shape refusal)."""


def refusal(exc: Exception) -> str:
    """The kind of refusal an exception from the combine is."""
    if isinstance(exc, WeightsError):
        return "shape"
    if isinstance(exc, AggregationError):
        for kind, marker in REFUSALS:
            if marker in str(exc):
                return kind
        if "the model" in str(exc):  # check_update's wrapped WeightsError
            return "shape"
    raise AssertionError(f"not a refusal the vectors know: {exc!r}") from exc


def by_aggregate(
    model: Weights, updates: list[tuple[str, Weights, int]], max_share: float | None
) -> Weights:
    """`aggregate` as a peer calls it: changes in float32, in participant order."""
    aggregator = MeanAggregator(max_share)
    ordered = sorted(updates, key=lambda u: u[0])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing change is refused
        changes = [Update(p, trained - model, n) for p, trained, n in ordered]
    return aggregator.aggregate(model, changes, round=0).weights


def by_peer(
    model: Weights, updates: list[tuple[str, Weights, int]], max_share: float | None
) -> Weights:
    """`PeerClient._combine` itself (all-to-all), on stand-ins for the round's messages."""
    ids = [p for p, _, _ in updates]
    received: dict[str, Any] = {p: SimpleNamespace(weights=w, num_samples=n) for p, w, n in updates}
    peer = SimpleNamespace(client_id=ids[0], _aggregator=MeanAggregator(max_share))
    own = received.pop(ids[0])
    plan = SimpleNamespace(topology="all_to_all", round=0, peers=[])
    with np.errstate(over="ignore", invalid="ignore"):
        combine = SimpleNamespace(peers=ids)
        return PeerClient._combine(peer, plan, model, own, combine, received)  # type: ignore


def outcome(
    model: Weights, updates: list[tuple[str, Weights, int]], max_share: float | None
) -> Weights | str:
    """The new model, or the kind of refusal; through the peer and `aggregate`, which agree."""
    results: list[Weights | str] = []
    ids = [p for p, _, _ in updates]
    ways = [by_aggregate]
    if ids and len(set(ids)) == len(ids):  # what a peer can be handed
        ways.append(by_peer)
    for way in ways:
        try:
            results.append(way(model, updates, max_share))
        except (AggregationError, WeightsError) as exc:
            results.append(refusal(exc))
    first = results[0]
    if isinstance(first, str) and len(results) > 1 and isinstance(results[1], Weights):
        # a peer whose round cannot be combined keeps the round's model (every peer alike)
        assert tensors_json(results[1]) == tensors_json(model), "a refused round changed"
        results.pop()
    for other in results[1:]:
        same = (
            first == other
            if isinstance(first, str) or isinstance(other, str)
            else tensors_json(first) == tensors_json(other)
        )
        assert same, f"the peer and aggregate disagree: {first!r} vs {other!r}"
    return first


# -- JSON --------------------------------------------------------------------------------------
def hex_bits(a: np.ndarray) -> list[str]:
    return [f"{int(u):08x}" for u in np.ascontiguousarray(a, "<f4").reshape(-1).view("<u4")]


def tensors_json(weights: Weights) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(a.shape), "bits": hex_bits(a)} for n, a in weights.items()]


def case_json(c: Case) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": c.name,
        "max_share": c.max_share,
        "model": tensors_json(c.model),
        "updates": [
            {"participant": p, "num_samples": n, "weights": tensors_json(w)}
            for p, w, n in c.updates
        ],
    }
    result = outcome(c.model, c.updates, c.max_share)
    if isinstance(result, str):
        out["error"] = result
    else:
        out["result"] = tensors_json(result)
    return out


def build() -> dict[str, Any]:
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    return {
        "about": (
            "FedAvg ('mean') as every peer of a decentralized session computes it "
            "(src/disco/aggregation/mean.py): the changes trained − model in float32, terms "
            "rint(n·Δ·2^24) summed exactly, shares capped at max_share, the new model in float32. "
            "Floats are float32 bit patterns (8 hex digits); 'error' is the kind of refusal. "
            "Written by tests/vectors/aggregation.py."
        ),
        "limits": {
            "fraction_bits": FRACTION_BITS,
            "max_change": MAX_CHANGE,
            "count_limit": COUNT_LIMIT,
            "count_room": COUNT_ROOM,
        },
        "cases": [case_json(c) for c in CASES],
    }


def render() -> str:
    """The file's exact text."""
    doc = build()
    text = dump(doc) + "\n"
    assert json.loads(text) == doc
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the vectors file, or with --check compare it with what the code produces."""
    return write_or_check(PATH, render, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
