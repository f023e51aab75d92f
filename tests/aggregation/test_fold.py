"""FedAvg's fold: the compiled loop and numpy compute the same sums, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from disco.aggregation import fold


def test_the_compiled_fold_is_installed() -> None:
    # `make setup` (pip install -e .) builds it; without it FedAvg runs several times slower
    assert fold.KIND in {"avx2", "scalar"}, "the compiled fold is not built: run `make setup`"


def both(
    sums: np.ndarray, base: np.ndarray | None, values: list[np.ndarray], counts: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Fold with every implementation (the compiled vector and scalar loops, numpy); assert
    they agree; return the sums and statuses."""
    compiled, scalar, by_numpy = sums.copy(), sums.copy(), sums.copy()
    s1, s2, s3 = (np.zeros(len(values), np.int32) for _ in range(3))
    fold.fold(compiled, base, values, counts, s1)
    with fold.scalar_loops():
        fold.fold(scalar, base, values, counts, s2)
    fold.fold_numpy(by_numpy, base, values, counts, s3)
    for other, status in ((scalar, s2), (by_numpy, s3)):
        np.testing.assert_array_equal(status, s1)
        np.testing.assert_array_equal(other, compiled)
    return compiled, s1


def test_ties_round_to_even_as_rint_does() -> None:
    halves = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.5, 0.25, 0.75, 2.5], np.float32)
    values = halves * np.float32(2.0**-24)
    sums, status = both(np.zeros(9, np.int64), None, [values], [1])

    assert status.tolist() == [fold.OK]
    assert sums.tolist() == [0, 2, 2, 0, -2, 4, 0, 1, 2]


def test_each_term_is_the_rounded_exact_product() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=1001).astype(np.float32)
    w = (g + rng.normal(scale=0.3, size=1001)).astype(np.float32)
    sums, _ = both(np.zeros(1001, np.int64), g, [w], [12345])

    exact = np.rint((w - g).astype(np.float64) * 12345 * 2.0**24).astype(np.int64)
    np.testing.assert_array_equal(sums, exact)


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_agree_and_refused_updates_add_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 7, 8, 9, 31, 16384, 16385, 40000]))
    g = (rng.normal(size=n) * rng.choice([1e-3, 1.0, 100.0])).astype(np.float32)
    values, counts, good = [], [], []
    for _ in range(int(rng.integers(1, 7))):
        w = (g + rng.normal(size=n) * rng.choice([1e-6, 1e-2, 1.0, 10.0])).astype(np.float32)
        bad = n > 0 and rng.random() < 0.4
        if bad:  # anywhere: inside an 8-value vector, its tail, a later chunk
            i = int(rng.integers(0, n))
            w[i] = rng.choice([np.nan, np.inf, -np.inf, g[i] + 257.0, g[i] - 300.0])
        values.append(w)
        counts.append(int(rng.integers(1, 2**17)))
        good.append(not bad)
    start = rng.integers(-(2**40), 2**40, size=n).astype(np.int64)

    sums, status = both(start, g, values, counts)

    assert [s == fold.OK for s in status] == good
    expected = start.copy()
    for w, c, ok in zip(values, counts, good, strict=True):
        if ok:
            expected += fold.terms(w, g, c)
    np.testing.assert_array_equal(sums, expected)
    # taking the accepted ones back restores the sums exactly
    accepted = [w for w, ok in zip(values, good, strict=True) if ok]
    back = [-c for c, ok in zip(counts, good, strict=True) if ok]
    restored, _ = both(sums, g, accepted, back)
    np.testing.assert_array_equal(restored, start)


def test_the_largest_count_and_change_stay_exact() -> None:
    g = np.zeros(19, np.float32)
    edge = np.full(19, 255.99998, np.float32) * np.where(np.arange(19) % 2, 1, -1).astype(
        np.float32
    )
    sums, status = both(np.zeros(19, np.int64), g, [edge, edge, edge], [fold.MAX_COUNT] * 3)

    assert status.tolist() == [fold.OK] * 3
    one = np.rint(edge.astype(np.float64) * fold.MAX_COUNT * 2.0**24).astype(np.int64)
    np.testing.assert_array_equal(sums, 3 * one)
    with pytest.raises(ValueError, match="count"):
        fold.fold(sums, g, [edge], [fold.MAX_COUNT + 1], np.zeros(1, np.int32))


def test_why_an_update_is_refused() -> None:
    g = np.zeros(20, np.float32)
    limit = np.full(20, 255.99, np.float32)
    far, nan, inf = limit.copy(), limit.copy(), limit.copy()
    far[13], nan[17], inf[3] = 256.0, np.nan, -np.inf
    _, status = both(np.zeros(20, np.int64), g, [limit, far, nan, inf], [1, 2, 3, 4])

    assert status.tolist() == [fold.OK, fold.OUT_OF_RANGE, fold.NOT_FINITE, fold.NOT_FINITE]


def test_several_refused_in_one_block_and_in_the_last_values() -> None:
    n = 16 * 8 * 3 + 5  # three blocks of 16 vectors, then 5 values one by one
    rng = np.random.default_rng(11)
    g = rng.normal(size=n).astype(np.float32)
    values = [(g + rng.normal(scale=0.1, size=n)).astype(np.float32) for _ in range(7)]
    values[1][130] = np.nan  # block 1: first vector
    values[2][255] = 300.0  # block 1: last value of its last vector
    values[4][200] = -np.inf  # block 1 too
    values[5][n - 1] = 1e30  # the last values
    values[6][0] = np.nan  # the very first value
    start = rng.integers(-(2**50), 2**50, size=n).astype(np.int64)

    sums, status = both(start, g, values, [3, 5, 7, 11, 13, 17, 19])

    bad = {1: fold.NOT_FINITE, 2: fold.OUT_OF_RANGE, 4: fold.NOT_FINITE, 5: fold.OUT_OF_RANGE}
    bad[6] = fold.NOT_FINITE
    assert status.tolist() == [bad.get(j, fold.OK) for j in range(7)]
    expected = start + fold.terms(values[0], g, 3) + fold.terms(values[3], g, 11)
    np.testing.assert_array_equal(sums, expected)


def test_bad_arguments_are_refused_before_any_compiled_code_runs() -> None:
    sums, ok = np.zeros(4, np.int64), np.zeros(1, np.int32)
    w = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="int64"):
        fold.fold(np.zeros(4, np.int32), None, [w], [1], ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float32"):
        fold.fold(sums, None, [np.zeros(4)], [1], ok)
    with pytest.raises(ValueError, match="shape"):
        fold.fold(sums, None, [np.zeros(5, np.float32)], [1], ok)
    with pytest.raises(ValueError, match="count"):
        fold.fold(sums, None, [w], [2**21], ok)
    with pytest.raises(ValueError, match="status"):
        fold.fold(sums, None, [w, w], [1, 1], ok)
    assert not sums.any()
    with pytest.raises(ValueError, match="contiguous float32 and int64"):
        fold.address(np.zeros(4))  # float64
    with pytest.raises(ValueError, match="contiguous float32 and int64"):
        fold.address(np.zeros(8, np.float32)[::2])
