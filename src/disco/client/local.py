"""A participant that trains alone: the same rounds, no network."""

from __future__ import annotations

import time

from disco.client.base import Client, ClientResult
from disco.models import init_weights

__all__ = ["LocalClient"]


class LocalClient(Client):
    """Trains the task's model on local data only, round by round."""

    async def run(self, rounds: int | None = None) -> ClientResult:
        """Train `rounds` rounds (default: the task's) starting from the seeded initial model."""
        start = time.perf_counter()
        rounds = self.task.training.rounds if rounds is None else rounds
        weights = init_weights(self.task.model, seed=self.seed)
        history = []
        for r in range(rounds):
            weights, epochs = await self.train(r, weights, r + 1)
            history.extend(epochs)
        return ClientResult(
            weights=weights,
            rounds=rounds,
            history=history,
            wall_s=time.perf_counter() - start,
            train_s=self._train_s,
            num_samples=len(self.train_data),
        )
