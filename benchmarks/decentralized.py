"""Decentralized rounds over WebRTC against federated rounds on the same work (MNIST CNN).

For each number of participants n, both sides train the same data splits for the same rounds
(1 epoch per round): federated — a real server on loopback aggregates `FederatedClient` updates
over WebSockets; decentralized — `PeerClient`s on the same server, which only paces them, send
their updates to each other over aiortc data channels on loopback and combine them themselves.
Everything runs in one process, so the participants' training takes turns on the one training
thread in both cases; the ratio shows what exchanging peer to peer costs on top.

    .venv/bin/python benchmarks/decentralized.py [--sizes 3 5 10] [--rounds 3] [--repeats 2]

With ``--processes`` every participant is its own `disco train` process instead (as on separate
devices: each peer has its own WebRTC stack), and the time per round is what the server measured
from one round's start to its close, over the rounds after the first (start-up excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from disco import catalog
from disco.client import FederatedClient
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.decentralized.connector import use_host_addresses
from disco.decentralized.peer import PeerClient
from disco.server import ServerConfig, start_in_background


async def _run(clients: list[Any], rounds: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(c.run(rounds) for c in clients))
    return time.perf_counter() - start


def _server(tmp: Path) -> tuple[Any, str]:
    """A quiet server on loopback under `tmp`, and its admin token."""
    token = secrets.token_urlsafe(8)
    config = ServerConfig(
        port=0, data_dir=tmp / "srv", admin_token=token, seed_catalog=False, log_level="warning"
    )
    return start_in_background(config), token


def _publish(url: str, token: str, task: Any) -> None:
    httpx.post(
        f"{url}/api/tasks",
        content=task.model_dump_json(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).raise_for_status()


def _in_processes(url: str, token: str, task: Any, folders: list[Path]) -> dict[str, Any]:
    """Run one `disco train` process per folder on `task`; per-round times the server measured
    (rounds after the first) and the mean bytes each participant sent per round."""
    _publish(url, token, task)
    rounds = task.training.rounds
    command = [sys.executable, "-m", "disco.cli", "train", "--task", task.id, "--server", url]
    command += ["--json", "--ice-host", "127.0.0.1", "--rounds", str(rounds)]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TERM")}
    procs = [
        subprocess.Popen(
            [*command, "--data", str(f), "--seed", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for i, f in enumerate(folders)
    ]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a participant of {task.id} failed")
    summaries = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    history = httpx.get(f"{url}/api/tasks/{task.id}/rounds", timeout=30).json()
    return {
        "round_s": statistics.median(h["duration_s"] for h in history[1:]),
        "bytes": statistics.mean(s["bytes_up"] for s in summaries) / rounds,
        "digests": len({s["digest"] for s in summaries}),
    }


def processes(args: argparse.Namespace) -> int:
    """Every participant a `disco train` process; rounds timed by the server."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        server, token = _server(Path(tmp))
        try:
            for n in args.sizes:
                write_samples("mnist", n, Path(tmp) / f"data{n}", seed=0)
                folders = [Path(tmp) / f"data{n}" / f"client_{i}" for i in range(1, n + 1)]
                base = catalog.get("mnist").with_training(
                    epochs_per_round=1, epochs=args.rounds, min_participants=n
                )
                fed, dec = [], []
                for rep in range(args.repeats):
                    fed_task = base.model_copy(update={"id": f"pfed-{n}-{rep}"})
                    dec_task = base.with_training(scheme="decentralized").model_copy(
                        update={"id": f"pdec-{n}-{rep}"}
                    )
                    fed.append(_in_processes(server.url, token, fed_task, folders))
                    dec.append(_in_processes(server.url, token, dec_task, folders))
                rows.append((n, fed, dec))
        finally:
            server.stop()
    print(
        f"MNIST CNN, {args.rounds} rounds x 1 epoch, {args.repeats} runs; one `disco train` "
        "process per participant; seconds per round as the server measured them (rounds after "
        "the first), medians"
    )
    print("n | fed s/round | dec s/round | ratio | fed MB up/peer/round | dec MB up/peer/round")
    for n, fed, dec in rows:
        f = statistics.median(r["round_s"] for r in fed)
        d = statistics.median(r["round_s"] for r in dec)
        fb = statistics.mean(r["bytes"] for r in fed) / 1e6
        db = statistics.mean(r["bytes"] for r in dec) / 1e6
        same = all(r["digests"] == 1 for r in dec)
        print(f"{n} | {f:.2f} | {d:.2f} | {d / f:.3f} | {fb:.2f} | {db:.2f} | same model: {same}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs; medians shown")
    parser.add_argument(
        "--processes", action="store_true", help="one `disco train` process per participant"
    )
    args = parser.parse_args(argv)
    if args.processes:
        return processes(args)
    use_host_addresses(["127.0.0.1"])  # every peer is on this machine

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        server, token = _server(Path(tmp))
        try:
            for n in args.sizes:
                write_samples("mnist", n, Path(tmp) / f"data{n}", seed=0)
                base = catalog.get("mnist").with_training(
                    epochs_per_round=1, epochs=args.rounds, min_participants=n
                )
                datasets = [
                    load_for_task(Path(tmp) / f"data{n}" / f"client_{i}", base.training)
                    for i in range(1, n + 1)
                ]
                fed_s: list[float] = []
                dec_s: list[float] = []
                peers: list[PeerClient] = []
                feds: list[FederatedClient] = []
                for rep in range(args.repeats + 1):  # rep 0 warms up and is not counted
                    fed_task = base.model_copy(update={"id": f"fed-{n}-{rep}"})
                    dec_task = base.with_training(scheme="decentralized").model_copy(
                        update={"id": f"dec-{n}-{rep}"}
                    )
                    _publish(server.url, token, fed_task)
                    _publish(server.url, token, dec_task)
                    feds = [
                        FederatedClient(fed_task, d, server.url, seed=i, name=f"f{i}")
                        for i, d in enumerate(datasets)
                    ]
                    peers = [
                        PeerClient(dec_task, d, server.url, seed=i, name=f"p{i}")
                        for i, d in enumerate(datasets)
                    ]
                    fed = asyncio.run(_run(feds, args.rounds))
                    dec = asyncio.run(_run(peers, args.rounds))
                    if rep > 0:
                        fed_s.append(fed)
                        dec_s.append(dec)
                timings = [t for p in peers for t in p.timings]
                first = [t for t in timings if t.round == 0]
                later = [t for t in timings if t.round > 0] or first
                rows.append(
                    {
                        "n": n,
                        "fed": statistics.median(fed_s) / args.rounds,
                        "dec": statistics.median(dec_s) / args.rounds,
                        "connect_first": statistics.mean(t.connect_s for t in first),
                        "connect_later": statistics.mean(t.connect_s for t in later),
                        "train": statistics.mean(t.train_s for t in timings),
                        "exchange": statistics.mean(t.exchange_s for t in timings),
                        "combine": statistics.mean(t.combine_s for t in timings),
                        "fed_bytes": statistics.mean(c.bytes_up for c in feds) / args.rounds,
                        "dec_bytes": statistics.mean(p.bytes_up for p in peers) / args.rounds,
                        "agree": len({p.weights.digest() for p in peers if p.weights}) == 1,
                    }
                )
        finally:
            server.stop()

    print(
        f"MNIST CNN, {args.rounds} rounds x 1 epoch, median of {args.repeats} runs; one process, "
        "one training thread; decentralized over WebRTC (aiortc) on loopback"
    )
    head = ["n", "fed s/round", "dec s/round", "ratio", "fed MB up/peer/round"]
    head += ["dec MB up/peer/round", "same model"]
    print(" | ".join(head))
    for r in rows:
        print(
            f"{r['n']} | {r['fed']:.2f} | {r['dec']:.2f} | {r['dec'] / r['fed']:.3f} | "
            f"{r['fed_bytes'] / 1e6:.2f} | {r['dec_bytes'] / 1e6:.2f} | {r['agree']}"
        )
    print("ratio: decentralized wall time per round / federated wall time per round")
    print("where a decentralized round's time goes (mean per peer and round, seconds; the")
    print("channels open while the peer trains, so connection set-up overlaps training):")
    print("n | connect, first round | connect, later rounds | train | exchange | combine")
    for r in rows:
        print(
            f"{r['n']} | {r['connect_first']:.2f} | {r['connect_later']:.3f} | {r['train']:.2f} | "
            f"{r['exchange']:.3f} | {r['combine']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
