"""A simulation spread over worker processes (`disco.simulation.participants`): the same model as
all participants in one process on one PyTorch thread, the trainer events and server messages
of every participant still seen by this process's hooks, peers in different processes reaching
each other over WebRTC, and what cannot cross processes refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import disco
from disco.errors import ConfigError
from disco.training import EventCallback


@pytest.fixture
def one_thread() -> Iterator[None]:
    """PyTorch on one thread in this process too, as in each worker: sums in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_workers_give_the_model_of_one_process_and_report_to_its_hooks() -> None:
    alone = disco.simulate("breast_cancer", 3, 3, partition="dirichlet:0.5", seed=5)
    events: Counter[tuple[int, str]] = Counter()
    results: Counter[int] = Counter()

    def callbacks(i: int) -> list[EventCallback]:
        return [lambda event: events.update([(i, event.kind)])]

    def on_message(i: int, message: Any) -> None:
        if getattr(message, "type", "") == "result":
            results.update([i])

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
