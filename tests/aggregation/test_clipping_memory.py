"""Centered clipping forgets a participant's momentum after a long absence (bounded memory)."""

from __future__ import annotations

import pytest

from disco.aggregation import CenteredClippingAggregator, Update
from disco.aggregation.clipping import FORGET_AFTER_ROUNDS
from disco.weights import Weights

GLOBAL = Weights([("x", [1.0, -1.0])])


def along(**points: float) -> list[Update]:
    """Updates that move only x[0], by the given amounts."""
    return [Update(p, Weights([("x", [v, 0.0])])) for p, v in points.items()]


def step_when_back(absent: int) -> float:
    """The combined step of the round in which `a` comes back after `absent` rounds away.

    No clipping (τ huge) and one iteration: the step is the mean momentum of the round's senders.
    """
    rule = CenteredClippingAggregator(tau=1e9, iterations=1, momentum=0.5)
    weights = rule.aggregate(GLOBAL, along(a=2, b=2)).weights  # m_a = 2
    for _ in range(absent):
        weights = rule.aggregate(weights, along(b=2)).weights
    back = rule.aggregate(weights, along(a=6)).weights
    return float(back["x"][0] - weights["x"][0])


@pytest.mark.parametrize(
    ("absent", "step"),
    [
        (FORGET_AFTER_ROUNDS, 0.5 * 6 + 0.5 * 2),  # remembered: its momentum goes on
        (FORGET_AFTER_ROUNDS + 1, 6.0),  # forgotten: starts again from its update
    ],
)
def test_a_participant_absent_longer_than_the_limit_loses_its_momentum(
    absent: int, step: float
) -> None:
    assert step_when_back(absent) == step


def test_the_memory_holds_only_recent_participants() -> None:
    """A new participant every round, for three times the limit: at most the limit + 1 kept."""
    rule = CenteredClippingAggregator(momentum=0.9)
    weights = GLOBAL
    for r in range(3 * FORGET_AFTER_ROUNDS):
        weights = rule.aggregate(weights, along(**{f"p{r}": 1.0, "steady": 0.5})).weights

    remembered = set(rule._state.momenta)
    assert len(remembered) == FORGET_AFTER_ROUNDS + 2  # the last limit + 1 newcomers and steady
    assert "steady" in remembered and f"p{3 * FORGET_AFTER_ROUNDS - 1}" in remembered
    assert "p0" not in remembered
