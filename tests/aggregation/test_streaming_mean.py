"""FedAvg folded as updates arrive: exact for every arrival order, memory that does not grow."""

from __future__ import annotations

import itertools
import threading
import tracemalloc

import numpy as np
import pytest

from disco.aggregation import MeanAggregator, Update
from disco.aggregation.mean import COUNT_LIMIT, FRACTION_BITS, MAX_CHANGE, ROOM
from disco.errors import AggregationError
from disco.weights import Weights

GLOBAL = Weights([("w", np.linspace(-1, 1, 12).reshape(3, 4)), ("b", [0.25, -0.5])])


def trained(rng: np.random.Generator, scale: float = 0.05) -> Weights:
    return Weights((n, a + rng.normal(scale=scale, size=a.shape)) for n, a in GLOBAL.items())


def eight_updates() -> list[tuple[str, Weights, int]]:
    rng = np.random.default_rng(7)
    counts = [3, 50, 7, 2**40, 12, 1, 999, 64]  # one liar: capped
    return [(f"p{i}", trained(rng), n) for i, n in enumerate(counts)]


def folded(order: list[tuple[str, Weights, int]], max_share: float | None = 0.5) -> str:
    collector = MeanAggregator(max_share).open_round(GLOBAL)
    for participant, weights, n in order:
        collector.add(participant, weights, n)
    return collector.result().weights.digest()


def test_every_arrival_order_of_8_updates_gives_the_same_model() -> None:
    updates = eight_updates()
    orders = list(itertools.permutations(range(8)))  # 40,320: a random 2,000 of them
    picked = np.random.default_rng(0).choice(len(orders), size=2000, replace=False)
    digests = {folded([updates[i] for i in orders[k]]) for k in picked}

    assert len(digests) == 1


def test_every_arrival_order_without_a_cap_too() -> None:
    updates = eight_updates()
    rng = np.random.default_rng(1)
    orders = [list(rng.permutation(len(updates))) for _ in range(300)]
    digests = {folded([updates[i] for i in order], None) for order in orders}

    assert len(digests) == 1


def test_the_fold_is_the_mean_to_within_its_fixed_point_step() -> None:
    rng = np.random.default_rng(3)
    counts = [5, 9, 30, 2]
    models = [trained(rng) for _ in counts]
    collector = MeanAggregator(None).open_round(GLOBAL)
    for i, (w, n) in enumerate(zip(models, counts, strict=True)):
        collector.add(f"p{i}", w, n)

    result = collector.result()

    for name, g in GLOBAL.items():
        exact = g.astype(np.float64) + sum(
            n * (w[name] - g).astype(np.float64) for w, n in zip(models, counts, strict=True)
        ) / sum(counts)
        step = 2.0**-FRACTION_BITS
        np.testing.assert_allclose(result.weights[name], exact, rtol=0, atol=step + 1e-7)
    assert [r.weight for r in result.reports] == [n / sum(counts) for n in counts]


def test_streaming_and_all_at_once_agree_bit_for_bit() -> None:
    updates = eight_updates()
    at_once = MeanAggregator(0.5).aggregate(
        GLOBAL, [Update(p, w - GLOBAL, n) for p, w, n in updates]
    )

    assert folded(updates) == at_once.weights.digest()


def test_the_liar_is_capped_and_reported() -> None:
    collector = MeanAggregator(0.25).open_round(GLOBAL)
    for i in range(3):
        collector.add(f"h{i}", GLOBAL, 500)  # no change
    liar = Weights((n, a + 100.0) for n, a in GLOBAL.items())
    collector.add("liar", liar, 2**40)

    result = collector.result()

    by = {r.participant: r for r in result.reports}
    assert by["liar"].clipped and by["liar"].weight == pytest.approx(0.25)
    assert not by["h0"].clipped and by["h0"].weight == pytest.approx(0.25)
    np.testing.assert_allclose(result.weights["b"], GLOBAL["b"] + 25.0, rtol=1e-6)


def test_a_refused_update_leaves_the_round_as_it_was() -> None:
    collector = MeanAggregator(0.5).open_round(GLOBAL)
    collector.add("a", trained(np.random.default_rng(0)), 10)
    before = collector.result().weights.digest()
    # the first tensor is fine, the second is not: the fold of the first must be taken back
    huge = Weights([("w", GLOBAL["w"] + 0.5), ("b", GLOBAL["b"] + 2 * MAX_CHANGE)])
    nan = Weights([("w", GLOBAL["w"] + 0.5), ("b", [np.nan, 0.0])])

    with pytest.raises(AggregationError, match=r"changes 'b' by 256 or more"):
        collector.add("b", huge, 10)
    with pytest.raises(AggregationError, match="not finite"):
        collector.add("b", nan, 10)
    with pytest.raises(AggregationError, match="already sent"):
        collector.add("a", GLOBAL, 10)

    assert collector.participants == {"a": 10}
    assert collector.result().weights.digest() == before
    collector.add("b", GLOBAL, 10)  # the refused participant can still send a good update
    assert set(collector.participants) == {"a", "b"}


def test_a_round_takes_16383_of_the_largest_updates_then_refuses_rather_than_wrap() -> None:
    zero = GLOBAL.map(np.zeros_like)
    largest = zero.map(lambda a: np.full_like(a, MAX_CHANGE - 2.0**-16))  # just below the limit
    collector = MeanAggregator(None).open_round(zero)
    for i in range(ROOM):
        collector.add(f"p{i}", largest, COUNT_LIMIT)

    with pytest.raises(AggregationError, match="round full"):
        collector.add("one-more", largest, COUNT_LIMIT)

    assert len(collector.participants) == ROOM
    result = collector.result()  # what was added is still averaged exactly
    np.testing.assert_array_equal(result.weights["b"], largest["b"])


def test_concurrent_adds_from_threads_give_the_sequential_result() -> None:
    updates = eight_updates()
    collector = MeanAggregator(0.5).open_round(GLOBAL)
    threads = [threading.Thread(target=collector.add, args=u) for u in updates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert collector.result().weights.digest() == folded(updates)


def _update(model: Weights, i: int) -> Weights:
    """A trained model as a server holds one: a float32 copy, nothing else allocated."""
    return model.map(lambda a: a + np.float32(0.001 * (i % 7 - 3)))


def test_a_round_s_memory_does_not_grow_with_participants() -> None:
    model = Weights([("w", np.zeros((1024, 1024), np.float32)), ("b", np.zeros(64, np.float32))])
    size = model.nbytes
    collector = MeanAggregator(0.5).open_round(model)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        held, extra = [], []
        for i in range(24):
            update = _update(model, i)
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            collector.add(f"p{i}", update, 100 + i)
            extra.append(tracemalloc.get_traced_memory()[1] - before)
            del update
            held.append(tracemalloc.get_traced_memory()[0] - base)
        tracemalloc.reset_peak()
        result = collector.result()
        finishing = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()

    # held: the int64 sum (2×) and the update with the largest count (1×), whatever the number
    assert max(held) <= 3.05 * size, [round(h / size, 2) for h in held]
    assert held[-1] - held[1] <= 0.01 * size
    assert max(extra) <= 0.6 * size  # adding an update needs only its chunk buffers
    assert finishing <= held[-1] + 2.05 * size  # plus the new model (and one tensor's copy)
    assert result.reports[-1].weight == pytest.approx(123 / sum(range(100, 124)))
