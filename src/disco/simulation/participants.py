"""Where a simulation's participants run: all in this process, or spread over worker processes.

A simulated participant is described by a `Plan` — its index, name, seeds, the task, the server's
address and, for an attacker, its attack — which holds nothing but data, so that it can be sent to
another process. `run_group` turns a group of plans into participants (`FederatedClient`,
`AttackerClient` or `PeerClient`) and runs them together on one event loop; in one process, every
PyTorch call goes through its one training thread (`disco.client.base`), so a group uses about
one core, whatever its size.

`run_participants` runs every plan:

- ``workers=1`` (the default): one group, in this process — callbacks and message hooks see
  every participant, colluding attackers share their coalition, peers may use in-process
  channels;
- ``workers=W`` (2 or more): the plans are dealt round-robin into W groups, each run by a fresh
  worker process (spawned: no state shared with this one) on its own event loop and training
  thread, with ``torch.set_num_threads(1)`` — W cores at work. Everything still goes through the
  server over loopback, so the result is the model of ``workers=1`` with one PyTorch thread:
  each participant draws from its own seeds, and the server combines updates whatever their
  arrival order (sums are exact, docs/aggregation.md). Trainer callbacks, message hooks (each
  message without its model) and ``disco`` log records come back over a queue and are handed to
  this process's hooks and logging by one relay thread: hooks must not mind being called from
  it. A worker that fails ends the others at once. What cannot cross a process boundary is
  refused (`check_workers`): in-process channels between peers, and attackers that collude. A
  script that simulates with workers does so under ``if __name__ == "__main__":`` — each
  worker imports it again — or is told so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from disco.client import FederatedClient, ServerAccess
from disco.client.base import ClientResult
from disco.data import Dataset
from disco.data.text import TextWindows
from disco.decentralized.connector import (
    Connector,
    MemoryConnector,
    MemoryHub,
    OnChannel,
    SendSignal,
    use_host_addresses,
)
from disco.decentralized.peer import PeerClient
from disco.errors import ConfigError, SessionError
from disco.simulation.attacks import COLLUDING, AttackerClient, AttackSpec, Coalition
from disco.task import Task
from disco.training import EventCallback

__all__ = ["Plan", "check_workers", "run_group", "run_participants"]

log = logging.getLogger("disco.simulation")


@dataclass(frozen=True)
class Plan:
    """One simulated participant, as data: what it needs to be built in any process."""

    index: int
    name: str
    seed: int
    """The simulation's seed: the participant's own seeds derive from it and `index`."""
    task: Task
    access: ServerAccess
    decentralized: bool = False
    memory: bool = False
    """Decentralized over in-process channels (one group only)."""
    loopback: bool = False
    """Decentralized over WebRTC with every peer on this machine: offer 127.0.0.1."""
    attack: AttackSpec | None = None
    """This participant's attack (resolved for the task), or None for an honest one."""
    coalition: tuple[str, ...] = ()
    """The colluding attackers' names, when the attack colludes."""


def check_workers(workers: int, clients: int, *, memory: bool, attack: AttackSpec | None) -> None:
    """Refuse (`ConfigError`) `workers` a simulation cannot spread its participants over."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        return
    if workers > clients:
        raise ConfigError(f"{workers} workers for {clients} participants: give at most {clients}")
    if _bootstrapping():
        raise ConfigError(_GUARD)
    cores = os.cpu_count() or 1
    if workers > cores:
        log.warning("%d workers on %d cores: they will take turns on them", workers, cores)
    if memory:
        raise ConfigError(
            "in-process channels join peers of one process: use transport 'webrtc' with workers"
        )
    if attack is not None and attack.kind in COLLUDING:
        raise ConfigError(
            f"the colluding attack {attack.kind!r} shares what its attackers saw in one process: "
            "use it with workers=1"
        )


def _memory(me: str, on_channel: OnChannel, send: SendSignal, *, hub: MemoryHub) -> Connector:
    del send  # in-process channels need no signalling
    return MemoryConnector(me, on_channel, hub)


def _build(
    plan: Plan,
    data: Dataset | TextWindows,
    *,
    hub: MemoryHub,
    coalition: Coalition | None,
    callbacks: Callable[[int], list[EventCallback]] | None,
    on_message: Callable[[int, Any], None] | None,
) -> FederatedClient | PeerClient:
    i = plan.index
    common: dict[str, Any] = {
        "seed": plan.seed * 1000 + i,
        "name": plan.name,
        "callbacks": callbacks(i) if callbacks else None,
        "on_message": functools.partial(on_message, i) if on_message else None,
        # a simulation is reproducible under its seed, privacy noise included
        "noise": np.random.default_rng([plan.seed, i]),
    }
    if plan.decentralized:
        connector = functools.partial(_memory, hub=hub) if plan.memory else None
        return PeerClient(plan.task, data, plan.access, connector=connector, **common)
    if plan.attack is None:
        return FederatedClient(plan.task, data, plan.access, **common)
    rng = np.random.default_rng([plan.seed, i, 1])  # the attack's own draws
    assert isinstance(data, Dataset)  # text tasks are not attacked
    return AttackerClient(
        plan.task, data, plan.access, attack=plan.attack, coalition=coalition, rng=rng, **common
    )


async def run_group(
    plans: list[Plan],
    datasets: list[Dataset | TextWindows],
    rounds: int,
    *,
    callbacks: Callable[[int], list[EventCallback]] | None = None,
    on_message: Callable[[int, Any], None] | None = None,
) -> list[ClientResult]:
    """Build the participants of `plans` (on `datasets`) and run them together, `rounds` each."""
    if any(p.loopback for p in plans):
        use_host_addresses(["127.0.0.1"])  # every peer is on this machine
    members = next((p.coalition for p in plans if p.coalition), ())
    wait = plans[0].task.training.wait_for_others_s if plans else 0.0
    coalition = Coalition(list(members), wait) if members else None
    hub = MemoryHub()
    participants = [
        _build(p, d, hub=hub, coalition=coalition, callbacks=callbacks, on_message=on_message)
        for p, d in zip(plans, datasets, strict=True)
    ]
    return list(await asyncio.gather(*(p.run(rounds) for p in participants)))


_EVENTS: Any = None
"""In a worker process: the queue on which its participants' log records, and the trainer events
and messages the simulating process listens to, go back to that process."""
_SEND: frozenset[str] = frozenset()
"""In a worker process: which of "event" and "message" the simulating process listens to."""


class _Forward(logging.Handler):
    """A worker's log records, sent to the simulating process (message formatted here)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info:  # the traceback, as text
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg, record.args, record.exc_info = record.getMessage(), None, None
            _EVENTS.put(("log", 0, record))
        except Exception:
            self.handleError(record)


def _start_worker(events: Any, send: frozenset[str]) -> None:
    global _EVENTS, _SEND
    _EVENTS, _SEND = events, send
    events.cancel_join_thread()  # a worker ended early must not wait on a full pipe to exit
    root = logging.getLogger("disco")
    root.addHandler(_Forward())
    root.setLevel(logging.INFO)
    root.propagate = False


def _forward(i: int) -> list[EventCallback]:
    return [lambda event: _EVENTS.put(("event", i, event))]


def _forward_message(i: int, message: Any) -> None:
    if getattr(message, "weights", None) is not None:  # the hooks read what it says, not the model
        message = message.model_copy(update={"weights": None})
    _EVENTS.put(("message", i, message))


def _worker(
    plans: list[Plan], datasets: list[Dataset | TextWindows], rounds: int
) -> list[ClientResult]:
    """A worker process's group: one thread of PyTorch, one event loop; its participants' logs,
    events and messages sent back. An error that cannot be sent back as it is comes as a
    `SessionError` that says what it was."""
    import torch

    torch.set_num_threads(1)
    group = run_group(
        plans,
        datasets,
        rounds,
        callbacks=_forward if "event" in _SEND else None,
        on_message=_forward_message if "message" in _SEND else None,
    )
    try:
        results = asyncio.run(group)
    except Exception as exc:
        try:
            pickle.dumps(exc)
        except Exception:
            names = ", ".join(p.name for p in plans)
            raise SessionError(f"{names}: {type(exc).__name__}: {exc}") from None
        raise
    _EVENTS.put(("done", 0, None))  # after all it sent: the queue keeps each writer's order
    return results


def _relay(
    events: Any,
    groups: int,
    stop: threading.Event,
    callbacks: Callable[[int], list[EventCallback]] | None,
    on_message: Callable[[int, Any], None] | None,
) -> None:
    """Hand what the workers send to this process's logging and hooks, until every group said
    it is done, or `stop` is set (a group failed)."""
    handlers: dict[int, list[EventCallback]] = {}
    left = groups
    while left and not stop.is_set():
        try:
            what, i, payload = events.get(timeout=0.2)
        except queue.Empty:
            continue
        try:
            if what == "done":
                left -= 1
            elif what == "log":
                logger = logging.getLogger(payload.name)
                if logger.isEnabledFor(payload.levelno):
                    logger.handle(payload)
            elif what == "event" and callbacks is not None:
                for callback in handlers.setdefault(i, callbacks(i)):
                    callback(payload)
            elif what == "message" and on_message is not None:
                on_message(i, payload)
        except Exception:  # a display hook must not end the simulation
            log.exception("a simulation hook failed on participant %d's %s", i, what)


async def run_participants(
    plans: list[Plan],
    datasets: list[Dataset | TextWindows],
    rounds: int,
    *,
    workers: int = 1,
    callbacks: Callable[[int], list[EventCallback]] | None = None,
    on_message: Callable[[int, Any], None] | None = None,
) -> list[ClientResult]:
    """Run every plan for `rounds` rounds, in this process or in `workers` processes; the
    results in the order of `plans`."""
    if workers == 1:
        return await run_group(plans, datasets, rounds, callbacks=callbacks, on_message=on_message)
    groups = [list(range(w, len(plans), workers)) for w in range(workers)]
    context = multiprocessing.get_context("spawn")  # this process has threads: never fork it
    events = context.Queue()
    send = frozenset(
        what for what, hook in (("event", callbacks), ("message", on_message)) if hook is not None
    )
    stop = threading.Event()
    relay = threading.Thread(
        target=_relay,
        args=(events, workers, stop, callbacks, on_message),
        name="disco-sim-relay",
        daemon=True,  # never what keeps this process alive
    )
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(workers, context, _start_worker, (events, send)) as pool:
        relay.start()
        futures = [
            loop.run_in_executor(
                pool, _worker, [plans[i] for i in g], [datasets[i] for i in g], rounds
            )
            for g in groups
        ]
        try:
            done = await asyncio.gather(*futures)
        except BaseException as exc:
            stop.set()
            # the other groups would wait for a round that cannot close: end them now
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            await asyncio.gather(*futures, return_exceptions=True)  # none left unread
            if isinstance(exc, BrokenProcessPool):
                raise SessionError(f"a worker process ended abruptly ({exc}). {_GUARD}") from exc
            raise
        finally:
            relay.join(600 if not stop.is_set() else 5)  # the hooks see all the groups sent
            stop.set()
    results: list[ClientResult | None] = [None] * len(plans)
    for g, group_results in zip(groups, done, strict=True):
        for i, r in zip(g, group_results, strict=True):
            results[i] = r
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


_GUARD = (
    "With workers, each worker process imports the script that started the simulation: a "
    "script must call simulate under `if __name__ == '__main__':`, or its workers start "
    "simulations of their own."
)


def _bootstrapping() -> bool:
    """Whether this process is a spawned one still importing its parent's script."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))
