"""Cosine trust: the updates that point the way of the model's recent steps, averaged.

Checked against values worked out by hand on tiny deltas; the arithmetic is in the comments. A
delta (x0, x1, y) is ``Weights([("x", [x0, x1]), ("y", [[y]])])``; norms and cosines are taken
over both tensors together.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from disco.aggregation import (
    CosineTrustAggregator,
    MeanAggregator,
    Update,
    build_aggregator,
)
from disco.aggregation.trust import cosine_trust
from disco.errors import AggregationError, TaskError
from disco.task import CosineTrustRule, TrainingInfo, parse_aggregation
from disco.weights import Weights

GLOBAL = Weights([("x", [1.0, -1.0]), ("y", [[0.5]])])


def delta(x0: float, x1: float = 0.0, y: float = 0.0) -> Weights:
    return Weights([("x", [x0, x1]), ("y", [[y]])])


def step_along_x0(rule: CosineTrustAggregator) -> Weights:
    """Combine a first round that moves the model by (2, 0, 0); the model it leads to."""
    # every delta is (2, 0, 0), and so is their median: cosines 1, equal weights
    first = rule.aggregate(GLOBAL, [Update(p, delta(2.0)) for p in ("a", "b", "c")])
    np.testing.assert_array_equal(first.weights["x"], [3.0, -1.0])
    return first.weights


# a round after the model moved along x0: reference direction (1, 0, 0)
# participant, delta, claimed count: norm, cosine
HAND = [
    Update("a", delta(3, 4, 0), 10),  # norm 5, cos 3/5 = 0.6: trusted
    Update("b", delta(2, 0, 0), 30),  # norm 2, cos 1: trusted
    Update("c", delta(0, 0, 1), 20),  # norm 1, cos 0: not trusted
    Update("d", delta(-4, 3, 0), 2**40),  # norm 5, cos −0.8: not trusted, whatever it claims
    Update("e", delta(1.2, 1.6, 0), 20),  # norm 2, cos 0.6: trusted
]
# 3 of 5 trusted: a majority, no fallback
# median norm: of 5, 2, 1, 5, 2 → 2, so M = 4; median count: of 10, 30, 20, 2^40, 20 → 20
# counts capped at 20: a 10, b 20, c 20, d 20, e 20; weights: a 10, b 20, e 20; total 50
# a is clipped to norm 4: (3, 4, 0)·4/5 = (2.4, 3.2, 0); b and e are not (norm 2)
# Δ = 10/50·(2.4, 3.2, 0) + 20/50·(2, 0, 0) + 20/50·(1.2, 1.6, 0)
#   = (0.48 + 0.8 + 0.48, 0.64 + 0.64, 0)
HAND_DELTA = (1.76, 1.28, 0.0)


def test_cosine_trust_averages_trusted_updates_by_capped_count_and_clips_long_ones() -> None:
    rule = CosineTrustAggregator()
    model = step_along_x0(rule)

    result = rule.aggregate(model, HAND)

    np.testing.assert_allclose(
        result.weights["x"] - model["x"], HAND_DELTA[:2], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(result.weights["y"], model["y"])
    report = {r.participant: r for r in result.reports}
    assert [report[p].score for p in "abcde"] == pytest.approx([0.6, 1.0, 0.0, -0.8, 0.6])
    assert [report[p].weight for p in "abcde"] == pytest.approx([0.2, 0.4, 0, 0, 0.4])
    assert [report[p].selected for p in "abcde"] == [True, True, False, False, True]
    assert [report[p].clipped for p in "abcde"] == [True, False, False, False, False]
    assert rule.describe() == {
        "rule": "cosine_trust",
        "min_cosine": 0.0,
        "momentum": 0.9,
        "reference": "recent_steps",
        "fallback": False,
    }


def test_the_pure_function_gives_the_same_hand_values() -> None:
    combined, trusts = cosine_trust(
        [u.delta for u in HAND], [u.num_samples for u in HAND], delta(1.0)
    )

    assert combined is not None
    np.testing.assert_allclose(combined["x"], HAND_DELTA[:2], rtol=1e-6)
    assert [t.count for t in trusts] == [10, 20, 20, 20, 20]
    assert [t.factor for t in trusts] == pytest.approx([0.8, 1.0, 1.0, 0.8, 1.0])
    assert [t.trusted for t in trusts] == [True, True, False, False, True]
    assert [t.weight for t in trusts] == [10, 20, 0, 0, 20]


def test_the_pure_function_gives_none_when_fewer_than_half_are_trusted() -> None:
    deltas = [delta(1.0), delta(-1.0), delta(0.0, 1.0)]  # cosines 1, −1, 0: 1 of 3 trusted

    combined, trusts = cosine_trust(deltas, [1, 1, 1], delta(1.0))

    assert combined is None
    assert [t.trusted for t in trusts] == [True, False, False]


def test_min_cosine_leaves_out_updates_that_do_not_point_closely_enough() -> None:
    rule = CosineTrustAggregator(min_cosine=0.7)
    model = step_along_x0(rule)
    updates = [
        Update("a", delta(3, 4, 0)),  # cos 0.6: out
        Update("b", delta(2, 0, 0)),  # cos 1: in
        Update("e", delta(1.2, 1.6, 0)),  # cos 0.6: out
        Update("f", delta(2, 0.5, 0)),  # cos 2/√4.25 ≈ 0.97: in
    ]

    result = rule.aggregate(model, updates)

    # 2 of 4 trusted (half: enough); norms 5, 2, 2, √4.25 → M ≈ 4.06, b and f unclipped
    # Δ = ((2, 0, 0) + (2, 0.5, 0))/2 = (2, 0.25, 0)
    np.testing.assert_allclose(result.weights["x"], [5.0, -0.75], rtol=1e-6)
    assert [r.selected for r in result.reports] == [False, True, False, True]
    assert [r.weight for r in result.reports] == [0.0, 0.5, 0.0, 0.5]


def test_fewer_than_half_trusted_falls_back_to_the_median() -> None:
    rule = CosineTrustAggregator(min_cosine=0.7)
    model = step_along_x0(rule)

    result = rule.aggregate(model, HAND)

    # only b (cos 1) passes 0.7: 1 of 5 → the coordinate-wise median of the deltas:
    # x0 of 3, 2, 0, −4, 1.2 → 1.2; x1 of 4, 0, 0, 3, 1.6 → 1.6; y of 0, 0, 1, 0, 0 → 0
    np.testing.assert_allclose(result.weights["x"], [3 + 1.2, -1 + 1.6], rtol=1e-6)
    np.testing.assert_array_equal(result.weights["y"], model["y"])
    assert [r.weight for r in result.reports] == pytest.approx([0.2] * 5)
    assert rule.describe()["fallback"] is True


def test_the_first_round_takes_the_median_of_the_deltas_as_its_reference() -> None:
    rule = CosineTrustAggregator()
    updates = [
        Update("a", delta(4, 3, 0)),
        Update("b", delta(3, -4, 0)),
        Update("c", delta(-1, 0, 0)),
    ]

    result = rule.aggregate(GLOBAL, updates)

    # median per value: x0 of 4, 3, −1 → 3; x1 of 3, −4, 0 → 0; y 0 → reference (3, 0, 0)
    # cosines: a 4/5 = 0.8, b 3/5 = 0.6, c −1; norms 5, 5, 1 → M = 10, nothing clipped
    # a and b trusted (counts 1) → Δ = ((4, 3, 0) + (3, −4, 0))/2 = (3.5, −0.5, 0)
    np.testing.assert_allclose(result.weights["x"], [4.5, -1.5], rtol=1e-6)
    assert [r.score for r in result.reports] == pytest.approx([0.8, 0.6, -1.0])
    assert [r.weight for r in result.reports] == pytest.approx([0.5, 0.5, 0.0])
    assert rule.describe()["reference"] == "median"


def test_the_second_rounds_reference_is_the_change_the_first_round_made() -> None:
    rule = CosineTrustAggregator()
    first = rule.aggregate(GLOBAL, [Update("a", delta(0, 1)), Update("b", delta(0, 3))])
    # round 1: median (0, 2, 0); cosines 1, 1; norms 1, 3 → M = 4, nothing clipped; shares 1/2
    # → Δ = (0, 2, 0): the model moves along x1
    np.testing.assert_array_equal(first.weights["x"], [1.0, 1.0])

    second = rule.aggregate(first.weights, [Update("a", delta(5, 1)), Update("b", delta(5, -1))])

    # round 2: reference (0, 2, 0) — not this round's median (5, 0, 0): b points away
    # (whatever the momentum: there is no earlier direction to keep); 1 of 2 is half: enough
    assert [r.score for r in second.reports] == pytest.approx([1 / 26**0.5, -1 / 26**0.5])
    assert [r.selected for r in second.reports] == [True, False]
    np.testing.assert_allclose(second.weights["x"], [6.0, 2.0])


@pytest.mark.parametrize("momentum", [0.5, 0.0])
def test_the_reference_keeps_momentum_of_the_models_steps(momentum: float) -> None:
    rule = CosineTrustAggregator(momentum=momentum)
    model = step_along_x0(rule)  # step 1: (2, 0, 0), the reference of round 2
    # round 2: cosines 1/√5 with (1, 0, 0), all trusted → step 2 = (1, 2, 0)
    model = rule.aggregate(model, [Update(p, delta(1, 2)) for p in ("a", "b", "c")]).weights
    assert rule.describe()["fallback"] is False
    updates = [Update("a", delta(1, 0)), Update("b", delta(0, 1)), Update("c", delta(-1, 1))]

    result = rule.aggregate(model, updates)

    shift = result.weights["x"] - model["x"]
    scores = [r.score for r in result.reports]
    # norms 1, 1, √2 → M = 2: nothing clipped
    if momentum == 0.5:
        # reference 0.5·(2, 0, 0) + 0.5·(1, 2, 0) = (1.5, 1, 0), norm √3.25
        # cosines a 1.5/√3.25, b 1/√3.25, c −0.5/(√2·√3.25) < 0 → Δ = (0.5, 0.5, 0)
        r = 3.25**0.5
        assert scores == pytest.approx([1.5 / r, 1 / r, -0.5 / (2**0.5 * r)])
        np.testing.assert_allclose(shift, [0.5, 0.5], rtol=1e-6)
    else:
        # reference (1, 2, 0), the last step alone: cosines 1/√5, 2/√5, 1/√10: all trusted
        # Δ = ((1, 0) + (0, 1) + (−1, 1))/3 = (0, 2/3, 0)
        assert scores == pytest.approx([1 / 5**0.5, 2 / 5**0.5, 1 / 10**0.5])
        np.testing.assert_allclose(shift, [0.0, 2 / 3], atol=1e-6)


def test_after_a_fallback_the_reference_starts_afresh_from_the_last_step() -> None:
    rule = CosineTrustAggregator(momentum=0.9)
    model = step_along_x0(rule)  # step 1: (2, 0, 0)
    # round 2: cosines 0 with (1, 0, 0) → nobody trusted → median, step 2 = (0, 2, 0)
    model = rule.aggregate(model, [Update(p, delta(0, 2)) for p in ("a", "b", "c")]).weights
    assert rule.describe()["fallback"] is True
    updates = [Update("a", delta(1, 0)), Update("b", delta(0, 1)), Update("c", delta(0.5, 1))]

    result = rule.aggregate(model, updates)

    # reference (0, 2, 0) alone, not 0.9·(2, 0, 0) + 0.1·(0, 2, 0) (with which a would be
    # trusted): a cos 0 → out; b 1, c 1/√1.25 → Δ = ((0, 1) + (0.5, 1))/2 = (0.25, 1, 0)
    assert [r.selected for r in result.reports] == [False, True, True]
    np.testing.assert_allclose(result.weights["x"] - model["x"], [0.25, 1.0], rtol=1e-6)
    assert rule.describe()["fallback"] is False


def test_no_update_pointing_the_models_way_falls_back_to_the_median() -> None:
    rule = CosineTrustAggregator()
    model = step_along_x0(rule)
    updates = [
        Update("a", delta(-1, 0, 0)),
        Update("b", delta(-3, 0, 0)),
        Update("c", delta(0, 0, -1)),
    ]

    result = rule.aggregate(model, updates)

    # cosines −1, −1, 0: nobody is trusted → median per value: x0 of −1, −3, 0 → −1; y 0
    np.testing.assert_array_equal(result.weights["x"], [2.0, -1.0])
    np.testing.assert_array_equal(result.weights["y"], [[0.5]])
    assert [(r.weight, r.selected, r.score) for r in result.reports] == [
        (1 / 3, True, -1.0),
        (1 / 3, True, -1.0),
        (1 / 3, True, 0.0),
    ]
    assert rule.describe()["fallback"] is True


def test_a_liar_claiming_2_to_the_40_samples_with_minus_its_delta_gets_no_weight() -> None:
    honest = [
        Update("h1", delta(1, 2, 2), 300),
        Update("h2", delta(2, 1, 2), 300),
        Update("h3", delta(2, 2, 1), 300),
    ]
    liar = Update("liar", delta(-2, -2, -1), 2**40)  # −Δ of an honest delta, 2^40 samples
    later = CosineTrustAggregator()
    model = step_along_x0(later)

    first = CosineTrustAggregator().aggregate(GLOBAL, [*honest, liar])
    result = later.aggregate(model, [*honest, liar])

    # every norm is 3: nothing is clipped; counts capped at the median, 300: all equal
    # first round: median per value (1.5, 1.5, 1.5); honest cosines 5/(3√3), the liar's minus
    # that → the honest deltas weigh 1/3 each: Δ = (5/3, 5/3, 5/3)
    np.testing.assert_allclose(first.weights["x"], [1 + 5 / 3, -1 + 5 / 3], rtol=1e-6)
    # later round, reference (1, 0, 0): cosines 1/3, 2/3, 2/3, the liar −2/3: the same mean
    np.testing.assert_allclose(result.weights["x"], [3 + 5 / 3, -1 + 5 / 3], rtol=1e-6)
    np.testing.assert_allclose(result.weights["y"], [[0.5 + 5 / 3]], rtol=1e-6)
    for res, cosine in ((first, -5 / 27**0.5), (result, -2 / 3)):
        report = {r.participant: r for r in res.reports}
        assert report["liar"].weight == 0.0 and not report["liar"].selected
        assert report["liar"].score == pytest.approx(cosine)
    assert [r.weight for r in result.reports] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    taken_over = MeanAggregator(max_share=1).aggregate(GLOBAL, [*honest, liar])
    assert taken_over.weights["x"][0] < -0.9  # FedAvg without a cap follows the liar


def test_a_scaled_update_counts_as_no_longer_than_twice_the_median_update() -> None:
    rule = CosineTrustAggregator()
    updates = [Update(p, delta(1.0)) for p in ("a", "b", "c")] + [Update("z", delta(1000.0))]

    result = rule.aggregate(GLOBAL, updates)

    # all point the same way (cosine 1); median norm 1, M = 2: z is clipped to (2, 0, 0)
    # → Δ = (1 + 1 + 1 + 2)/4 = (1.25, 0, 0)
    np.testing.assert_allclose(result.weights["x"], [2.25, -1.0])
    assert [r.clipped for r in result.reports] == [False, False, False, True]


def test_a_retried_round_uses_the_same_reference() -> None:
    rule = CosineTrustAggregator()
    model = step_along_x0(rule)
    updates = [Update("a", delta(1, 1)), Update("b", delta(1, -1)), Update("c", delta(2, 3))]

    once = rule.aggregate(model, updates, round=1)
    again = rule.aggregate(model, updates, round=1)  # the server retries round 1
    after = rule.aggregate(once.weights, updates, round=2)

    assert once == again
    fresh = CosineTrustAggregator()
    step_along_x0(fresh)
    fresh.aggregate(model, updates, round=1)
    assert fresh.aggregate(once.weights, updates, round=2) == after


def test_cosine_trust_is_bit_identical_for_every_arrival_order() -> None:
    rng = np.random.default_rng(2)
    rounds = [
        [
            Update(p, delta(*(1 + rng.normal(size=3))), int(n))
            for p, n in zip("abcde", range(1, 6), strict=True)
        ]
        for _ in range(3)  # the third round keeps momentum
    ]
    results = set()
    for order in itertools.permutations(range(5)):
        rule = CosineTrustAggregator()
        weights = GLOBAL
        for updates in rounds:
            res = rule.aggregate(weights, [updates[i] for i in order])
            weights = res.weights
        results.add(
            (weights.digest(), tuple(sorted((r.participant, r.weight) for r in res.reports)))
        )
    assert len(results) == 1


@pytest.mark.parametrize(
    "settings", [{"min_cosine": -0.1}, {"min_cosine": 1.0}, {"momentum": 1.0}, {"momentum": -1}]
)
def test_cosine_trust_refuses_bad_settings(settings: dict[str, float]) -> None:
    with pytest.raises(AggregationError, match=next(iter(settings))):
        CosineTrustAggregator(**settings)


@pytest.mark.parametrize(
    ("aggregation", "described"),
    [
        ("cosine_trust", {"rule": "cosine_trust", "min_cosine": 0.0, "momentum": 0.9}),
        (
            CosineTrustRule(min_cosine=0.2, momentum=0),
            {"rule": "cosine_trust", "min_cosine": 0.2, "momentum": 0.0},
        ),
    ],
)
def test_build_aggregator_builds_cosine_trust(aggregation: Any, described: Any) -> None:
    rule = build_aggregator(TrainingInfo(data_type="text", aggregation=aggregation))

    assert isinstance(rule, CosineTrustAggregator)
    assert rule.describe() == described


def test_the_command_line_syntax_reads_cosine_trust() -> None:
    assert parse_aggregation("cosine_trust") == CosineTrustRule()
    assert parse_aggregation("cosine_trust:min_cosine=0.25") == CosineTrustRule(min_cosine=0.25)
    assert parse_aggregation("cosine_trust:momentum=0") == CosineTrustRule(momentum=0.0)
    with pytest.raises(TaskError, match="min_cosine: must be less than 1"):
        parse_aggregation("cosine_trust:min_cosine=1")
    with pytest.raises(
        TaskError, match=r"is not a setting of cosine_trust \(its settings: min_cosine, momentum"
    ):
        parse_aggregation("cosine_trust:bucket_size=2")
