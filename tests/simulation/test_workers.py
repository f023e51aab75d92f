"""A simulation spread over worker processes (`disco.simulation.participants`): the same model as
all participants in one process on one PyTorch thread, the trainer events and server messages
of every participant still seen by this process's hooks, peers in different processes reaching
each other over WebRTC, and what cannot cross processes refused."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import disco
from disco.client import ServerAccess
from disco.errors import ConfigError, WaitExpired
from disco.training import EventCallback


@pytest.fixture
def one_thread() -> Iterator[None]:
    """PyTorch on one thread in this process too, as in each worker: sums in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_workers_give_the_model_of_one_process_and_report_to_its_hooks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alone = disco.simulate("breast_cancer", 3, 3, partition="dirichlet:0.5", seed=5)
    events: Counter[tuple[int, str]] = Counter()
    results: Counter[int] = Counter()

    def callbacks(i: int) -> list[EventCallback]:
        return [lambda event: events.update([(i, event.kind)])]

    def on_message(i: int, message: Any) -> None:
        if getattr(message, "type", "") == "result":
            results.update([i])

    caplog.clear()
    caplog.set_level(logging.INFO, logger="disco")
    spread = disco.simulate(
        "breast_cancer",
        3,
        3,
        partition="dirichlet:0.5",
        seed=5,
        workers=2,
        callbacks=callbacks,
        on_message=on_message,
    )
    assert spread.digest == alone.digest
    assert spread.test_accuracy == alone.test_accuracy
    assert [h["round"] for h in spread.history] == [0, 1, 2]
    # every participant's rounds, from whichever process trained it
    for i in (1, 2, 3):
        assert events[(i, "round_start")] == 3 and events[(i, "round_end")] == 3
        assert events[(i, "batch_end")] > 0
        assert results[i] == 3
    # the workers' log lines, in this process's logging
    sent = [r.getMessage() for r in caplog.records if r.name == "disco.client"]
    assert sum(m.startswith("your round 3 of 3: update sent") for m in sent) == 3, sent


def test_peers_in_different_processes_reach_each_other() -> None:
    result = disco.simulate(
        "breast_cancer", 3, 2, seed=1, scheme="decentralized", transport="webrtc", workers=3
    )  # the simulation refuses peers that end with different models
    assert result.rounds == 2 and result.test_accuracy is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers must be at least 1, got 0"),
        ({"workers": 4}, "4 workers for 3 participants: give at most 3"),
        (
            {"workers": 2, "scheme": "decentralized", "transport": "memory"},
            "in-process channels join peers of one process",
        ),
        ({"workers": 2, "attack": "alie:0.34"}, "the colluding attack 'alie' shares"),
    ],
)
def test_what_cannot_cross_processes_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        disco.simulate("breast_cancer", 3, 2, **kwargs)


def test_a_script_without_the_main_guard_is_told_what_to_do(tmp_path: Path) -> None:
    """Its workers import it again: they stop at once, and the simulation says why."""
    script = tmp_path / "unguarded.py"
    script.write_text('import disco\ndisco.simulate("breast_cancer", 2, 1, workers=2)\n')
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("disco.errors.SessionError: a worker process ended abruptly"), last
    assert "under `if __name__ == '__main__':`" in last


def test_what_a_worker_sends_back_survives_the_trip() -> None:
    """Results and errors cross processes pickled: weights stay read-only, an expired wait keeps
    its model, and a server's access over TLS is made again on the other side."""
    weights = disco.Weights({"w": np.arange(3, dtype=np.float32)})
    back = pickle.loads(pickle.dumps(weights))
    assert back.digest() == weights.digest() and not back["w"].flags.writeable
    expired = WaitExpired("waited", weights=weights, kept="local", rounds_done=2, shared_rounds=1)
    again = pickle.loads(pickle.dumps(expired))
    assert (str(again), again.kept, again.rounds_done, again.shared_rounds) == (
        "waited",
        "local",
        2,
        1,
    )
    assert again.weights.digest() == weights.digest()
    access = ServerAccess("https://disco.example.org")
    assert access.ssl_context is not None  # made, and cached
    copy = pickle.loads(pickle.dumps(access))
    assert copy.url == access.url and copy.ssl_context is not None
