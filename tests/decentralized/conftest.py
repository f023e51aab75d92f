"""Decentralized sessions on a real server on loopback: a small task, data, peers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.data.dataset import Dataset
from disco.models import init_weights
from disco.server import ServerConfig, ServerHandle, Store, start_in_background
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


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """`serve(*tasks)`: a real server on loopback with the tasks stored (stopped after)."""
    handles: list[ServerHandle] = []

    def start(*tasks: Task, data_dir: Path | None = None) -> ServerHandle:
        data_dir = data_dir or tmp_path / "server"
        store = Store(data_dir)
        for task in tasks:
            if store.get_task(task.id) is None:
                store.put_task(task, init_weights(task.model, seed=0))
        store.close()
        config = ServerConfig.load(
            env={}, port=0, data_dir=data_dir, seed_catalog=False, web_dir=data_dir / "no-web"
        )
        handle = start_in_background(config)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()
