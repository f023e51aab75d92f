"""Many federated clients on one machine, on real data files, through the real protocol.

`simulate` writes the task's real sample data as ordinary files split per client (exactly what a
person would connect), starts a server on a free loopback port (unless one is given), runs one
`FederatedClient` per folder over WebSockets, and evaluates the final global model on the
held-out test folder.

With ``scheme="decentralized"`` the participants are peers (`disco.decentralized.PeerClient`):
the server only paces them and the updates go from peer to peer, over WebRTC data channels on
loopback (``transport="webrtc"``, the default) or in-process channels (``"memory"``, for many
peers on one machine).

With ``attack``, the last participants attack (`disco.simulation.attacks`): each is the same
federated client, named ``attacker-I``, that sends a poisoned update or trains on poisoned labels.
With ``aggregation``, the task combines updates by that rule (``"median"``, ``"krum:f=2"``, …);
with ``secure_aggregation``, the server sees only the sum of each round's updates
(docs/secure_aggregation.md).

A text task (``shakespeare``) trains on text files split by work; its tokenizer comes with the
built-in task (or ``tokenizer=``) and is published with it. The result then also holds the loss
of a unigram model on the same held-out text (`unigram_loss`): token frequencies of the
participants' training windows, add-one smoothed, the floor any language model must beat.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from disco import catalog
from disco.client import ServerAccess
from disco.client.base import in_training_thread
from disco.client.publish import check_created, creation_body
from disco.data import Dataset, load_for_task
from disco.data.samples import write_samples
from disco.data.text import TextWindows, load_text
from disco.decentralized.topology import ALL_TO_ALL_LIMIT
from disco.errors import ConfigError, SessionError, TaskError
from disco.models import build_torch_model
from disco.schedule import planned_rounds
from disco.simulation.attacks import (
    COLLUDING,
    AttackSpec,
    attacker_name,
    parse_attack,
)
from disco.simulation.participants import Plan, check_workers, run_participants
from disco.task import (
    AggregationConfig,
    Scheme,
    SecureAggregationConfig,
    Task,
    TrainingInfo,
    parse_aggregation,
    parse_secure_aggregation,
    parse_task,
)
from disco.text.tokenizer import Tokenizer, check_task_tokenizer
from disco.training import EventCallback, evaluate
from disco.training.trainer import TrainingData
from disco.weights import Weights

__all__ = ["SimulationResult", "round_length", "simulate", "simulate_async", "unigram_loss"]

log = logging.getLogger("disco.simulation")


@dataclass
class SimulationResult:
    """Outcome of a simulation: quality of the final model and what it cost."""

    task: str
    clients: int
    rounds: int
    partition: str
    seed: int
    test_accuracy: float | None
    test_loss: float
    wall_s: float
    train_s: float
    bytes_up: int
    bytes_down: int
    digest: str
    attack: dict[str, Any] | None = None
    """The attack (`AttackSpec.describe`: spec, kind, attackers' names, settings), or None."""
    aggregation: dict[str, Any] = field(default_factory=dict)
    """The task's aggregation rule and its settings, as the server applied them."""
    secure_aggregation: dict[str, Any] | None = None
    """The task's secure aggregation settings, or None when it is off."""
    history: list[dict[str, Any]] = field(default_factory=list)
    unigram_loss: float | None = None
    """Text tasks: the loss (nats per token) on the test text of the add-one smoothed unigram
    model of the participants' training tokens; None for other tasks."""
    weights: Weights | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the weights)."""
        return {k: v for k, v in asdict(self).items() if k != "weights"}


def _resolve(task: str | Task) -> Task:
    return task if isinstance(task, Task) else catalog.get(task)


async def _publish(
    client: httpx.AsyncClient, task: Task, token: str | None, tokenizer: Tokenizer | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.post("/api/tasks", content=creation_body(task, tokenizer), headers=headers)
    check_created(resp, task, str(client.base_url))


def unigram_loss(train: list[np.ndarray], test: np.ndarray, vocab_size: int) -> float:
    """Mean loss (nats) on the target tokens of `test` windows of the add-one smoothed unigram
    model of the target tokens of the `train` windows (each training token counted once)."""
    counts = np.ones(vocab_size, dtype=np.float64)
    for windows in train:
        counts += np.bincount(windows[:, 1:].reshape(-1), minlength=vocab_size)
    log_p = np.log(counts) - np.log(counts.sum())
    return float(-log_p[test[:, 1:].reshape(-1)].mean())


def _load_text(folder: Path, tokenizer: Tokenizer, task: Task, test: bool = False) -> TextWindows:
    t = task.training
    split = 0.0 if test else t.validation_split
    context = t.max_sequence_length or 1
    return load_text(folder, tokenizer, context, validation_split=split)


def round_length(
    training: TrainingInfo, epochs_per_round: int | None, rounds_per_epoch: int | None
) -> tuple[int, int]:
    """Epochs per round and rounds per epoch of a simulation: the task's, or the one given (an
    epochs per round given alone trains whole epochs; rounds per epoch, one epoch a round)."""
    for name, value in (
        ("epochs_per_round", epochs_per_round),
        ("rounds_per_epoch", rounds_per_epoch),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if epochs_per_round is not None and rounds_per_epoch is not None:
        if epochs_per_round > 1 and rounds_per_epoch > 1:
            raise ConfigError(
                "give epochs per round or rounds per epoch, not both: a round is either whole "
                "epochs or a part of one"
            )
        return epochs_per_round, rounds_per_epoch
    if epochs_per_round is not None:
        return epochs_per_round, 1
    if rounds_per_epoch is not None:
        return 1, rounds_per_epoch
    return training.epochs_per_round, training.rounds_per_epoch


def _participant_name(i: int, attackers: list[int]) -> str:
    return attacker_name(i) if i in attackers else f"sim-{i}"


async def simulate_async(
    task: str | Task,
    clients: int = 3,
    rounds: int | None = 3,
    *,
    partition: str = "iid",
    seed: int = 0,
    server: str | ServerAccess | None = None,
    data_dir: str | Path | None = None,
    epochs_per_round: int | None = None,
    rounds_per_epoch: int | None = None,
    callbacks: Callable[[int], list[EventCallback]] | None = None,
    on_message: Callable[[int, Any], None] | None = None,
    attack: AttackSpec | str | None = None,
    aggregation: AggregationConfig | str | None = None,
    secure_aggregation: SecureAggregationConfig | str | bool | None = None,
    scheme: Scheme = "federated",
    transport: str = "webrtc",
    tokenizer: Tokenizer | None = None,
    workers: int = 1,
) -> SimulationResult:
    """Run a simulation; see `simulate`."""
    base = _resolve(task)
    if server is not None and (epochs_per_round is not None or rounds_per_epoch is not None):
        raise ConfigError(
            "epochs per round and rounds per epoch apply to the task a simulation publishes on "
            "its own server; with a running server, the server's task decides what a round trains"
        )
    epr, rpe = round_length(base.training, epochs_per_round, rounds_per_epoch)
    if rounds is None:  # the task's plan, with its own or the given round length
        rounds = planned_rounds(base.training.epochs, epr, rpe)
    if clients < 1 or rounds < 1:
        raise TaskError("clients and rounds must be at least 1")
    if scheme not in ("federated", "decentralized"):
        raise ConfigError(f"scheme must be 'federated' or 'decentralized', not {scheme!r}")
    if transport not in ("webrtc", "memory"):
        raise ConfigError(f"transport must be 'webrtc' or 'memory', not {transport!r}")
    if scheme == "decentralized" and attack is not None:
        raise ConfigError("attacks are simulated in federated sessions only")
    text = base.training.data_type == "text"
    if text and attack is not None:
        raise ConfigError("attacks are simulated on image and tabular tasks, not on text")
    if text:
        tokenizer = tokenizer or catalog.fetch_tokenizer(base, server)  # a server: its own
        check_task_tokenizer(base, tokenizer)
    changes: dict[str, Any] = {"min_participants": clients, "scheme": scheme}
    changes.update(epochs_per_round=epr, rounds_per_epoch=rpe, epochs=math.ceil(rounds * epr / rpe))
    if aggregation is not None:
        if server is not None:
            raise ConfigError(
                "aggregation applies to the task a simulation publishes on its own server; "
                "with a running server, the server's task decides how updates are combined"
            )
        rule = parse_aggregation(aggregation) if isinstance(aggregation, str) else aggregation
        changes["aggregation"] = rule.model_dump()
    if secure_aggregation is not None and secure_aggregation is not False:
        if server is not None:
            raise ConfigError(
                "secure aggregation applies to the task a simulation publishes on its own server; "
                "with a running server, the server's task decides whether it is on"
            )
        secure = secure_aggregation
        if secure is True:
            secure = SecureAggregationConfig()
        elif isinstance(secure, str):
            secure = parse_secure_aggregation(secure)
        changes["secure_aggregation"] = secure.model_dump()
    try:
        the_task = base.with_training(**changes)
    except TaskError as exc:  # every simulated participant is needed in every round
        raise TaskError(
            re.sub(
                r"set min_participants to at least (\d+) \(it is \d+\)",
                rf"simulate at least \1 participants (clients), not {clients}",
                str(exc),
            )
        ) from exc
    spec = parse_attack(attack) if isinstance(attack, str) else attack
    memory = scheme == "decentralized" and transport == "memory"
    check_workers(workers, clients, memory=memory, attack=spec)
    attackers = [] if spec is None else spec.attackers(clients)
    if spec is not None:
        spec = spec.resolve(the_task, clients)
        if spec.kind == "alie" and len(attackers) == 1:
            log.warning("alie with one attacker: no spread to estimate, it sends its own update")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="disco-sim-") as tmp:
        samples_dir = Path(data_dir) if data_dir else Path(tmp) / "data"
        if not (samples_dir / "test").exists():
            write_samples(the_task.id, clients, samples_dir, partition=partition, seed=seed)
        datasets: list[Dataset | TextWindows]
        unigram = None
        if text:
            assert tokenizer is not None
            windows = [
                _load_text(samples_dir / f"client_{i}", tokenizer, the_task)
                for i in range(1, clients + 1)
            ]
            test_windows = _load_text(samples_dir / "test", tokenizer, the_task, True).train
            unigram = unigram_loss([w.train for w in windows], test_windows, tokenizer.vocab_size)
            test: TrainingData = test_windows
            datasets = list(windows)
        else:
            datasets = [
                load_for_task(samples_dir / f"client_{i}", the_task.training)
                for i in range(1, clients + 1)
            ]
            test = load_for_task(samples_dir / "test", the_task.training)

        handle = None
        if server is None:
            from disco.server import ServerConfig, start_in_background

            token = secrets.token_urlsafe(16)
            config = ServerConfig(  # every participant comes from 127.0.0.1: no address rates
                port=0,
                data_dir=Path(tmp) / "server",
                admin_token=token,
                seed_catalog=False,
                requests_per_minute=0,
                connections_per_minute=0,
            )
            handle = start_in_background(config)
            access = ServerAccess(handle.url)
        else:
            access = ServerAccess.of(server)  # https: verified with its ca_file or the system's
        try:
            async with access.async_http(timeout=30) as http:
                if handle is not None:
                    await _publish(http, the_task, token, tokenizer if text else None)
                else:
                    try:
                        resp = await http.get(f"/api/tasks/{the_task.id}")
                    except httpx.HTTPError as exc:
                        raise access.unreachable(exc) from exc
                    if resp.status_code != 200:
                        raise TaskError(
                            f"server {access.url} has no task {the_task.id!r}: {resp.text}"
                        )
                    the_task = parse_task(resp.json())
                    if text:  # the server's task must name the tokenizer the data was cut with
                        assert tokenizer is not None
                        check_task_tokenizer(the_task, tokenizer)
                    if spec is not None:
                        spec = spec.resolve(the_task, clients)
                coalition: tuple[str, ...] = ()
                if spec is not None and spec.kind in COLLUDING:
                    coalition = tuple(attacker_name(i) for i in attackers)
                plans = [
                    Plan(
                        index=i,
                        name=_participant_name(i, attackers),
                        seed=seed,
                        task=the_task,
                        access=access,
                        decentralized=scheme == "decentralized",
                        memory=memory,
                        loopback=scheme == "decentralized"
                        and transport == "webrtc"
                        and handle is not None,
                        attack=spec if i in attackers else None,
                        coalition=coalition,
                    )
                    for i in range(1, clients + 1)
                ]
                results = await run_participants(
                    plans,
                    datasets,
                    rounds,
                    workers=workers,
                    callbacks=callbacks,
                    on_message=on_message,
                )
                model_resp = await http.get(f"/api/tasks/{the_task.id}/model")
                history_resp = await http.get(f"/api/tasks/{the_task.id}/rounds")
        finally:
            if handle is not None:
                handle.stop()

    final = results[0].weights
    server_digest = model_resp.headers.get("X-Disco-Digest", "")
    digests = {r.weights.digest() for r in results}
    if scheme == "decentralized":
        if len(digests) != 1 and clients <= ALL_TO_ALL_LIMIT:
            raise SessionError(f"peers ended with {len(digests)} different models")
    elif handle is not None and digests != {server_digest}:
        raise SessionError(
            f"clients ended with {len(digests)} different models, server has {server_digest[:12]}"
        )

    def _test() -> tuple[float, float | None]:
        model = build_torch_model(the_task.model)
        model.set_weights(final)
        return evaluate(model, test)

    test_loss, test_acc = in_training_thread(_test)
    secure_settings = the_task.training.secure_aggregation
    return SimulationResult(
        task=the_task.id,
        clients=clients,
        rounds=rounds,
        partition=partition,
        seed=seed,
        test_accuracy=test_acc,
        test_loss=test_loss,
        wall_s=time.perf_counter() - start,
        train_s=sum(r.train_s for r in results),
        bytes_up=sum(r.bytes_up for r in results),
        bytes_down=sum(r.bytes_down for r in results),
        digest=final.digest(),
        attack=None if spec is None else spec.describe(clients),
        aggregation=the_task.training.aggregation.model_dump(mode="json"),
        secure_aggregation=None if secure_settings is None else secure_settings.model_dump(),
        history=history_resp.json() if history_resp.status_code == 200 else [],
        unigram_loss=unigram,
        weights=final,
    )


def simulate(
    task: str | Task, clients: int = 3, rounds: int | None = 3, **kwargs: Any
) -> SimulationResult:
    """Train `task` with `clients` simulated participants for `rounds` rounds (None: the rounds
    the task plans: its epochs over its epochs per round, times its rounds per epoch).

    Keyword arguments: ``partition`` ("iid", "dirichlet:0.5", "shards:2"), ``seed``,
    ``server`` (URL of a running server, or a `ServerAccess` for one behind TLS with its own
    certificate authority or a private one; default: start one on a free loopback port),
    ``data_dir`` (where to write the per-client sample files; default: a temporary folder),
    ``epochs_per_round`` or ``rounds_per_epoch`` (how long a round is: whole epochs, or a part
    of one; default: the task's), ``callbacks`` (client index → trainer callbacks), ``on_message``
    (client index, protocol message → None), ``attack`` (an `AttackSpec` or its text,
    ``"sign_flip:0.2"``, ``"scale:3:k=50"``: the last participants attack, named
    ``attacker-I``; see `disco.simulation.attacks`), ``aggregation`` (a rule config or its
    text, ``"median"``, ``"krum:f=2"``: how the task combines updates), ``secure_aggregation``
    (True, its settings, or their text ``"clip=0.5,weight_cap=100"``: the server sees only the
    sum of each round's updates; needs the mean rule and at least 3 clients), ``scheme``
    (``"federated"``, the default, or ``"decentralized"``: peers exchange updates directly) and
    ``transport`` (decentralized: ``"webrtc"`` on loopback, or ``"memory"`` in-process) and
    ``tokenizer`` (a text task that is not built in: its `disco.text.Tokenizer`) and
    ``workers`` (1, the default: every participant in this process, on one training thread; W:
    the participants dealt over W worker processes, one PyTorch thread each — W cores at work,
    the model ``workers=1`` gives on one thread; a script doing this calls `simulate` under
    ``if __name__ == "__main__":``, as its workers import it again; see
    `disco.simulation.participants`).

    A grid of attacks and rules, each run reproducible under its seed::

        for attack in (None, "sign_flip:0.2", "alie:0.2"):
            for rule in ("mean", "median", "krum:f=2"):
                r = simulate("mnist", 10, 5, attack=attack, aggregation=rule, data_dir="mnist10")
                print(attack, rule, r.test_accuracy)
    """
    return asyncio.run(simulate_async(task, clients, rounds, **kwargs))
