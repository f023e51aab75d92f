"""A small federated task with secure aggregation, its data, and a participant that kills itself.

`python tests/secure/secure_kit.py URL TASK_FILE PHASE SEED` runs one `FederatedClient` that sends
SIGKILL to its own process at PHASE of its first secure round — ``shares`` (keys sent, shares
not), ``masked`` (shares sent, masked input not) or ``reveal`` (masked input sent, its shares for
unmasking not): a participant dying at an exact point of the protocol, as `kill -9` would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from disco.data.dataset import Dataset
from disco.task import Task, parse_task


def secure_task(min_participants: int = 3, threshold: int | None = None, **training: Any) -> Task:
    """A two-feature classifier (a small MLP) trained federated with secure aggregation."""
    return parse_task(
        {
            "id": "secure",
            "display": {"title": "Secure blobs"},
            "training": {
                "data_type": "tabular",
                "input_columns": [{"name": "a"}, {"name": "b"}],
                "output_column": "y",
                "labels": ["no", "yes"],
                "min_participants": min_participants,
                "round_deadline_s": 20,
                "epochs": 3,
                "epochs_per_round": 1,
                "batch_size": 16,
                "learning_rate": 0.05,
                "secure_aggregation": {"clip": 1.0, "weight_cap": 256, "threshold": threshold},
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


def _die(*args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


def main(url: str, task_file: str, phase: str, seed: int) -> None:
    from disco.client import FederatedClient
    from disco.secure.participant import SecureParticipant

    method = {"shares": "share", "masked": "mask", "reveal": "reveal"}[phase]
    setattr(SecureParticipant, method, _die)
    task = Task.model_validate_json(Path(task_file).read_text(encoding="utf-8"))
    client = FederatedClient(task, blobs(seed), url, name=f"dies-at-{phase}", seed=seed)
    asyncio.run(client.run(rounds=1))
    raise SystemExit("the participant was meant to die before the end of its round")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
