"""A round's folded sums: updates in flight together share the fold and change nothing else."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from disco.aggregation import MeanAggregator, fold
from disco.aggregation.sums import FoldedSums
from disco.errors import AggregationError
from disco.weights import Weights

GLOBAL = Weights([("w", np.linspace(-1, 1, 40).reshape(4, 10)), ("b", [0.25, -0.5, 1.0])])


def trained(seed: int) -> Weights:
    rng = np.random.default_rng(seed)
    return GLOBAL.map(lambda a: a + rng.normal(size=a.shape))


@pytest.fixture(params=["compiled", "numpy"], autouse=True)
def fold_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the compiled fold and again with numpy's (as without a compiler)."""
    if request.param == "numpy":
        monkeypatch.setattr(fold, "_LIB", None)
        monkeypatch.setattr(fold, "KIND", "numpy")
    else:
        assert fold.KIND != "numpy", "the compiled fold is not built: run `make setup`"
    return str(request.param)


def one_by_one(updates: list[tuple[str, Weights, int]], segment: int = 3) -> FoldedSums:
    sums = FoldedSums(GLOBAL, segment=segment)
    for participant, weights, n in updates:
        sums.add(participant, weights, n)
    return sums


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"waited 30 s for {what}"
        time.sleep(0.005)


class LateArrival(FoldedSums):
    """Sums where `late` arrives while the fold is at segment `at` of its first turn round."""

    def __init__(self, late: tuple[str, Weights, int], at: int) -> None:
        super().__init__(GLOBAL, segment=3)  # w: 14 segments (13 of 3 values, 1 of 1), b: 1
        self.late, self.at = late, at
        self.thread: threading.Thread | None = None
        self.late_error: AggregationError | None = None
        self.joined_at: int | None = None

    def _step(self, *, joining: bool = True) -> None:
        if self.thread is None and self._cursor == self.at:
            self.thread = threading.Thread(target=self._add_late)
            self.thread.start()
            wait_for(lambda: self._arriving, "the late update to arrive")
            self.joined_at = self._cursor
        super()._step(joining=joining)

    def _add_late(self) -> None:
        try:
            self.add(*self.late)
        except AggregationError as exc:
            self.late_error = exc


@pytest.mark.parametrize("at", [1, 7, 14])
def test_an_update_joining_part_way_round_gives_the_same_sums(at: int) -> None:
    first, late = ("a", trained(1), 10), ("b", trained(2), 31)
    sums = LateArrival(late, at)

    sums.add(*first)  # folds all of a's segments, and b's from `at` on; b's thread does the rest
    assert sums.thread is not None
    sums.thread.join(timeout=30)

    assert sums.joined_at == at and sums.late_error is None
    expected = one_by_one([first, late])
    for name in GLOBAL:
        np.testing.assert_array_equal(sums.sums[name], expected.sums[name])
    assert sums.counts == {"a": 10, "b": 31}


def test_an_update_refused_after_going_part_way_round_is_taken_back_exactly() -> None:
    first = ("a", trained(1), 10)
    w = trained(2)["w"].copy()
    w[0, 1] = np.nan  # in segment 0: reached after wrapping round from segment 7
    bad = Weights([("w", w), ("b", GLOBAL["b"])])
    sums = LateArrival(("b", bad, 31), at=7)

    sums.add(*first)
    assert sums.thread is not None
    sums.thread.join(timeout=30)

    assert sums.late_error is not None and "not finite" in str(sums.late_error)
    expected = one_by_one([first])
    for name in GLOBAL:
        np.testing.assert_array_equal(sums.sums[name], expected.sums[name])
    assert sums.counts == {"a": 10}


def test_reading_the_sums_first_completes_the_updates_part_way_round() -> None:
    first, late = ("a", trained(1), 10), ("b", trained(2), 31)
    sums = LateArrival(late, at=5)
    sums.add(*first)  # b is now part-way round, its adder waiting for the fold
    assert sums.thread is not None

    with sums.settled():
        assert sums.counts == {"a": 10, "b": 31}
        expected = one_by_one([first, late])
        for name in GLOBAL:
            np.testing.assert_array_equal(sums.sums[name], expected.sums[name])
    sums.thread.join(timeout=30)
    assert sums.late_error is None


def test_many_adders_at_once_give_the_sums_of_one_at_a_time() -> None:
    updates = [(f"p{i}", trained(i), 5 + i) for i in range(40)]
    bad = [("nan", GLOBAL.map(lambda a: a * np.nan), 3), ("far", GLOBAL.map(lambda a: a + 300), 4)]
    sums = FoldedSums(GLOBAL, segment=3, keep=2)
    errors: dict[str, str] = {}

    def add(participant: str, weights: Weights, n: int) -> None:
        try:
            sums.add(participant, weights, n)
        except AggregationError as exc:
            errors[participant] = str(exc)

    threads = [threading.Thread(target=add, args=u) for u in updates[:20] + bad + updates[20:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert set(errors) == {"nan", "far"}
    assert "not finite" in errors["nan"]
    # it joins the fold wherever the others are: the first tensor it is found out in is named
    assert re.search(r"changes '(w|b)' by 256 or more", errors["far"]), errors["far"]
    expected = one_by_one(updates)
    for name in GLOBAL:
        np.testing.assert_array_equal(sums.sums[name], expected.sums[name])
    assert sums.counts == {p: n for p, _, n in updates}
    assert set(sums.kept) == {"p38", "p39"}  # the largest counts


def test_updates_in_flight_together_through_the_mean_give_the_same_model() -> None:
    updates = [(f"p{i}", trained(i), 10 + i) for i in range(12)]
    together = MeanAggregator(0.5).open_round(GLOBAL)
    threads = [threading.Thread(target=together.add, args=u) for u in updates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    alone = MeanAggregator(0.5).open_round(GLOBAL)
    for u in updates:
        alone.add(*u)

    assert together.result().weights.digest() == alone.result().weights.digest()


def test_a_count_the_fold_cannot_take_exactly_or_a_misfit_is_refused_before_folding() -> None:
    sums = FoldedSums(GLOBAL, segment=3)
    with pytest.raises(AggregationError, match="count is from 1"):
        sums.add("big", trained(1), fold.MAX_COUNT + 1)
    with pytest.raises(AggregationError, match="count is from 1"):
        sums.add("none", trained(1), 0)
    with pytest.raises(AggregationError, match="does not fit"):
        sums.add("odd", Weights([("w", GLOBAL["w"])]), 3)
    assert sums.counts == {} and not any(s.any() for s in sums.sums.values())
