"""Robust rules behind the `Aggregator` seam: Krum, multi-Krum, centered clipping, bucketing.

Each rule is checked against values worked out by hand on tiny deltas; the arithmetic is in the
comments. A delta (x0, x1, y) is ``Weights([("x", [x0, x1]), ("y", [[y]])])``.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import numpy as np
import pytest

from disco.aggregation import (
    Bucketing,
    CenteredClippingAggregator,
    KrumAggregator,
    MedianAggregator,
    MultiKrumAggregator,
    TrimmedMeanAggregator,
    Update,
    bucket_groups,
    build_aggregator,
)
from disco.aggregation.clipping import automatic_tau, centered_clip
from disco.errors import AggregationError, TaskError
from disco.task import (
    CenteredClippingRule,
    KrumRule,
    MeanRule,
    MedianRule,
    MultiKrumRule,
    TrainingInfo,
    parse_aggregation,
)
from disco.weights import Weights

GLOBAL = Weights([("x", [1.0, -1.0]), ("y", [[0.5]])])


def delta(x0: float, x1: float = 0.0, y: float = 0.0) -> Weights:
    return Weights([("x", [x0, x1]), ("y", [[y]])])


def along(**points: float) -> list[Update]:
    """Updates that move only x0, by the given amounts."""
    return [Update(p, delta(v)) for p, v in points.items()]


# five updates: four close to the origin, one far away (on every tensor)
CROWD = [
    Update("a", delta(0, 0, 0)),
    Update("b", delta(1, 0, 0)),
    Update("c", delta(0, 1, 0)),
    Update("d", delta(0, 0, 1)),  # differs from a on the "y" tensor only
    Update("e", delta(10, 10, 10)),
]
# squared distances: a–b = a–c = a–d = 1, b–c = b–d = c–d = 2, a–e = 300, b–e = c–e = d–e = 281;
# n = 5, f = 1: each score sums the n − f − 2 = 2 nearest:
# a: 1 + 1 = 2, b: 1 + 2 = 3, c: 3, d: 3, e: 281 + 281 = 562
CROWD_SCORES = [2.0, 3.0, 3.0, 3.0, 562.0]


# -- Krum and multi-Krum --------------------------------------------------------------------------
def test_krum_keeps_the_update_of_lowest_score_as_it_is() -> None:
    result = KrumAggregator(f=1).aggregate(GLOBAL, CROWD)

    # a (score 2) is chosen: its delta is zero, the model stays where it was
    np.testing.assert_array_equal(result.weights["x"], [1.0, -1.0])
    np.testing.assert_array_equal(result.weights["y"], [[0.5]])
    assert [r.score for r in result.reports] == CROWD_SCORES
    assert [(r.selected, r.weight) for r in result.reports] == [(True, 1.0)] + [(False, 0.0)] * 4


def test_multi_krum_averages_the_m_lowest_and_breaks_ties_by_id() -> None:
    default = MultiKrumAggregator(f=1).aggregate(GLOBAL, CROWD)
    two = MultiKrumAggregator(f=1, m=2).aggregate(GLOBAL, CROWD)

    # m = n − f = 4: a, b, c, d, mean (1/4, 1/4, 1/4) → x = [1.25, −0.75], y = 0.75
    np.testing.assert_array_equal(default.weights["x"], [1.25, -0.75])
    np.testing.assert_array_equal(default.weights["y"], [[0.75]])
    assert [r.weight for r in default.reports] == [0.25] * 4 + [0.0]
    # m = 2: a (2), then b, c, d tie at 3 → b by id; mean (0.5, 0, 0) → x = [1.5, −1]
    np.testing.assert_array_equal(two.weights["x"], [1.5, -1.0])
    assert [r.selected for r in two.reports] == [True, True, False, False, False]
    assert [r.score for r in two.reports] == CROWD_SCORES
    assert MultiKrumAggregator(2, 3).describe() == {"rule": "multi_krum", "f": 2, "m": 3}


@pytest.mark.parametrize("rule", [KrumAggregator(f=2), MultiKrumAggregator(f=2)])
def test_krum_picks_honest_updates_when_f_outliers_are_far_away(rule: KrumAggregator) -> None:
    rng = np.random.default_rng(1)
    honest = [Update(f"h{i}", delta(*(1 + 0.1 * rng.normal(size=3)))) for i in range(5)]
    attackers = [Update("z1", delta(-50, 80, 9)), Update("z2", delta(40, -30, -70))]

    result = rule.aggregate(GLOBAL, [attackers[0], *honest, attackers[1]])

    chosen = {r.participant for r in result.reports if r.selected}
    assert chosen and chosen <= {u.participant for u in honest}
    assert len(chosen) == (1 if rule.rule == "krum" else 5)  # m = n − f = 5
    assert abs(result.weights["x"][0] - 2.0) < 0.5  # 1 + about 1


@pytest.mark.parametrize(("f", "n"), [(0, 2), (1, 4), (2, 6)])
def test_krum_needs_more_than_2f_plus_2_updates(f: int, n: int) -> None:
    updates = [Update(f"p{i}", delta(i)) for i in range(n)]
    for rule in (KrumAggregator(f), MultiKrumAggregator(f)):
        with pytest.raises(AggregationError, match=f"f={f} .* at least {2 * f + 3} updates"):
            rule.aggregate(GLOBAL, updates)
    KrumAggregator(f).aggregate(GLOBAL, [*updates, Update("last", delta(0))])  # one more is enough


def test_multi_krum_refuses_to_average_more_updates_than_there_are() -> None:
    with pytest.raises(AggregationError, match="m=6 updates but the round has only 5"):
        MultiKrumAggregator(f=1, m=6).aggregate(GLOBAL, CROWD)
    with pytest.raises(AggregationError, match="f"):
        KrumAggregator(f=-1)


@pytest.mark.parametrize(
    "rule", [KrumAggregator(1), MultiKrumAggregator(1), MultiKrumAggregator(1, 2)]
)
def test_krum_is_bit_identical_for_every_arrival_order(rule: KrumAggregator) -> None:
    results = {
        (res.weights.digest(), tuple(sorted((r.participant, r.weight) for r in res.reports)))
        for res in (rule.aggregate(GLOBAL, list(order)) for order in itertools.permutations(CROWD))
    }
    assert len(results) == 1


# -- centered clipping ----------------------------------------------------------------------------
def test_centered_clipping_follows_the_published_rule_for_two_iterations() -> None:
    rule = CenteredClippingAggregator(tau=2.0, iterations=2, momentum=0.0)

    result = rule.aggregate(GLOBAL, along(a=0, b=1, c=2, d=100))

    # v0 = 0; m = 0, 1, 2, 100 (momentum 0: the deltas)
    # iteration 1: m − v0 = 0, 1, 2, 100 → clipped to τ = 2: 0, 1, 2, 2 → v1 = 0 + 5/4 = 1.25
    # iteration 2: m − v1 = −1.25, −0.25, 0.75, 98.75 → d clipped to 2 → sum = 1.25
    #              v2 = 1.25 + 1.25/4 = 1.5625
    np.testing.assert_array_equal(result.weights["x"], [1.0 + 1.5625, -1.0])
    np.testing.assert_array_equal(result.weights["y"], [[0.5]])
    reports = {r.participant: r for r in result.reports}
    assert [reports[p].clipped for p in "abcd"] == [False, False, False, True]  # last iteration
    assert [reports[p].score for p in "abcd"] == [0.0, 1.0, 2.0, 100.0]  # ‖m_i − v0‖
    assert all(r.weight == 0.25 and r.selected for r in result.reports)


def test_centered_clipping_measures_the_norm_over_all_tensors() -> None:
    rule = CenteredClippingAggregator(tau=1.0, iterations=1, momentum=0.0)

    result = rule.aggregate(GLOBAL, [Update("a", delta(3, 0, 4))])

    # ‖(3, 0, 4)‖ = 5 > τ = 1 → (0.6, 0, 0.8): x = [1.6, −1], y = 0.5 + 0.8 = 1.3
    np.testing.assert_allclose(result.weights["x"], [1.6, -1.0], rtol=1e-6)
    np.testing.assert_allclose(result.weights["y"], [[1.3]], rtol=1e-6)
    assert result.reports[0].clipped and result.reports[0].score == 5.0


def test_centered_clipping_keeps_momentum_and_starts_from_the_last_aggregate() -> None:
    rule = CenteredClippingAggregator(tau=1.5, iterations=1, momentum=0.5)

    first = rule.aggregate(GLOBAL, along(a=2, b=4))
    second = rule.aggregate(first.weights, along(a=6, b=2))

    # round 1: first seen, m_a = 2, m_b = 4; from v = 0: 2, 4 → clipped to 1.5, 1.5 → v = 1.5
    np.testing.assert_array_equal(first.weights["x"], [1.0 + 1.5, -1.0])
    assert [r.clipped for r in first.reports] == [True, True]
    # round 2: m_a = 0.5·6 + 0.5·2 = 4, m_b = 0.5·2 + 0.5·4 = 3; from v = 1.5: 2.5, 1.5
    #          → 1.5 (clipped), 1.5 (not: ‖1.5‖ ≤ τ) → v = 1.5 + 3/2 = 3
    np.testing.assert_array_equal(second.weights["x"], [2.5 + 3.0, -1.0])
    assert [(r.clipped, r.score) for r in second.reports] == [(True, 2.5), (False, 1.5)]


def test_a_participant_keeps_its_momentum_through_a_round_it_skips() -> None:
    rule = CenteredClippingAggregator(tau=1000.0, iterations=1, momentum=0.5)

    r1 = rule.aggregate(GLOBAL, along(a=2, b=4))  # m_a = 2, m_b = 4, v = 3
    r2 = rule.aggregate(r1.weights, along(b=0))  # a absent; m_b = 0.5·0 + 0.5·4 = 2, v = 2
    r3 = rule.aggregate(r2.weights, along(a=6))  # m_a = 0.5·6 + 0.5·2 = 4 (kept), v = 4

    assert [float(r.weights["x"][0]) for r in (r1, r2, r3)] == [4.0, 6.0, 10.0]


def test_a_retried_round_does_not_apply_the_momentum_twice() -> None:
    rule = CenteredClippingAggregator(tau=1.0, iterations=2, momentum=0.9)
    first = rule.aggregate(GLOBAL, along(a=2, b=4))
    updates = along(a=1, b=3, c=-2)

    once = rule.aggregate(first.weights, updates, round=1)
    again = rule.aggregate(first.weights, updates, round=1)  # the server retries round 1

    assert once.weights == again.weights and once.reports == again.reports
    fresh = CenteredClippingAggregator(tau=1.0, iterations=2, momentum=0.9)
    fresh.aggregate(GLOBAL, along(a=2, b=4))
    assert fresh.aggregate(first.weights, updates).weights == once.weights


def test_a_round_that_leaves_the_model_unchanged_is_not_taken_for_a_retry() -> None:
    rule = CenteredClippingAggregator(tau=10.0, iterations=1, momentum=0.5)
    still = rule.aggregate(GLOBAL, along(a=1, b=-1), round=0)  # the two cancel out
    assert still.weights == GLOBAL

    step = rule.aggregate(GLOBAL, along(a=1, b=1), round=1)

    # momenta: a = 0.5·1 + 0.5·1 = 1, b = 0.5·1 + 0.5·(−1) = 0; v = 0 + (1 + 0)/2 = 0.5
    np.testing.assert_allclose(step.weights["x"] - GLOBAL["x"], [0.5, 0.0])


def test_centered_clipping_is_bit_identical_for_every_arrival_order() -> None:
    rng = np.random.default_rng(2)
    rounds = [
        [Update(p, delta(*rng.normal(size=3))) for p in "abcde"],
        [Update(p, delta(*rng.normal(size=3))) for p in "abcde"],
    ]
    digests = set()
    for order in itertools.permutations(range(5)):
        for bucket_size in (1, 2):
            rule = CenteredClippingAggregator(0.5, 2, 0.9, bucket_size, secret="s")
            weights = GLOBAL
            for updates in rounds:
                weights = rule.aggregate(weights, [updates[i] for i in order]).weights
            digests.add((bucket_size, weights.digest()))
    assert len(digests) == 2


@pytest.mark.parametrize(
    "settings", [{"tau": 0.0}, {"iterations": 0}, {"momentum": 1.0}, {"bucket_size": 0}]
)
def test_centered_clipping_refuses_bad_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(AggregationError):
        CenteredClippingAggregator(**settings)


# -- bucketing ------------------------------------------------------------------------------------
def test_buckets_are_cut_from_a_hash_of_the_round_and_the_ids() -> None:
    ids = ["p1", "p2", "p3", "p4", "p5"]
    key = GLOBAL.digest()

    groups = bucket_groups(ids, 2, key)

    order = sorted(ids, key=lambda p: hashlib.sha256(f"{key}:{p}".encode()).hexdigest())
    assert groups == [order[0:2], order[2:4], order[4:5]]  # ⌈5/2⌉ = 3 buckets of at most 2
    assert all(bucket_groups(list(p), 2, key) == groups for p in itertools.permutations(ids))
    assert bucket_groups(ids, 5, key) == [order] and len(bucket_groups(ids, 1, key)) == 5
    assert bucket_groups(ids, 2, "another round") != groups  # (for these ids and keys)


def test_bucketing_then_median_differs_from_the_median() -> None:
    updates = along(a=0, b=0, c=0, d=8)

    plain = MedianAggregator().aggregate(GLOBAL, updates)
    bucketed = Bucketing(MedianAggregator(), 2).aggregate(GLOBAL, updates)

    # median of 0, 0, 0, 8 = 0; in two buckets of two, whichever they are, the median of the two
    # bucket means is their mean, the mean of all four: 8/4 = 2
    np.testing.assert_array_equal(plain.weights["x"], [1.0, -1.0])
    np.testing.assert_array_equal(bucketed.weights["x"], [3.0, -1.0])
    assert [r.weight for r in bucketed.reports] == [0.25] * 4  # bucket's 1/2, over 2 members


def test_each_participant_is_reported_as_its_bucket() -> None:
    updates = [Update(f"p{i}", delta(i, 0, 0), num_samples=i + 1) for i in range(10)]
    updates[3] = Update("p3", delta(500, 500, 500))  # one far update spoils one bucket
    groups = bucket_groups([u.participant for u in updates], 2, "s" + GLOBAL.digest())
    spoiled = next(g for g in groups if "p3" in g)

    result = Bucketing(MultiKrumAggregator(f=1), 2, secret="s").aggregate(GLOBAL, updates)

    # 5 buckets, f = 1: the 4 buckets of lowest score are averaged, each weighs 1/4, 1/8 a member
    report = {r.participant: r for r in result.reports}
    for group in groups:
        expected = (group != spoiled, 0.125 if group != spoiled else 0.0)
        assert {(report[p].selected, report[p].weight) for p in group} == {expected}
        assert len({report[p].score for p in group}) == 1
    assert [r.participant for r in result.reports] == [u.participant for u in updates]


@pytest.mark.parametrize(
    "inner",
    [MedianAggregator(), TrimmedMeanAggregator(0.2), KrumAggregator(0), MultiKrumAggregator(0)],
)
def test_bucketing_is_bit_identical_for_every_arrival_order(inner: Any) -> None:
    rng = np.random.default_rng(3)
    updates = [Update(p, delta(*rng.normal(size=3))) for p in ("a", "b", "c", "d", "e", "f")]
    rule = Bucketing(inner, 2)
    results = {
        (res.weights.digest(), tuple(sorted((r.participant, r.weight) for r in res.reports)))
        for res in (
            rule.aggregate(GLOBAL, list(order)) for order in itertools.permutations(updates[:5])
        )
    }
    assert len(results) == 1
    assert rule.rule == inner.rule and rule.describe()["bucket_size"] == 2


def test_krums_precondition_counts_buckets() -> None:
    updates = [Update(f"p{i}", delta(i)) for i in range(8)]  # 8 updates → 4 buckets of 2

    with pytest.raises(AggregationError, match=r"at least 5 buckets .* got 4.* at least 9 updates"):
        Bucketing(KrumAggregator(f=1), 2).aggregate(GLOBAL, updates)
    Bucketing(KrumAggregator(f=1), 2).aggregate(GLOBAL, [*updates, Update("p8", delta(8))])


# -- from a task's settings -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("aggregation", "kind", "described"),
    [
        (MeanRule(max_share=1), "MeanAggregator", {"rule": "mean", "max_share": 1.0}),
        ("median", "MedianAggregator", {"rule": "median"}),
        (MedianRule(bucket_size=3), "Bucketing", {"rule": "median", "bucket_size": 3}),
        (
            {"rule": "trimmed_mean", "beta": 0.2, "bucket_size": 2},
            "Bucketing",
            {"rule": "trimmed_mean", "beta": 0.2, "bucket_size": 2},
        ),
        (KrumRule(f=2), "KrumAggregator", {"rule": "krum", "f": 2}),
        (
            MultiKrumRule(f=1, m=3, bucket_size=2),
            "Bucketing",
            {"rule": "multi_krum", "f": 1, "m": 3, "bucket_size": 2},
        ),
        ("multi_krum", "MultiKrumAggregator", {"rule": "multi_krum", "f": 1, "m": None}),
        (
            CenteredClippingRule(bucket_size=2),
            "CenteredClippingAggregator",
            {
                "rule": "centered_clipping",
                "tau": None,
                "iterations": 1,
                "momentum": 0.5,
                "bucket_size": 2,
            },
        ),
    ],
)
def test_build_aggregator_builds_each_config(aggregation: Any, kind: str, described: Any) -> None:
    training = TrainingInfo(data_type="text", min_participants=9, aggregation=aggregation)
    rule = build_aggregator(training)

    assert type(rule).__name__ == kind
    assert rule.describe() == described
    assert rule.rule == described["rule"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mean", MeanRule()),
        ("krum:f=2", KrumRule(f=2)),
        ("multi_krum:f=1,m=5", MultiKrumRule(f=1, m=5)),
        (" multi_krum : f = 1 , m = 5 ", MultiKrumRule(f=1, m=5)),
        ("centered_clipping:tau=0.5,momentum=0.9", CenteredClippingRule(tau=0.5, momentum=0.9)),
        ("centered_clipping:tau=2", CenteredClippingRule(tau=2.0)),
        ("median:bucket_size=2", MedianRule(bucket_size=2)),
        ("mean:max_share=1", MeanRule(max_share=1.0)),
    ],
)
def test_parse_aggregation_reads_the_command_line_syntax(text: str, expected: Any) -> None:
    assert parse_aggregation(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("krumm", "unknown aggregation rule 'krumm' (known: mean, median, trimmed_mean, krum, "),
        ("", "unknown aggregation rule ''"),
        ("krum:g=2", "g: is not a setting of krum (its settings: f, bucket_size)"),
        ("median:beta=0.1", "beta: is not a setting of median (its settings: bucket_size)"),
        ("krum:f=1.5", "f: should be a whole number"),
        ("krum:f=-1", "f: must be at least 0"),
        ("krum:f=two", "f: should be a whole number"),
        ("centered_clipping:tau=0", "tau: must be greater than 0"),
        ("centered_clipping:momentum=1", "momentum: must be less than 1"),
        ("multi_krum:m=0", "m: must be at least 1"),
        ("krum:f", "write each setting as name=value"),
        ("krum:f=1,f=2", "f is given twice"),
    ],
)
def test_parse_aggregation_says_what_is_wrong_in_plain_words(text: str, message: str) -> None:
    with pytest.raises(TaskError) as info:
        parse_aggregation(text)

    assert message in str(info.value)
    for jargon in ("Input should be", "Input tag", "discriminator", "Extra inputs"):
        assert jargon not in str(info.value)


def test_automatic_tau_is_the_median_distance_so_a_minority_cannot_set_it() -> None:
    start = np.zeros(2)
    honest = [np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([3.0, 0.0])]
    attackers = [np.array([1000.0, 0.0]), np.array([0.0, -1000.0])]

    assert automatic_tau([*honest, *attackers], start) == 3.0  # distances 1, 2, 3, 1000, 1000
    v, clipped = centered_clip([*honest, *attackers], start, None)

    # each attacker moves v by at most τ/n = 3/5 along its direction
    np.testing.assert_allclose(v, [(1 + 3 + 3) / 5, (2 - 3) / 5])
    assert clipped == [False, False, False, True, True]


def test_pairwise_distances_match_the_direct_ones_block_by_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import disco.aggregation.krum as krum

    monkeypatch.setattr(krum, "_BLOCK_VALUES", 7)  # blocks of 1 value for 6 updates: many blocks
    rng = np.random.default_rng(5)
    deltas = [
        Weights([("a", rng.normal(size=(3, 4))), ("b", rng.normal(size=5))]) for _ in range(6)
    ]

    dist = krum.pairwise_distances(deltas)

    flat = [d.flatten().astype(np.float64) for d in deltas]
    direct = np.array([[np.sum((x - y) ** 2) for y in flat] for x in flat])
    np.testing.assert_allclose(dist, direct, rtol=1e-12, atol=1e-12)
    assert np.all(np.diag(dist) == 0)
