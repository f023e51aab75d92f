"""The `disco` command: serve, tasks, train, simulate, data, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from disco.errors import DiscoError
from disco.privacy import DEFAULT_DELTA, epsilon
from disco.training import Event, EventCallback

__all__ = ["main"]

console = Console(stderr=True)


# -- progress -------------------------------------------------------------------------------
class Bars:
    """One progress bar per participant, fed by trainer events and protocol messages."""

    def __init__(self, progress: Progress, labels: Sequence[str], rounds: int) -> None:
        self.progress = progress
        self.bars = [progress.add_task(label, total=rounds, info="") for label in labels]

    def callbacks(self, i: int) -> list[EventCallback]:
        """Trainer callbacks for participant `i` (from 1): batch counters, loss per round."""
        bar = self.bars[i - 1]

        def on_event(event: Event) -> None:
            if event.kind == "batch_end":
                info = f"training: epoch {event.epoch} batch {event.batch}/{event.batches}"
                self.progress.update(bar, info=info)
            elif event.kind == "round_end" and event.metrics is not None:
                m = event.metrics
                acc = f" val_acc {m.val_accuracy:.3f}" if m.val_accuracy is not None else ""
                self.progress.update(bar, info=f"loss {m.train_loss:.3f}{acc}")

        return [on_event]

    def on_message(self, i: int, message: Any) -> None:
        """Show what the server says to participant `i`; a round result advances its bar."""
        bar = self.bars[i - 1]
        kind = getattr(message, "type", "")
        if kind in ("welcome", "status") and message.state == "waiting_for_participants":
            info = f"waiting for participants ({message.participants}/{message.min_participants})"
            self.progress.update(bar, info=info)
        elif kind == "ack":
            info = f"update sent; {message.reported}/{message.participants} reported"
            self.progress.update(bar, info=info)
        elif kind == "result":
            info = f"round closed: {message.contributors} contributors"
            self.progress.update(bar, advance=1, info=info)

    def local_round_done(self, i: int) -> None:
        """Advance participant `i`'s bar after a round trained alone."""
        self.progress.update(self.bars[i - 1], advance=1)


@contextmanager
def progress_bars(labels: Sequence[str], rounds: int, enabled: bool = True) -> Iterator[Bars]:
    """Progress bars (rounds) for `labels`, shown on stderr while the block runs."""
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds  {task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
    with progress:
        yield Bars(progress, labels, rounds)


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
    return 0


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
        return 0
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
    return 0


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
    console.print(f"wrote {args.task} samples for {args.clients} clients under {args.out}")
    console.print(str(info))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from disco import catalog
    from disco.client import FederatedClient, LocalClient
    from disco.data import load_for_task
    from disco.models import build_torch_model
    from disco.training import evaluate

    task = catalog.fetch(args.task, server=args.server)
    data = load_for_task(Path(args.data), task.training)
    rounds = args.rounds or task.training.rounds
    with progress_bars([args.name or "me"], rounds, enabled=not args.json) as bars:
        client: FederatedClient | LocalClient
        if args.server:
            client = FederatedClient(
                task,
                data,
                args.server,
                seed=args.seed,
                name=args.name,
                callbacks=bars.callbacks(1),
                on_message=lambda m: bars.on_message(1, m),
            )
        else:
            done = [lambda e: bars.local_round_done(1) if e.kind == "round_end" else None]
            client = LocalClient(
                task, data, seed=args.seed, name=args.name, callbacks=bars.callbacks(1) + done
            )
        result = asyncio.run(client.run(rounds))
    summary: dict[str, Any] = {
        "task": task.id,
        "rounds": result.rounds,
        "samples": result.num_samples,
        "wall_s": round(result.wall_s, 3),
        "bytes_up": result.bytes_up,
        "bytes_down": result.bytes_down,
        "digest": result.weights.digest(),
    }
    if result.history:
        last = result.history[-1]
        summary.update(val_accuracy=last.val_accuracy, val_loss=last.val_loss)
    if args.test:
        model = build_torch_model(task.model)
        model.set_weights(result.weights)
        loss, acc = evaluate(model, load_for_task(Path(args.test), task.training))
        summary.update(test_loss=loss, test_accuracy=acc)
    if args.save:
        result.weights.save(args.save)
        summary["saved"] = str(args.save)
    _report(summary, args.json)
    return 0


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        console.print(f"  {key:>14}: {text}")


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
    return 0


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
    return 0


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `disco` command."""
    p = argparse.ArgumentParser(prog="disco", description="Distributed collaborative learning.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a server (REST + WebSocket, state in a data dir)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--data-dir")
    s.add_argument("--admin-token", help="token required to create tasks")
    s.add_argument("--config", help="TOML or JSON config file")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("tasks", help="list tasks (built-in, or a server's with --server)")
    s.add_argument("--server")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_tasks)

    s = sub.add_parser("train", help="train on local files, alone or joining a server")
    s.add_argument("--task", required=True)
    s.add_argument("--data", required=True, help="a CSV file or an image folder")
    s.add_argument("--server", help="server URL; without it, train alone")
    s.add_argument("--rounds", type=int)
    s.add_argument("--name", default="")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--test", help="labelled data to evaluate the final model on")
    s.add_argument("--save", help="write the final weights to this .safetensors file")
    s.add_argument("--json", action="store_true", help="print one JSON summary line")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("simulate", help="federated training with N simulated participants")
    s.add_argument("--task", required=True)
    s.add_argument("--clients", type=int, default=3)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--partition", default="iid", help="iid | dirichlet:ALPHA | shards:K")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--epochs-per-round", type=int)
    s.add_argument("--server", help="use this running server instead of starting one")
    s.add_argument("--json", action="store_true", help="print one JSON summary line")
    s.set_defaults(fn=cmd_simulate)

    s = sub.add_parser("data", help="data utilities")
    dsub = s.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("samples", help="write real sample data as files, one folder per client")
    d.add_argument("--task", required=True)
    d.add_argument("--clients", type=int, default=3)
    d.add_argument("--out", required=True)
    d.add_argument("--partition", default="iid")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true")
    d.set_defaults(fn=cmd_data_samples)

    s = sub.add_parser("demo", help="a server and 3 participants train on MNIST, then exit")
    s.add_argument("--rounds", type=int, default=3)
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except DiscoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
