"""Local training: the trainer, its metrics and its event stream."""

from disco.training.trainer import EpochMetrics, Event, EventCallback, Trainer, evaluate

__all__ = ["EpochMetrics", "Event", "EventCallback", "Trainer", "evaluate"]
