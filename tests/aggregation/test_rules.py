"""Aggregation functions: FedAvg by sample count, median, trimmed mean, and their errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from disco.aggregation import Contribution, mean, median, trimmed_mean
from disco.errors import AggregationError
from disco.weights import Weights

FUNCTIONS: dict[str, Callable[[Sequence[Contribution]], Weights]] = {
    "mean": mean,
    "median": median,
    "trimmed_mean": trimmed_mean,
}


def aggregate(rule: str, contributions: Sequence[Contribution]) -> Weights:
    return FUNCTIONS[rule](contributions)


def contribution(x: list[float], y: list[list[float]], samples: int = 1) -> Contribution:
    """A contribution with a vector ``x`` and a matrix ``y``."""
    return Contribution(Weights([("x", x), ("y", y)]), samples)


# -- mean (FedAvg) --------------------------------------------------------------------------------
def test_mean_weights_by_sample_count() -> None:
    updates = [
        contribution([1.0, 2.0], [[0.0, 8.0]], samples=1),
        contribution([4.0, 8.0], [[4.0, 0.0]], samples=3),
    ]

    result = mean(updates)

    # x: (1*1 + 3*4) / 4 = 3.25, (1*2 + 3*8) / 4 = 6.5; y: (0 + 12) / 4 = 3, (8 + 0) / 4 = 2
    np.testing.assert_array_equal(result["x"], [3.25, 6.5])
    np.testing.assert_array_equal(result["y"], [[3.0, 2.0]])


def test_mean_with_three_unequal_counts() -> None:
    updates = [
        contribution([10.0], [[1.0]], samples=2),
        contribution([20.0], [[2.0]], samples=5),
        contribution([-5.0], [[9.0]], samples=3),
    ]

    result = mean(updates)

    # (2*10 + 5*20 + 3*-5) / 10 = 10.5; (2*1 + 5*2 + 3*9) / 10 = 3.9
    np.testing.assert_allclose(result["x"], [10.5], rtol=0, atol=0)
    np.testing.assert_allclose(result["y"], [[3.9]], rtol=1e-7)


def test_unweighted_mean_ignores_sample_counts() -> None:
    updates = [
        contribution([1.0, 2.0], [[0.0, 8.0]], samples=1),
        contribution([4.0, 8.0], [[4.0, 0.0]], samples=3),
    ]

    result = mean(updates, weighted=False)

    np.testing.assert_array_equal(result["x"], [2.5, 5.0])
    np.testing.assert_array_equal(result["y"], [[2.0, 4.0]])


def test_mean_of_one_contribution_is_itself() -> None:
    only = contribution([1.25, -3.0], [[7.0, 0.5]], samples=42)

    assert mean([only]) == only.weights


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
    assert trimmed_mean(updates, trim=0.0) == mean(updates, weighted=False)


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

    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=1e-6, atol=0)
    if rule != "mean":
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
