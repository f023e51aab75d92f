"""The `disco` command: serve, tasks, train, simulate, data, demo.

Exit codes: 0 done; 2 a user error (one line says what was wrong); 3 `disco train` stopped
waiting for the others and saved the model it kept; 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from disco.errors import ConfigError, DiscoError, TaskError, WaitExpired
from disco.privacy import DEFAULT_DELTA, epsilon

if TYPE_CHECKING:  # disco.training loads torch, which `disco serve` does not need
    from disco.data import Dataset
    from disco.data.samples import SamplesInfo
    from disco.task import Task
    from disco.training import Event, EventCallback

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_LOST",
    "EXIT_USER_ERROR",
    "EXIT_WAIT_EXPIRED",
    "main",
]

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_WAIT_EXPIRED = 3
EXIT_SESSION_LOST = 4
EXIT_INTERRUPTED = 130

DEFAULT_SERVER = "http://127.0.0.1:8000"

console = Console(stderr=True)
"""Progress, messages and errors (stderr; rich looks up `sys.stderr` at each write)."""


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- progress -------------------------------------------------------------------------------
class Bars:
    """One progress bar per participant, fed by trainer events and protocol messages.

    With `mine` (the participant of `disco train`) the texts say "your round k of N"; the
    shared model's own count of rounds is shown apart ("shared model: 3 rounds").
    """

    def __init__(
        self, progress: Progress, labels: Sequence[str], rounds: int, mine: bool = False
    ) -> None:
        self.progress = progress
        self.rounds = rounds
        self.mine = mine
        self.bars = [progress.add_task(label, total=rounds, info="") for label in labels]
        self.done = [0] * len(labels)
        self.started = [0] * len(labels)
        self.sent = [False] * len(labels)
        self.joined_at: list[int | None] = [None] * len(labels)
        """The shared model's rounds when each participant joined (Welcome.round)."""

    def _round(self, i: int, k: int | None = None) -> str:
        """'your round k of N' (k: the round under way, by default)."""
        k = min(self.done[i - 1] + 1, self.rounds) if k is None else k
        return f"{'your round' if self.mine else 'round'} {k} of {self.rounds}"

    def _show(self, i: int, info: str) -> None:
        self.progress.update(self.bars[i - 1], info=info)

    def _complete(self, i: int, k: int) -> None:
        """Participant `i` has completed `k` rounds."""
        self.done[i - 1] = k
        self.progress.update(self.bars[i - 1], completed=k)

    def callbacks(self, i: int) -> list[EventCallback]:
        """Trainer callbacks for participant `i` (from 1): batch counters, loss per round."""

        def on_event(event: Event) -> None:
            if event.kind == "round_start":
                # every round started before this one is done, even one whose result came as a
                # new model on reconnecting (no result message) or whose update was dropped
                if self.done[i - 1] < self.started[i - 1]:
                    self._complete(i, self.started[i - 1])
                self.started[i - 1] += 1
            elif event.kind == "batch_end":
                self._show(
                    i, f"{self._round(i)}: epoch {event.epoch}, batch {event.batch}/{event.batches}"
                )
            elif event.kind == "round_end" and event.metrics is not None:
                m = event.metrics
                acc = f", val_acc {m.val_accuracy:.3f}" if m.val_accuracy is not None else ""
                self._show(i, f"{self._round(i)}: loss {m.train_loss:.3f}{acc}")

        return [on_event]

    @staticmethod
    def waiting(participants: int, needed: int) -> str:
        """'waiting for 1 more participant (1 of 2 connected)'."""
        more = _plural(needed - participants, "more participant")
        return f"waiting for {more} ({participants} of {needed} connected)"

    def on_message(self, i: int, message: Any) -> None:
        """Show what the server says to participant `i`; a round result advances its bar."""
        kind = getattr(message, "type", "")
        waiting = getattr(message, "state", "") == "waiting_for_participants"
        if self.done[i - 1] >= self.rounds and kind != "result":
            return  # finished: others leaving do not concern this participant any more
        if kind == "welcome":
            if self.joined_at[i - 1] is None:  # (a reconnect says hello again)
                self.joined_at[i - 1] = message.round
            text = f"joined; shared model: {_plural(message.round, 'round')} before you"
            if waiting:
                text += "; " + self.waiting(message.participants, message.min_participants)
            self._show(i, text)
        elif kind == "status" and waiting:
            self._show(i, self.waiting(message.participants, message.min_participants))
        elif kind == "status" and self.sent[i - 1]:
            updates = f"{message.reported} of {message.participants} updates in"
            self._show(i, f"{self._round(i)} sent; {updates}, waiting for the others")
        elif kind == "ack":
            self.sent[i - 1] = True
            updates = f"{message.reported} of {message.participants} updates in"
            self._show(i, f"{self._round(i)} sent; {updates}, waiting for the others")
        elif kind == "result":
            self.sent[i - 1] = False
            self._complete(i, max(self.started[i - 1], self.done[i - 1] + 1))
            shared = f"shared model: {_plural(message.round, 'round')}"
            who = _plural(message.contributors, "contributor")
            text = f"{self._round(i, self.done[i - 1])} done ({who}); {shared}"
            self._show(i, text)

    def local_round_done(self, i: int) -> None:
        """Advance participant `i`'s bar after a round trained alone."""
        self._complete(i, self.done[i - 1] + 1)


@contextmanager
def progress_bars(
    labels: Sequence[str], rounds: int, enabled: bool = True, mine: bool = False
) -> Iterator[Bars]:
    """Progress bars (rounds) for `labels`, shown on stderr while the block runs."""
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
    with progress:
        yield Bars(progress, labels, rounds, mine=mine)


@contextmanager
def participant_log(plain: bool) -> Iterator[None]:
    """Show the participant's log ("disco.client") while the block runs.

    `plain` (stderr is not a terminal, or --json): every INFO line — joins, rounds, waits — as
    ``time message`` on stderr, so a participant in a pipe or a log file shows its progress.
    On a terminal the progress bar tells the same, so only warnings are shown, above the bar.
    """
    logger = logging.getLogger("disco.client")
    handler: logging.Handler
    if plain:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler.setLevel(logging.INFO)
    else:
        handler = RichHandler(console=console, show_path=False, show_level=False)
        handler.setLevel(logging.WARNING)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- commands -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from disco.server import ServerConfig, run_server

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "admin_token": args.admin_token,
        }.items()
        if v is not None
    }
    config = ServerConfig.load(file=args.config, **overrides)
    console.print(
        f"disco serving on http://{config.host}:{config.port}  (data in {config.data_dir})\n"
        "Open that address in a browser to see the tasks and train from the web page."
    )
    run_server(config)
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from disco import catalog
    from disco.task import parse_task

    if args.server:
        import httpx

        resp = httpx.get(args.server.rstrip("/") + "/api/tasks", timeout=10)
        resp.raise_for_status()
        tasks = [parse_task(t) for t in resp.json()]
    else:
        tasks = catalog.all_tasks()
    if args.json:
        _print_json({"tasks": [t.model_dump(mode="json") for t in tasks]})
        return EXIT_OK
    table = Table("id", "title", "data", "scheme", "rounds", "privacy")
    for t in tasks:
        tr = t.training
        privacy = "none"
        if tr.privacy:
            eps = epsilon(tr.privacy, tr.rounds)
            privacy = f"DP C={tr.privacy.clipping_radius:g} z={tr.privacy.noise_multiplier:g}, " + (
                f"ε={eps:.3g} (δ={DEFAULT_DELTA:g})" if math.isfinite(eps) else "no formal ε"
            )
        table.add_row(t.id, t.display.title, tr.data_type, tr.scheme, str(tr.rounds), privacy)
    Console().print(table)
    return EXIT_OK


def cmd_data_samples(args: argparse.Namespace) -> int:
    from disco.data.samples import write_samples

    info = write_samples(
        args.task,
        args.clients,
        Path(args.out),
        partition=args.partition,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    _print_samples(info)
    return EXIT_OK


def _print_samples(info: SamplesInfo) -> None:
    """What `disco data samples` wrote (folders, counts per label) and what to run next."""
    out = Console()  # stdout, looked up at each write
    first, last = info.clients[0], info.clients[-1]
    other = info.clients[1] if len(info.clients) > 1 else first
    folders = [
        (str(first) if first == last else f"{first} … {last.name}", "one folder per participant"),
        (str(info.test_dir), "held-out test data; no participant has it"),
        (str(info.out_dir / "README.txt"), "what is where"),
    ]
    width = max(len(path) for path, _ in folders)
    lines = [f"  {path:<{width}}  {what}" for path, what in folders]
    out.print(
        f"Wrote real {info.task_id} data (partition {info.partition}, seed {info.seed}):",
        *lines,
        sep="\n",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    rows = [
        *((p.name, c) for p, c in zip(info.clients, info.client_counts, strict=True)),
        ("test", info.test_counts),
    ]
    if out.is_terminal:
        table = Table("folder", title="samples per label", title_justify="left")
        for label in [*info.labels, "total"]:
            table.add_column(label, justify="right")
        for name, counts in rows:
            table.add_row(name, *map(str, counts), str(sum(counts)))
        out.print(table)
    else:
        out.print(
            "\nSamples per label:\n" + info.summary(), highlight=False, markup=False, soft_wrap=True
        )
    tabular = (first / "data.csv").is_file()
    connect = other / "data.csv" if tabular else other
    task, server = info.task_id, DEFAULT_SERVER
    pad = " " * 19
    out.print(
        "\nNext:",
        f"  train alone:     disco train --task {task} --data {first} --test {info.test_dir}",
        "  train together:  disco serve   (keep it running), then one per participant:",
        f"{pad}disco train --task {task} --data {first} --server {server}",
        *([f"{pad}(--data {other} for the next one, each in its own terminal)"] * (other != first)),
        f"  in the web app:  with disco serve running, open {server}/, pick {task!r} and",
        f"{pad}connect {connect}; a browser joins the same session",
        sep="\n",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


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
    return catalog.fetch(args.task, server=args.server)


def _load_data(path: Path, task: Task) -> tuple[Dataset, int]:
    """Load labelled data; skipped CSV rows are reported on the console. (data, rows skipped)"""
    from disco.data import load_for_task
    from disco.data.tabular import SkippedRows

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
    if together and scheme == "decentralized":
        raise TaskError(
            f"task {task.id!r} is trained peer-to-peer (scheme 'decentralized'), and peer-to-peer "
            "training is not available yet. Train it alone on your data instead: add --alone "
            "(the task still comes from the server; nothing is shared), or train it alone in "
            "the web app"
        )
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


def _stopped_message(
    expired: WaitExpired, wait: float, rounds: int, saved: Path, lost: DiscoError | None = None
) -> str:
    """What `disco train` says when it stopped early (console markup): it waited for the others
    in vain, or (`lost`) the session ended on an error."""
    kept = (
        f"the last shared model ({_plural(expired.shared_rounds, 'round')} of training "
        "with the others)"
        if expired.kept == "global"
        else "the model trained on your data (nothing was combined with the others yet)"
    )
    why = (
        f"no round closed within {wait:g} s after your update"
        if lost is None
        else f"the session ended early: {escape(str(lost))}"
    )
    return (
        f"[yellow]stopped:[/yellow] {why} "
        f"(you completed {expired.rounds_done} of {rounds} rounds). Kept {kept}, saved to "
        f"{escape(str(saved))}. Run the same command again to rejoin, or add --alone to train "
        "alone."
    )


def cmd_train(args: argparse.Namespace) -> int:
    from disco.client import ClientResult, FederatedClient, LocalClient
    from disco.models import build_torch_model
    from disco.training import evaluate

    if args.alone and not args.server:
        raise ConfigError(
            "--alone trains a server's task alone: give the server with --server URL "
            "(without --server, disco train already trains a built-in task alone)"
        )
    task = _fetch_task(args)
    together = _together(args, task)
    data, skipped_rows = _load_data(Path(args.data), task)
    rounds = args.rounds or task.training.rounds
    plain = args.json or not console.is_terminal
    start = time.perf_counter()
    result: ClientResult | None = None
    expired: WaitExpired | None = None
    lost: DiscoError | None = None
    label = args.name or "you"
    with (
        participant_log(plain),
        progress_bars([label], rounds, enabled=not plain, mine=True) as bars,
    ):
        client: FederatedClient | LocalClient
        if together:
            client = FederatedClient(
                task,
                data,
                args.server,
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
        except WaitExpired as exc:
            expired = exc
        except DiscoError as exc:
            # the session ended early (server lost, update refused): keep what was trained
            if not isinstance(client, FederatedClient) or (kept := client.kept_model()) is None:
                raise
            kind, weights, shared = kept
            expired = WaitExpired(
                str(exc),
                weights=weights,
                kept=kind,
                rounds_done=client.rounds_done,
                shared_rounds=shared,
            )
            lost = exc
    summary: dict[str, Any] = {"task": task.id}
    if result is None:
        assert expired is not None and isinstance(client, FederatedClient)
        weights = expired.weights
        summary.update(
            rounds=expired.rounds_done,
            stopped="wait_expired" if lost is None else "session_lost",
            kept=expired.kept,
            shared_rounds=expired.shared_rounds,
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
        test_data, _ = _load_data(Path(args.test), task)
        loss, acc = evaluate(model, test_data)
        summary.update(test_loss=loss, test_accuracy=acc)
    save = Path(args.save) if args.save else None
    if expired is not None and save is None:
        save = _free_path(Path(f"{task.id}-model.safetensors"))
    if save is not None:
        weights.save(save)
        summary["saved"] = str(save)
    if expired is not None and save is not None:
        wait = client.wait_for_others_s if isinstance(client, FederatedClient) else 0.0
        console.print(_stopped_message(expired, wait, rounds, save, lost), highlight=False)
    _report(summary, args.json)
    if lost is not None:
        return EXIT_SESSION_LOST
    return EXIT_WAIT_EXPIRED if expired is not None else EXIT_OK


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        console.print(f"  {key:>20}: {text}", highlight=False, markup=False, soft_wrap=True)


def cmd_simulate(args: argparse.Namespace) -> int:
    from disco.simulation import simulate

    labels = [f"client {i}" for i in range(1, args.clients + 1)]
    with progress_bars(labels, args.rounds, enabled=not args.json) as bars:
        result = simulate(
            args.task,
            args.clients,
            args.rounds,
            partition=args.partition,
            seed=args.seed,
            server=args.server,
            epochs_per_round=args.epochs_per_round,
            callbacks=bars.callbacks,
            on_message=bars.on_message,
        )
    summary = result.to_dict()
    summary.pop("history")
    _report(summary, args.json)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from disco.simulation import simulate

    console.print("disco demo: a server and 3 participants train a digit classifier (MNIST)")
    console.print("on real handwritten digits, split between them; no data leaves a participant.\n")
    start = time.perf_counter()
    labels = ["alice", "bob", "carol"]
    with progress_bars(labels, args.rounds) as bars:
        result = simulate(
            "mnist", 3, args.rounds, seed=0, callbacks=bars.callbacks, on_message=bars.on_message
        )
    acc = result.test_accuracy or 0.0
    console.print(
        f"\nfinal global model: test accuracy [bold]{acc:.1%}[/bold] on "
        f"held-out digits after {result.rounds} rounds ({time.perf_counter() - start:.0f}s)"
    )
    console.print(
        "Next: run `disco serve` and open http://127.0.0.1:8000/ in a browser (laptop or phone)"
        " to train there: pick a task, connect your files, train alone or with others.\n"
        "Sample files to connect: `disco data samples --task mnist --clients 3 --out samples`.\n"
        "Join the same session from Python: `disco train --task mnist --data samples/client_1 "
        "--server http://127.0.0.1:8000`."
    )
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs; shows defaults that say something.

    ``(default: …)`` is added to an option's help unless the default is None, False or empty,
    or the help already names it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
        ):
            return text
        return text + " (default: %(default)s)"


def _examples(*lines: str, notes: str = "") -> str:
    text = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    return text + (f"\n\n{notes}" if notes else "")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


TRAIN_NOTES = """\
exit codes:
  0    done
  2    a user error (unknown task, bad data, bad option): the message says what to change
  3    stopped waiting for the others (--max-wait, or the task's wait_for_others_s): the model
       kept is saved (--save, or ./TASK-model.safetensors) and still evaluated with --test
  4    the session ended early (server lost for good, update refused) after training began:
       the model kept is saved the same way
  130  interrupted (Ctrl+C)

In a pipe or a log file (or with --json), progress is printed as plain timestamped lines on
stderr: joins, each of your rounds, and every 30 s while waiting, how many participants are
missing. Rows of a CSV file with a bad cell are skipped and reported; the rest is used."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `disco` command."""
    p = argparse.ArgumentParser(
        prog="disco",
        description="Distributed collaborative learning: train one model together without "
        "sharing data.",
        formatter_class=HelpFormatter,
        epilog=_examples(
            "disco tasks",
            "disco demo",
            "disco serve --port 8000",
            "disco data samples --task mnist --clients 3 --out samples",
            "disco train --task mnist --data samples/client_1 --server http://127.0.0.1:8000",
            notes="`disco COMMAND --help` shows a command's options and examples.\n"
            "Exit codes: 0 done, 2 user error, 3 `disco train` stopped waiting for the others\n"
            "(the model kept is saved), 130 interrupted.",
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    def command(
        parent: Any, name: str, help: str, epilog: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(
            name,
            help=help,
            description=description or help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=HelpFormatter,
        )
        return parser

    s = command(
        sub,
        "serve",
        "run a server (REST + WebSocket + the web app, state in a data folder)",
        _examples(
            "disco serve",
            "disco serve --port 8000 --admin-token SECRET",
            "disco serve --config server.toml",
            notes="Settings come from defaults, then --config, then DISCO_* environment variables\n"
            "(DISCO_PORT, DISCO_DATA_DIR, DISCO_ADMIN_TOKEN, …), then these flags.",
        ),
    )
    s.add_argument("--host", help="interface to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, help="TCP port; 0 picks a free one (default: 8000)")
    s.add_argument(
        "--data-dir", help="folder for the database and model files (default: disco-data)"
    )
    s.add_argument(
        "--admin-token", help="token required to create tasks (default: creating tasks is off)"
    )
    s.add_argument("--config", help="TOML or JSON config file with any server setting")
    s.set_defaults(fn=cmd_serve)

    s = command(
        sub,
        "tasks",
        "list tasks (the built-in ones, or a server's with --server)",
        _examples(
            "disco tasks", "disco tasks --server http://127.0.0.1:8000", "disco tasks --json"
        ),
    )
    s.add_argument("--server", help="list this server's tasks instead of the built-in ones")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.set_defaults(fn=cmd_tasks)

    s = command(
        sub,
        "train",
        "train on local files, alone or joining a server",
        _examples(
            "disco train --task mnist --data samples/client_1 --test samples/test",
            "disco train --task mnist --data samples/client_1 --server http://127.0.0.1:8000",
            "disco train --task clinic --data my.csv --server http://127.0.0.1:8000 --alone",
            "disco train --task mnist --data samples/client_2 --server http://127.0.0.1:8000 \\\n"
            "      --max-wait 120 --save mine.safetensors --json",
            notes=TRAIN_NOTES,
        ),
    )
    s.add_argument("--task", required=True, help="task id (`disco tasks` lists them)")
    s.add_argument(
        "--data", required=True, help="your labelled data: a CSV file, or a folder of images"
    )
    s.add_argument(
        "--server",
        help="server URL: fetch the task from it and train with the others there "
        "(default: train alone on a built-in task)",
    )
    s.add_argument(
        "--alone",
        action="store_true",
        help="with --server: use the server's task but train alone; nothing is sent to it",
    )
    s.add_argument(
        "--max-wait",
        type=_positive_seconds,
        metavar="SECONDS",
        help="after your update, wait at most this long for the others, then stop and keep "
        "the model (default: the task's wait_for_others_s, 600 unless it sets another)",
    )
    s.add_argument(
        "--rounds", type=int, help="how many rounds you take part in (default: the task's)"
    )
    s.add_argument("--name", default="", help="your name, shown to the others on the server")
    s.add_argument(
        "--seed", type=int, default=0, help="seed of the validation split and data order"
    )
    s.add_argument("--test", help="labelled data to evaluate the final model on")
    s.add_argument("--save", help="write the final weights to this .safetensors file")
    s.add_argument(
        "--json", action="store_true", help="print one JSON summary line on stdout at the end"
    )
    s.set_defaults(fn=cmd_train)

    s = command(
        sub,
        "simulate",
        "federated training with N simulated participants on one machine",
        _examples(
            "disco simulate --task mnist --clients 5 --rounds 5 --json",
            "disco simulate --task breast_cancer --clients 4 --rounds 10 --partition dirichlet:0.5",
            "disco simulate --task titanic --server http://127.0.0.1:8000",
        ),
    )
    s.add_argument("--task", required=True, help="built-in task id (`disco tasks` lists them)")
    s.add_argument("--clients", type=int, default=3, help="number of participants")
    s.add_argument("--rounds", type=int, default=3, help="number of federated rounds")
    s.add_argument(
        "--partition",
        default="iid",
        help="how the data is split: iid | dirichlet:ALPHA (smaller: more uneven) | shards:K",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the split, weights and training")
    s.add_argument(
        "--epochs-per-round",
        type=int,
        help="local epochs between two rounds (default: the task's)",
    )
    s.add_argument("--server", help="use this running server instead of starting one")
    s.add_argument("--json", action="store_true", help="print one JSON summary line")
    s.set_defaults(fn=cmd_simulate)

    s = command(
        sub,
        "data",
        "data utilities",
        _examples("disco data samples --task mnist --clients 3 --out samples"),
    )
    dsub = s.add_subparsers(dest="data_command", required=True, metavar="ACTION", help="action")
    d = command(
        dsub,
        "samples",
        "write real sample data as files, one folder per participant plus a test folder",
        _examples(
            "disco data samples --task mnist --clients 3 --out samples",
            "disco data samples --task titanic --clients 2 --out titanic --partition dirichlet:0.3",
            notes="It prints the folders written, the samples per label, and what to run next.",
        ),
    )
    d.add_argument("--task", required=True, help="built-in task id (`disco tasks` lists them)")
    d.add_argument("--clients", type=int, default=3, help="number of participant folders")
    d.add_argument("--out", required=True, help="folder to write into (must be empty)")
    d.add_argument(
        "--partition", default="iid", help="how the data is split: iid | dirichlet:ALPHA | shards:K"
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the split")
    d.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what an earlier run wrote in --out (nothing else is touched)",
    )
    d.set_defaults(fn=cmd_data_samples)

    s = command(
        sub,
        "demo",
        "a server and 3 participants train on MNIST, then exit",
        _examples("disco demo", "disco demo --rounds 5"),
    )
    s.add_argument("--rounds", type=int, default=3, help="number of federated rounds")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; a user error prints one clear line and returns 2 (see the exit codes)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except DiscoError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
