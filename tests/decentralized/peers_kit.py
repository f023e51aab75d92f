"""A small decentralized task and its data for the decentralized tests (`from peers_kit import`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from disco.data.dataset import Dataset
from disco.task import Task, parse_task


def p2p_task(
    task_id: str = "p2p", min_participants: int = 3, deadline: float = 20.0, **training: Any
) -> Task:
    """A decentralized two-feature classifier (a small MLP: real training, quick rounds)."""
    return parse_task(
        {
            "id": task_id,
            "display": {"title": f"Peers {task_id}"},
            "training": {
                "data_type": "tabular",
                "scheme": "decentralized",
                "input_columns": [{"name": "a"}, {"name": "b"}],
                "output_column": "y",
                "labels": ["no", "yes"],
                "min_participants": min_participants,
                "round_deadline_s": deadline,
                "epochs": 10,
                "epochs_per_round": 1,
                "batch_size": 16,
                "learning_rate": 0.05,
                **training,
            },
            "model": {
                "input_shape": [2],
                "layers": [
                    {"type": "dense", "units": 8, "activation": "relu"},
                    {"type": "dense", "units": 2, "activation": "softmax"},
                ],
                "loss": "categorical_crossentropy",
            },
        }
    )


def blobs(seed: int, n: int = 120) -> Dataset:
    """Two separable classes around (1, 1) and (-1, -1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(scale=0.6, size=(n, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)
    return Dataset(x.astype(np.float32), y)
