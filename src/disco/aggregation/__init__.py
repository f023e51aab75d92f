"""Aggregation of model updates: the `Aggregator` seam, FedAvg and robust rules."""

from disco.aggregation.base import AggregationResult, Aggregator, ParticipantReport, Update
from disco.aggregation.mean import MeanAggregator
from disco.aggregation.rules import (
    Contribution,
    capped_shares,
    mean,
    median,
    trimmed_mean,
    weighted_sum,
)
from disco.aggregation.strategies import (
    RULES,
    MedianAggregator,
    TrimmedMeanAggregator,
    build_aggregator,
)

__all__ = [
    "RULES",
    "AggregationResult",
    "Aggregator",
    "Contribution",
    "MeanAggregator",
    "MedianAggregator",
    "ParticipantReport",
    "TrimmedMeanAggregator",
    "Update",
    "build_aggregator",
    "capped_shares",
    "mean",
    "median",
    "trimmed_mean",
    "weighted_sum",
]
