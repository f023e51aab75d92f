"""Aggregation functions: median and trimmed mean, and their errors (FedAvg: streaming tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from disco.aggregation import Contribution, median, trimmed_mean
from disco.errors import AggregationError
from disco.weights import Weights

FUNCTIONS: dict[str, Callable[[Sequence[Contribution]], Weights]] = {
    "median": median,
    "trimmed_mean": trimmed_mean,
}


def aggregate(rule: str, contributions: Sequence[Contribution]) -> Weights:
    return FUNCTIONS[rule](contributions)


def contribution(x: list[float], y: list[list[float]], samples: int = 1) -> Contribution:
    """A contribution with a vector ``x`` and a matrix ``y``."""
    return Contribution(Weights([("x", x), ("y", y)]), samples)


# -- robust rules ---------------------------------------------------------------------------------
def test_median_odd_and_even_counts() -> None:
    odd = [
        contribution([1.0], [[100.0]]),
        contribution([10.0], [[-5.0]], samples=50),  # counts are ignored
        contribution([2.0], [[3.0]]),
    ]
    even = [*odd, contribution([3.0], [[4.0]])]

    np.testing.assert_array_equal(median(odd)["x"], [2.0])
    np.testing.assert_array_equal(median(odd)["y"], [[3.0]])
    np.testing.assert_array_equal(median(even)["x"], [2.5])
    np.testing.assert_array_equal(median(even)["y"], [[3.5]])


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    updates = [
        contribution([1.0, 50.0], [[0.0]]),
        contribution([2.0, -50.0], [[1.0]]),
        contribution([3.0, 1.0], [[2.0]]),
        contribution([100.0, 2.0], [[7.0]]),
    ]

    result = trimmed_mean(updates, trim=0.25)

    # k = 1 per side: x0 keeps 2, 3; x1 keeps 1, 2; y keeps 1, 2
    np.testing.assert_array_equal(result["x"], [2.5, 1.5])
    np.testing.assert_array_equal(result["y"], [[1.5]])


def test_trimmed_mean_default_trims_ten_percent() -> None:
    values = [float(v) for v in range(1, 10)] + [1000.0]  # ten contributions: k = 1
    updates = [contribution([v], [[v]]) for v in values]

    result = aggregate("trimmed_mean", updates)

    np.testing.assert_array_equal(result["x"], [5.5])  # mean of 2..9
    plain = trimmed_mean(updates, trim=0.0)  # nothing dropped: the plain mean
    np.testing.assert_allclose(plain["x"], [np.mean(values)], rtol=1e-6)


@pytest.mark.parametrize("trim", [-0.1, 0.5, 0.9])
def test_trimmed_mean_rejects_bad_trim(trim: float) -> None:
    with pytest.raises(AggregationError, match="trim"):
        trimmed_mean([contribution([1.0], [[1.0]])], trim=trim)


# -- properties of every rule ---------------------------------------------------------------------
def random_contributions(seed: int, n: int = 5) -> list[Contribution]:
    """`n` random contributions with different sample counts."""
    rng = np.random.default_rng(seed)
    return [
        Contribution(
            Weights([("a", rng.normal(size=(3, 4))), ("b", rng.normal(size=5))]),
            int(rng.integers(1, 100)),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("rule", sorted(FUNCTIONS))
def test_result_is_float32_with_the_same_names_and_shapes(rule: str) -> None:
    updates = random_contributions(0)

    result = aggregate(rule, updates)

    assert list(result) == ["a", "b"]
    assert result.shapes == {"a": (3, 4), "b": (5,)}
    assert all(arr.dtype.str == "<f4" for arr in result.values())


@pytest.mark.parametrize("rule", sorted(FUNCTIONS))
def test_permutation_invariance(rule: str) -> None:
    updates = random_contributions(1)
    order = [3, 0, 4, 2, 1]

    first = aggregate(rule, updates)
    second = aggregate(rule, [updates[i] for i in order])

    assert first.digest() == second.digest()


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", sorted(FUNCTIONS))
def test_mismatched_shapes_raise(rule: str) -> None:
    updates = [contribution([1.0, 2.0], [[1.0]]), contribution([1.0, 2.0, 3.0], [[1.0]])]

    with pytest.raises(AggregationError, match="'x'"):
        aggregate(rule, updates)


@pytest.mark.parametrize("rule", sorted(FUNCTIONS))
def test_mismatched_names_raise(rule: str) -> None:
    other = Contribution(Weights([("x", [1.0, 2.0]), ("z", [[1.0]])]))

    with pytest.raises(AggregationError, match="contribution 1"):
        aggregate(rule, [contribution([1.0, 2.0], [[1.0]]), other])


@pytest.mark.parametrize("rule", sorted(FUNCTIONS))
def test_empty_list_raises(rule: str) -> None:
    with pytest.raises(AggregationError, match="nothing to aggregate"):
        aggregate(rule, [])


@pytest.mark.parametrize("samples", [0, -3])
def test_contribution_needs_at_least_one_sample(samples: int) -> None:
    with pytest.raises(AggregationError, match="num_samples"):
        Contribution(Weights([("x", [1.0])]), samples)
