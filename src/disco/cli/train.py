"""`disco train`: one participant, alone or in a server's session, and how it stops."""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.markup import escape

from disco.cli.output import (
    EXIT_OK,
    EXIT_SESSION_LOST,
    EXIT_WAIT_EXPIRED,
    console,
    plural,
    report,
)
from disco.cli.progress import participant_log, progress_bars
from disco.errors import ConfigError, DiscoError, TaskError, WaitExpired

if TYPE_CHECKING:
    from disco.client import FederatedClient
    from disco.client.access import ServerAccess
    from disco.data import Dataset
    from disco.data.text import TextWindows
    from disco.decentralized.peer import PeerClient
    from disco.task import Task
    from disco.text.tokenizer import Tokenizer
    from disco.weights import Weights

__all__ = ["cmd_train"]


def _fetch_task(args: argparse.Namespace) -> Task:
    """The task to train: built in, or (with --server) the server's definition."""
    from disco import catalog

    if args.server is None and args.task not in catalog.ids():
        raise TaskError(
            f"unknown task {args.task!r}: it is not a built-in task "
            f"({', '.join(catalog.ids())}). A task created on a server is trained from there: "
            "add --server URL (e.g. --server http://127.0.0.1:8000; "
            "`disco tasks --server URL` lists a server's tasks)"
        )
    return catalog.fetch(args.task, server=_access(args) if args.server else None)


def _access(args: argparse.Namespace) -> ServerAccess:
    """The server of `args` with its invitation and CA bundle (flags, else environment)."""
    from disco.client.access import ServerAccess

    return ServerAccess.from_env(args.server, args.invitation, args.ca_file)


def _load_data(
    path: Path, task: Task, tokenizer: Tokenizer | None = None, test: bool = False
) -> tuple[Dataset | TextWindows, int]:
    """Load labelled data; skipped CSV rows are reported on the console. (data, rows skipped)

    A text task's files become windows of its context (`test`: all of the text is for testing,
    as training windows; else split as the task says)."""
    from disco.data import load_for_task
    from disco.data.tabular import SkippedRows
    from disco.data.text import load_text

    if tokenizer is not None:
        t = task.training
        split = 0.0 if test else t.validation_split
        windows = load_text(path, tokenizer, t.max_sequence_length or 1, validation_split=split)
        return windows, 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRows)
        data = load_for_task(path, task.training)
    skipped = 0
    for w in caught:
        if isinstance(w.message, SkippedRows):
            skipped += len(w.message.skipped)
            console.print(f"[yellow]warning:[/yellow] {escape(str(w.message))}", highlight=False)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return data, skipped


def _free_path(path: Path) -> Path:
    """`path`, or the first of path-2, path-3, … (before the suffix) that does not exist."""
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _together(args: argparse.Namespace, task: Task) -> bool:
    """Whether to join the server's session (else train alone); refuses what cannot run."""
    scheme = task.training.scheme
    together = args.server is not None and not args.alone and scheme != "local"
    if args.max_wait is not None and not together:
        raise ConfigError("--max-wait applies when training with others (--server, no --alone)")
    if args.server and not together:
        why = (
            "(--alone): the task comes from the server"
            if args.alone
            else f"as task {task.id!r} is meant to be trained alone (scheme 'local')"
        )
        console.print(f"training alone {escape(why)}; nothing is sent to the server")
    return together


@dataclass(frozen=True)
class _Stopped:
    """Why a session ended before its last round, and the model kept (as `WaitExpired` says)."""

    reason: DiscoError
    kept: Literal["global", "local"]
    weights: Weights
    shared_rounds: int
    rounds_done: int

    @property
    def waited(self) -> bool:
        """Whether it stopped waiting for the others (else the session failed)."""
        return isinstance(self.reason, WaitExpired)

    def message(self, wait: float, rounds: int, saved: Path) -> str:
        """What `disco train` says (console markup)."""
        kept = (
            f"the last shared model ({plural(self.shared_rounds, 'round')} of training "
            "with the others)"
            if self.kept == "global"
            else "the model trained on your data (nothing was combined with the others yet)"
        )
        why = (
            f"no round closed within {wait:g} s after your update"
            if self.waited
            else f"the session ended early: {escape(str(self.reason))}"
        )
        return (
            f"[yellow]stopped:[/yellow] {why} "
            f"(you completed {self.rounds_done} of {rounds} rounds). Kept {kept}, saved to "
            f"{escape(str(saved))}. Run the same command again to rejoin, or add --alone to "
            "train alone."
        )


def _stopped(client: FederatedClient | PeerClient, exc: DiscoError) -> _Stopped | None:
    """How a session that raised `exc` ended, or None when nothing was trained to keep."""
    if isinstance(exc, WaitExpired):
        return _Stopped(exc, exc.kept, exc.weights, exc.shared_rounds, exc.rounds_done)
    kept = client.kept_model()
    if kept is None:
        return None
    kind, weights, shared = kept
    return _Stopped(exc, kind, weights, shared, client.rounds_done)


def _tokenizer(args: argparse.Namespace, task: Task) -> Tokenizer | None:
    """A text task's tokenizer (from the server with --server, else the built-in one), checked
    against the task's digest; None for other tasks."""
    from disco import catalog

    if task.training.data_type != "text":
        return None
    return catalog.fetch_tokenizer(task, server=_access(args) if args.server else None)


def _peer(
    args: argparse.Namespace, task: Task, data: Dataset | TextWindows, bars: Any
) -> PeerClient:
    """A peer of the server's decentralized session (models go to the other peers directly)."""
    from disco.decentralized.connector import use_host_addresses
    from disco.decentralized.peer import PeerClient

    if args.ice_host:
        use_host_addresses(args.ice_host)
    ice_servers = []
    if args.stun:
        from aiortc import RTCIceServer

        ice_servers = [RTCIceServer(urls=url) for url in args.stun]
    done = [lambda e: bars.local_round_done(1) if e.kind == "round_end" else None]
    return PeerClient(
        task,
        data,
        _access(args),
        seed=args.seed,
        name=args.name,
        callbacks=bars.callbacks(1) + done,
        on_message=lambda m: bars.on_message(1, m),
        ice_servers=ice_servers,
        wait_for_others_s=args.max_wait,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from disco.client import ClientResult, FederatedClient, LocalClient
    from disco.data.text import TextWindows
    from disco.models import build_torch_model
    from disco.training import evaluate

    if args.alone and not args.server:
        raise ConfigError(
            "--alone trains a server's task alone: give the server with --server URL "
            "(without --server, disco train already trains a built-in task alone)"
        )
    task = _fetch_task(args)
    together = _together(args, task)
    tokenizer = _tokenizer(args, task)
    data, skipped_rows = _load_data(Path(args.data), task, tokenizer)
    rounds = args.rounds or task.training.rounds
    plain = args.json or not console.is_terminal
    start = time.perf_counter()
    result: ClientResult | None = None
    stopped: _Stopped | None = None
    label = args.name or "you"
    with (
        participant_log(plain),
        progress_bars([label], rounds, enabled=not plain, mine=True) as bars,
    ):
        client: FederatedClient | PeerClient | LocalClient
        if together and task.training.scheme == "decentralized":
            client = _peer(args, task, data, bars)
        elif together:
            client = FederatedClient(
                task,
                data,
                _access(args),
                seed=args.seed,
                name=args.name,
                callbacks=bars.callbacks(1),
                on_message=lambda m: bars.on_message(1, m),
                wait_for_others_s=args.max_wait,
            )
        else:
            done = [lambda e: bars.local_round_done(1) if e.kind == "round_end" else None]
            client = LocalClient(
                task, data, seed=args.seed, name=args.name, callbacks=bars.callbacks(1) + done
            )
        try:
            result = asyncio.run(client.run(rounds))
        except DiscoError as exc:
            # stopped waiting, or the session ended early: keep what was trained, if anything
            if isinstance(client, LocalClient):
                raise
            stopped = _stopped(client, exc)
            if stopped is None:
                raise
    summary: dict[str, Any] = {"task": task.id}
    if result is None:
        assert stopped is not None and not isinstance(client, LocalClient)
        weights = stopped.weights
        summary.update(
            rounds=stopped.rounds_done,
            stopped="wait_expired" if stopped.waited else "session_lost",
            kept=stopped.kept,
            shared_rounds=stopped.shared_rounds,
            samples=len(client.train_data),
            wall_s=round(time.perf_counter() - start, 3),
            bytes_up=client.bytes_up,
            bytes_down=client.bytes_down,
        )
    else:
        weights = result.weights
        summary.update(
            rounds=result.rounds,
            samples=result.num_samples,
            wall_s=round(result.wall_s, 3),
            bytes_up=result.bytes_up,
            bytes_down=result.bytes_down,
        )
        if result.history:
            last = result.history[-1]
            summary.update(val_accuracy=last.val_accuracy, val_loss=last.val_loss)
    summary["digest"] = weights.digest()
    if together and bars.joined_at[0] is not None:
        summary["shared_rounds_before"] = bars.joined_at[0]
    if skipped_rows:
        summary["skipped_rows"] = skipped_rows
    if args.test:
        model = build_torch_model(task.model)
        model.set_weights(weights)
        test_data, _ = _load_data(Path(args.test), task, tokenizer, test=True)
        # text: every window of the test files
        loss, acc = evaluate(
            model, test_data.train if isinstance(test_data, TextWindows) else test_data
        )
        summary.update(test_loss=loss, test_accuracy=acc)
    save = Path(args.save) if args.save else None
    if stopped is not None and save is None:
        save = _free_path(Path(f"{task.id}-model.safetensors"))
    if save is not None:
        weights.save(save)
        summary["saved"] = str(save)
    if stopped is not None and save is not None and not isinstance(client, LocalClient):
        console.print(stopped.message(client.wait_for_others_s, rounds, save), highlight=False)
    report(summary, args.json)
    if stopped is None:
        return EXIT_OK
    return EXIT_WAIT_EXPIRED if stopped.waited else EXIT_SESSION_LOST
