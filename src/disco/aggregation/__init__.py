"""Aggregation of model updates: the `Aggregator` seam, FedAvg and robust rules."""

from disco.aggregation.base import (
    AggregationResult,
    Aggregator,
    ParticipantReport,
    RoundCollector,
    Update,
)
from disco.aggregation.bucketing import Bucketing, bucket_groups
from disco.aggregation.clipping import CenteredClippingAggregator, centered_clip
from disco.aggregation.krum import KrumAggregator, MultiKrumAggregator, krum_scores
from disco.aggregation.mean import MeanAggregator
from disco.aggregation.rules import (
    Contribution,
    capped_shares,
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
from disco.aggregation.trust import CosineTrustAggregator

__all__ = [
    "RULES",
    "AggregationResult",
    "Aggregator",
    "Bucketing",
    "CenteredClippingAggregator",
    "Contribution",
    "CosineTrustAggregator",
    "KrumAggregator",
    "MeanAggregator",
    "MedianAggregator",
    "MultiKrumAggregator",
    "ParticipantReport",
    "RoundCollector",
    "TrimmedMeanAggregator",
    "Update",
    "bucket_groups",
    "build_aggregator",
    "capped_shares",
    "centered_clip",
    "krum_scores",
    "median",
    "trimmed_mean",
    "weighted_sum",
]
