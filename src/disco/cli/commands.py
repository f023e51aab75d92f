"""The `disco` commands other than `train`: serve, tasks, data samples, simulate, demo."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from disco.cli.output import DEFAULT_SERVER, EXIT_OK, console, print_json, report
from disco.cli.progress import progress_bars
from disco.errors import ConfigError, ServerError
from disco.privacy import DEFAULT_DELTA, epsilon

if TYPE_CHECKING:
    from disco.data.samples import SamplesInfo
    from disco.task import Task

__all__ = ["cmd_data_samples", "cmd_demo", "cmd_serve", "cmd_simulate", "cmd_tasks"]


def cmd_serve(args: argparse.Namespace) -> int:
    from disco.server import ServerConfig, run_server
    from disco.server.tls import scheme, tls_options

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "admin_token": args.admin_token,
            "access": args.access,
        }.items()
        if v is not None
    }
    # TLS: both flags or neither (ServerConfig says which is missing)
    tls = {"tls_cert": args.tls_cert, "tls_key": args.tls_key}
    overrides |= {k: v for k, v in tls.items() if v is not None}
    ops = {"log_format": args.log_format, "forwarded_allow_ips": args.forwarded_allow_ips}
    overrides |= {k: v for k, v in ops.items() if v is not None}
    config = ServerConfig.load(file=args.config, **overrides)
    tls_options(config)  # an unusable certificate or key stops here, before the line below
    if config.log_format == "text":  # in JSON mode, nothing but the JSON log lines
        console.print(
            f"disco serving on {scheme(config)}://{config.host}:{config.port}  "
            f"(data in {config.data_dir})\n"
            "Open that address in a browser to see the tasks and train from the web page."
        )
    run_server(config)
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from disco import catalog
    from disco.task import parse_task

    if args.server:
        import httpx

        from disco.client.access import ServerAccess, refusal

        access = ServerAccess.from_env(args.server, args.invitation, args.ca_file)
        with access.http(timeout=10) as http:
            try:
                resp = http.get("/api/tasks")
            except httpx.HTTPError as exc:  # unreachable, or a certificate not trusted
                raise access.unreachable(exc) from exc
        if resp.status_code != 200:
            raise ServerError(f"{access.url} refused to list its tasks: {refusal(resp)}")
        tasks = [parse_task(t) for t in resp.json()]
    else:
        tasks = catalog.all_tasks()
    if args.json:
        print_json({"tasks": [t.model_dump(mode="json") for t in tasks]})
        return EXIT_OK
    table = Table("id", "title", "data", "scheme", "rounds", "privacy")
    for t in tasks:
        tr = t.training
        table.add_row(
            t.id, t.display.title, tr.data_type, tr.scheme, str(tr.rounds), _privacy_words(t)
        )
    Console().print(table)
    return EXIT_OK


def _privacy_words(task: Task) -> str:
    """What protects a task's updates: differential privacy with its ε, secure aggregation with
    its settings, both, or 'none'."""
    tr = task.training
    parts = []
    if tr.privacy:
        eps = epsilon(tr.privacy, tr.rounds)
        parts.append(
            f"DP C={tr.privacy.clipping_radius:g} z={tr.privacy.noise_multiplier:g}, "
            + (f"ε={eps:.3g} (δ={DEFAULT_DELTA:g})" if math.isfinite(eps) else "no formal ε")
        )
    if tr.secure_aggregation:
        s = tr.secure_aggregation
        threshold = "automatic" if s.threshold is None else str(s.threshold)
        parts.append(
            f"secure aggregation (server sees only the sum; clip={s.clip:g}, "
            f"weight_cap={s.weight_cap}, threshold={threshold})"
        )
    return "; ".join(parts) or "none"


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
    """What `disco data samples` wrote (folders, counts per label or per work) and what next."""
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
        table = Table("folder", title=info.counted, title_justify="left")
        for label in [*info.labels, *(["total"] if info.totals else [])]:
            table.add_column(label, justify="right")
        for name, counts in rows:
            table.add_row(name, *map(str, counts), *([str(sum(counts))] if info.totals else []))
        out.print(table)
    else:
        heading = f"\n{info.counted.capitalize()}:\n"
        out.print(heading + info.summary(), highlight=False, markup=False, soft_wrap=True)
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


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _attack_words(attack: dict[str, Any] | None) -> str:
    """'sign_flip by attacker-9, attacker-10 (k=1)', or 'none'."""
    if attack is None:
        return "none"
    settings = _settings(attack["settings"])
    who = ", ".join(attack["participants"])
    return f"{attack['kind']} by {who}" + (f" ({settings})" if settings else "")


def _rule_words(aggregation: dict[str, Any]) -> str:
    """'krum (f=2, bucket_size=1)'."""
    settings = _settings({k: v for k, v in aggregation.items() if k != "rule"})
    return str(aggregation.get("rule", "?")) + (f" ({settings})" if settings else "")


def _secure_words(secure: dict[str, Any] | None) -> str:
    """'on (clip=1, weight_cap=1024, threshold=automatic)', or 'off'."""
    if secure is None:
        return "off"
    shown = {**secure, "threshold": secure.get("threshold") or "automatic"}
    return f"on ({_settings(shown)})"


def cmd_simulate(args: argparse.Namespace) -> int:
    from disco.simulation import parse_attack, simulate

    attack = parse_attack(args.attack) if args.attack else None
    attackers = attack.attackers(args.clients) if attack and args.clients >= 1 else []
    labels = [
        f"attacker {i}" if i in attackers else f"client {i}" for i in range(1, args.clients + 1)
    ]
    server = None
    if args.server:  # https: verified with --ca-file, else the system's authorities
        from disco.client.access import ServerAccess

        server = ServerAccess.from_env(args.server, args.invitation, args.ca_file)
    elif args.ca_file or args.invitation:
        raise ConfigError(
            "--ca-file and --invitation go with --server: without it the simulation starts its "
            "own plain http server on this machine"
        )
    rounds = args.rounds
    if rounds is None:  # the task's plan (a server's task: its own)
        from disco import catalog
        from disco.schedule import planned_rounds
        from disco.simulation.runner import round_length

        task = catalog.fetch(args.task, server)
        length = round_length(task.training, args.epochs_per_round, args.rounds_per_epoch)
        rounds = planned_rounds(task.training.epochs, *length)
    with progress_bars(labels, rounds, enabled=not args.json) as bars:
        result = simulate(
            args.task,
            args.clients,
            rounds,
            partition=args.partition,
            seed=args.seed,
            server=server,
            epochs_per_round=args.epochs_per_round,
            rounds_per_epoch=args.rounds_per_epoch,
            callbacks=bars.callbacks,
            on_message=bars.on_message,
            attack=attack,
            aggregation=args.aggregation,
            secure_aggregation=args.secure_aggregation,
            scheme=args.scheme,
            transport=args.transport,
            workers=args.workers,
        )
    summary = result.to_dict()
    summary.pop("history")
    if summary["unigram_loss"] is None:  # not a text task
        summary.pop("unigram_loss")
    if args.save:
        assert result.weights is not None
        result.weights.save(Path(args.save))
        summary["saved"] = args.save
    if not args.json:
        summary["attack"] = _attack_words(result.attack)
        summary["aggregation"] = _rule_words(result.aggregation)
        summary["secure_aggregation"] = _secure_words(result.secure_aggregation)
    report(summary, args.json)
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
