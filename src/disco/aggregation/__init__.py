"""Aggregation of model updates: FedAvg and robust rules."""

from disco.aggregation.rules import RULES, Contribution, aggregate, mean, median, trimmed_mean

__all__ = ["RULES", "Contribution", "aggregate", "mean", "median", "trimmed_mean"]
