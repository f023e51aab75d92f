"""The `Aggregator` seam: rules over deltas, per-participant reports, the FedAvg share cap."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from disco.aggregation import (
    Aggregator,
    MeanAggregator,
    MedianAggregator,
    ParticipantReport,
    TrimmedMeanAggregator,
    Update,
    capped_shares,
)
from disco.errors import AggregationError
from disco.task import TrainingInfo
from disco.weights import Weights

GLOBAL = Weights([("x", [1.0, -1.0]), ("y", [[0.5]])])


def delta(x: list[float], y: float) -> Weights:
    return Weights([("x", x), ("y", [[y]])])


def test_mean_applies_the_sample_weighted_mean_of_the_deltas() -> None:
    updates = [Update("a", delta([1.0, 2.0], 0.0), 1), Update("b", delta([4.0, 8.0], 4.0), 3)]

    result = MeanAggregator().aggregate(GLOBAL, updates)

    # x: 1 + (1*1 + 3*4)/4 = 4.25, -1 + (1*2 + 3*8)/4 = 5.5; y: 0.5 + 12/4 = 3.5
    np.testing.assert_array_equal(result.weights["x"], [4.25, 5.5])
    np.testing.assert_array_equal(result.weights["y"], [[3.5]])
    assert result.reports == (ParticipantReport("a", 0.25), ParticipantReport("b", 0.75))


def test_capped_shares_by_hand() -> None:
    assert capped_shares([1, 3]) == [0.25, 0.75]
    assert capped_shares([1, 3], 0.5) == [0.5, 0.5]
    # 40 → 0.3; then 30 would get 0.7·30/60 = 0.35 → 0.3; 10 and 20 share the 0.4 left
    np.testing.assert_allclose(capped_shares([10, 20, 30, 40], 0.3), [0.4 / 3, 0.8 / 3, 0.3, 0.3])
    assert capped_shares([5], 0.1) == [1.0]  # never below an equal split
    assert sum(capped_shares([1, 2, 2**40, 7], 0.4)) == pytest.approx(1.0)
    with pytest.raises(AggregationError, match="max_share"):
        capped_shares([1, 2], 0.0)


def test_a_participant_claiming_2_to_the_40_samples_gets_no_more_than_the_cap() -> None:
    honest = [Update(f"h{i}", delta([0.0, 0.0], 0.0), 500) for i in range(3)]
    liar = Update("liar", delta([100.0, 100.0], 100.0), 2**40)

    result = MeanAggregator(max_share=0.25).aggregate(GLOBAL, [*honest, liar])

    report = {r.participant: r for r in result.reports}
    assert report["liar"].weight == pytest.approx(0.25) and report["liar"].clipped
    assert not report["h0"].clipped and report["h0"].weight == pytest.approx(0.25)
    np.testing.assert_allclose(result.weights["x"], [1.0 + 25.0, -1.0 + 25.0])
    uncapped = MeanAggregator().aggregate(GLOBAL, [*honest, liar])
    assert uncapped.weights["x"][0] > 1.0 + 98.0  # without the cap the liar takes it over


def test_mean_is_bit_identical_for_every_arrival_order() -> None:
    rng = np.random.default_rng(0)
    updates = [
        Update(f"p{i}", delta(list(rng.normal(size=2)), float(rng.normal())), int(n))
        for i, n in enumerate(rng.integers(1, 1000, size=6))
    ]
    digests = {
        MeanAggregator(max_share=0.3).aggregate(GLOBAL, list(order)).weights.digest()
        for order in itertools.permutations(updates)
    }
    assert len(digests) == 1


def test_median_and_trimmed_mean_work_on_deltas_and_weigh_everyone_equally() -> None:
    updates = [
        Update("a", delta([1.0, 0.0], 1.0), 10),
        Update("b", delta([2.0, 0.0], 2.0), 1),
        Update("c", delta([300.0, 0.0], -50.0), 1000),
    ]
    med = MedianAggregator().aggregate(GLOBAL, updates)
    np.testing.assert_array_equal(med.weights["x"], [3.0, -1.0])
    np.testing.assert_array_equal(med.weights["y"], [[1.5]])
    assert [r.weight for r in med.reports] == [pytest.approx(1 / 3)] * 3
    trimmed = TrimmedMeanAggregator(beta=0.34).aggregate(GLOBAL, updates)  # drops 1 each end
    np.testing.assert_array_equal(trimmed.weights["x"], [3.0, -1.0])
    assert TrimmedMeanAggregator().describe() == {"rule": "trimmed_mean", "beta": 0.1}


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ([], "nothing to aggregate"),
        ([Update("a", delta([1.0, 1.0], 1.0)), Update("a", delta([1.0, 1.0], 1.0))], "one update"),
        ([Update("a", Weights([("x", [1.0])]))], r"missing \[.y.\]"),
        ([Update("a", delta([float("nan"), 1.0], 1.0))], "not finite"),
    ],
)
def test_bad_rounds_are_refused(updates: list[Update], message: str) -> None:
    with pytest.raises(AggregationError, match=message):
        MeanAggregator().aggregate(GLOBAL, updates)


class FirstOnly(Aggregator):
    """A toy rule for the seam: keeps only the first participant by name."""

    rule = "first_only"

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        first = min(u.participant for u in updates)
        chosen = next(u for u in updates if u.participant == first)
        return chosen.delta, [
            ParticipantReport(u.participant, 1.0 if u is chosen else 0.0, u is chosen)
            for u in updates
        ]


def test_any_rule_plugs_in_through_combine() -> None:
    updates = [Update("b", delta([5.0, 5.0], 5.0)), Update("a", delta([1.0, 1.0], 1.0))]
    result = FirstOnly().aggregate(GLOBAL, updates)
    np.testing.assert_array_equal(result.weights["x"], [2.0, 0.0])
    assert [(r.participant, r.selected) for r in result.reports] == [("b", False), ("a", True)]


def test_a_task_names_only_the_rules_there_are() -> None:
    with pytest.raises(ValueError, match="geometric_median"):
        TrainingInfo(data_type="text", aggregation="geometric_median")
