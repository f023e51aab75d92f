"""Quantisation: the decoded weighted mean is within 1/2^b of the exact one, rounding is unbiased,
and a round or an update that cannot fit the 32-bit ring is refused."""

from __future__ import annotations

import numpy as np
import pytest

from disco.errors import SecureAggregationError
from disco.secure import decode, quantize, scale_bits


def test_the_decoded_mean_of_a_round_is_within_one_step_of_the_exact_weighted_mean() -> None:
    rng = np.random.default_rng(5)
    for n, cap, clip, size in [(7, 1024, 1.0, 2000), (40, 64, 0.05, 500), (3, 1, 2.5, 1000)]:
        bits = scale_bits(n, cap, clip)
        weights = rng.integers(1, cap + 1, n)
        values = [(rng.standard_normal(size) * clip).astype(np.float32) for _ in range(n)]
        total = np.zeros(1 + size, dtype=np.uint32)
        for w, x in zip(weights, values, strict=True):
            total += quantize(x, int(w), clip, bits)  # the CSPRNG's draws

        weight_sum, weighted = decode(total, bits)

        assert weight_sum == int(weights.sum())
        exact = sum(
            int(w) * np.clip(x.astype(np.float64), -clip, clip)
            for w, x in zip(weights, values, strict=True)
        )
        assert np.max(np.abs(weighted - exact)) < n / 2**bits  # each q within 1 of its v
        error = np.abs(weighted / weight_sum - exact / weight_sum)
        assert np.max(error) <= 1 / 2**bits
        assert np.max(error) > 0  # it does round


def test_stochastic_rounding_is_unbiased_and_uses_fresh_draws() -> None:
    x = np.full(20_000, 0.3 / 2**8, dtype=np.float32)  # w = 1, b = 8: v ≈ 0.3
    v = float(np.float64(x[0]) * 2**8)

    first, second = quantize(x, 1, 1.0, 8), quantize(x, 1, 1.0, 8)

    assert not np.array_equal(first, second)
    assert set(np.unique(first[1:]).tolist()) == {0, 1}
    assert abs(first[1:].mean() - v) < 0.02  # ±6 standard deviations of the mean


def test_a_draw_decides_only_below_the_fraction() -> None:
    x = np.array([2**-18] * 3, dtype=np.float32)  # w = 3, b = 17: v = 1.5
    draws = np.array([0.0, 0.5 - 2**-32, 0.5])

    assert quantize(x, 3, 1.0, 17, draws).tolist() == [3, 2, 2, 1]


def test_a_round_too_large_for_the_ring_is_refused_naming_its_numbers() -> None:
    assert scale_bits(10, 1024, 1.0) == 17
    with pytest.raises(SecureAggregationError, match=r"100000 × 1024 × 1 is too large"):
        scale_bits(100_000, 1024, 1.0)
    with pytest.raises(SecureAggregationError, match="weights of a round would not fit"):
        scale_bits(2**20, 2**12, 2**-20)


def test_a_weight_that_would_overflow_one_word_is_refused() -> None:
    x = np.ones(3, dtype=np.float32)
    assert quantize(x, 1, 1.0, 30, np.zeros(3)).tolist() == [1, 2**30, 2**30, 2**30]
    with pytest.raises(SecureAggregationError, match="overflows a 32-bit word"):
        quantize(x, 2, 1.0, 30, np.zeros(3))


@pytest.mark.parametrize(
    ("values", "weight", "clip", "match"),
    [
        (np.array([1.0, np.nan], np.float32), 1, 1.0, "NaN or infinite .* index 1"),
        (np.array([np.inf], np.float32), 1, 1.0, "NaN or infinite"),
        (np.array([1.0]), 1, 1.0, "float32"),
        (np.array([1.0], np.float32), 0, 1.0, "weight must be an integer ≥ 1"),
        (np.array([1.0], np.float32), 1, 0.0, "clip range must be finite and > 0"),
        (np.array([1.0], np.float32), 1, float("inf"), "clip range must be finite"),
    ],
)
def test_bad_inputs_are_refused(values: np.ndarray, weight: int, clip: float, match: str) -> None:
    with pytest.raises(SecureAggregationError, match=match):
        quantize(values, weight, clip, 17)


def test_draws_must_be_one_per_value_in_the_unit_interval() -> None:
    x = np.zeros(2, dtype=np.float32)
    with pytest.raises(SecureAggregationError, match="one per value"):
        quantize(x, 1, 1.0, 17, np.zeros(3))
    with pytest.raises(SecureAggregationError, match=r"\[0, 1\)"):
        quantize(x, 1, 1.0, 17, np.array([0.0, 1.0]))


def test_decode_reads_words_as_signed_fixed_point() -> None:
    weight, values = decode(np.array([9, 2**31, 2**31 - 1, 2**32 - 256], np.uint32), 8)
    assert weight == 9
    assert values.tolist() == [-(2**23), (2**31 - 1) / 256, -1.0]
