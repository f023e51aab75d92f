"""What every participant shares: its local data, model, trainer and result.

`Client` is the one interface behind which local and federated participants sit: build it with a
task and a dataset, `await client.run()`, get a `ClientResult`. Training runs in a worker thread so
the event loop stays free for the network; a process-wide lock keeps concurrent simulated clients
from competing for the CPU (and keeps runs deterministic).
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from disco.data.dataset import Dataset
from disco.models import TorchModel, build_torch_model
from disco.task import Task
from disco.training import EpochMetrics, EventCallback, Trainer
from disco.weights import Weights

__all__ = ["Client", "ClientResult", "TRAINING_LOCK"]

TRAINING_LOCK = threading.Lock()
"""Serialises training of clients that share this process (simulation)."""


@dataclass
class ClientResult:
    """What a participant ends with: the final weights and how it got there."""

    weights: Weights
    rounds: int
    history: list[EpochMetrics] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    num_samples: int = 0


class Client(ABC):
    """A participant: trains `task`'s model on local `data`."""

    def __init__(
        self,
        task: Task,
        data: Dataset,
        *,
        seed: int = 0,
        name: str = "",
        callbacks: list[EventCallback] | None = None,
    ) -> None:
        self.task = task
        self.name = name
        self.seed = seed
        self.train_data, self.val_data = data.split(task.training.validation_split, seed=seed)
        self.model: TorchModel = build_torch_model(task.model)
        self.trainer = Trainer(self.model, task.training, seed=seed, callbacks=callbacks or [])
        self._train_s = 0.0

    def _train_sync(self, round: int, weights: Weights) -> tuple[Weights, list[EpochMetrics]]:
        with TRAINING_LOCK:
            start = time.perf_counter()
            self.model.set_weights(weights)
            history = self.trainer.train_round(round, self.train_data, self.val_data)
            trained = self.model.get_weights()
            self._train_s += time.perf_counter() - start
        return trained, history

    async def train(self, round: int, weights: Weights) -> tuple[Weights, list[EpochMetrics]]:
        """Train one round from `weights` in a worker thread; return new weights and metrics."""
        return await asyncio.to_thread(self._train_sync, round, weights)

    @abstractmethod
    async def run(self, rounds: int | None = None) -> ClientResult:
        """Take part for `rounds` rounds (default: the task's) and return the final state."""
