"""What every participant shares: its local data, model, trainer and result.

`Client` is the one interface behind which local and federated participants sit: build it with
a task and a dataset, `await client.run()`, get a `ClientResult`. Training runs in one dedicated
worker thread so the event loop stays free for the network.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from disco.data.dataset import Dataset
from disco.data.text import TextWindows
from disco.errors import DataError
from disco.models import TorchModel, build_torch_model
from disco.task import Task
from disco.training import EpochMetrics, EventCallback, Trainer
from disco.training.trainer import TrainingData
from disco.weights import Weights

__all__ = ["Client", "ClientResult", "in_training_thread"]

_TRAINING_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disco-train")
"""The one thread that runs PyTorch, whichever client asks: clients sharing a process
(simulation) take turns instead of fighting over the cores, runs stay deterministic, and PyTorch
keeps one warm OpenMP pool (two threads driving PyTorch each spin up a pool, and the pools slow
each other down by a third on two cores)."""

T = TypeVar("T")


def in_training_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on the training thread and wait for it (for PyTorch work outside a client).

    Must not be called from the training thread itself.
    """
    return _TRAINING_THREAD.submit(fn, *args).result()


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
    """A participant: trains `task`'s model on local `data` (a text task: `TextWindows`, whose
    training and validation windows are already apart)."""

    def __init__(
        self,
        task: Task,
        data: Dataset | TextWindows,
        *,
        seed: int = 0,
        name: str = "",
        callbacks: list[EventCallback] | None = None,
    ) -> None:
        self.task = task
        self.name = name
        self.seed = seed
        if isinstance(data, TextWindows):  # a text task: split already, a tail of each document
            if task.training.data_type != "text":
                raise DataError(f"task {task.id!r} is not a text task: give it a Dataset")
            if data.context != task.training.max_sequence_length:
                raise DataError(
                    f"these text windows hold a context of {data.context} tokens; task "
                    f"{task.id!r} reads {task.training.max_sequence_length}"
                )
            self.train_data: TrainingData = data.train  # windows (N, context + 1)
            self.val_data: TrainingData = data.validation
        else:
            if task.training.data_type == "text":
                raise DataError(
                    f"task {task.id!r} is a text task: give it text windows "
                    "(disco.data.text.load_text)"
                )
            self.train_data, self.val_data = data.split(task.training.validation_split, seed=seed)
        self.model: TorchModel = build_torch_model(task.model)
        self.trainer = Trainer(self.model, task.training, seed=seed, callbacks=callbacks or [])
        self._train_s = 0.0

    def _train_sync(
        self, round: int, weights: Weights, k: int
    ) -> tuple[Weights, list[EpochMetrics]]:
        start = time.perf_counter()
        self.model.set_weights(weights)
        training = self.task.training
        history = self.trainer.train_round(
            round,
            self.train_data,
            self.val_data,
            training.epochs_in_round(k),
            training.epoch_part(k),
        )
        trained = self.model.get_weights()
        self._train_s += time.perf_counter() - start
        return trained, history

    async def train(
        self, round: int, weights: Weights, k: int
    ) -> tuple[Weights, list[EpochMetrics]]:
        """Train this participant's `k`-th round (counted from 1) from `weights` in the training
        thread; new weights and metrics.

        What the round trains is the task's schedule (`disco.schedule`): whole epochs
        (`TrainingInfo.epochs_in_round(k)`) or a part of one (`TrainingInfo.epoch_part(k)`).
        `round` seeds the data order and dropout (the server's round when training together).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_TRAINING_THREAD, self._train_sync, round, weights, k)

    @abstractmethod
    async def run(self, rounds: int | None = None) -> ClientResult:
        """Take part for `rounds` rounds (default: the task's) and return the final state."""
