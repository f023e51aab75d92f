"""Secure aggregation against plain aggregation on the same work (MNIST CNN), both schemes.

For each number of participants n, both sides train the same data splits for the same rounds
(1 epoch per round) against a real server on loopback. Federated (`--scheme federated`, the
default): `FederatedClient`s; plain — each sends its update, the server averages; secure — the
same task with ``secure_aggregation`` on, so every round runs the four phases of
docs/secure_aggregation.md (keys, shares, masked inputs, unmasking) and the server sees only the
sum. Decentralized (`--scheme decentralized`): `PeerClient`s over WebRTC data channels on
loopback; plain — peers exchange their updates and average them; secure — peers exchange masked
inputs and each unmasks the sum (docs/protocol.md §19.1). Everything runs in one process (the
participants' training takes turns on the one training thread in both cases), so the ratio shows
what the protocol costs on top of the same training. Bytes are everything a participant sends and
receives, to and from the server and other peers.

A second table times the cryptography alone for one participant and for the server at the same
sizes: masking (n AES-CTR streams of the model's size, n − 1 ECDH and envelopes), and unmasking
(one stream per survivor, and per dropped participant one per survivor).

    .venv/bin/python benchmarks/secure_aggregation.py [--sizes 3 5 10 20] [--rounds 2]
        [--scheme federated|decentralized] [--memory]

Goal (issue 10): at n = 10 on the MNIST CNN, at most 1.2x the bytes and 2x the round time of
plain aggregation.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from decentralized import _publish, _server
from disco import catalog
from disco.client import FederatedClient
from disco.data import load_for_task
from disco.data.samples import write_samples
from disco.decentralized.connector import MemoryConnector, MemoryHub, use_host_addresses
from disco.decentralized.peer import PeerClient
from disco.models import init_weights
from disco.secure import quantize
from disco.secure.aggregator import SecureSum
from disco.secure.participant import SecureParticipant
from disco.task import Task

Participant = FederatedClient | PeerClient


async def _run(clients: list[Participant], rounds: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(c.run(rounds) for c in clients))
    return time.perf_counter() - start


def _participants(
    task: Task, datasets: list[Any], url: str, tag: str, memory: bool
) -> list[Participant]:
    if task.training.scheme != "decentralized":
        return [
            FederatedClient(task, d, url, seed=i, name=f"{tag}{i}") for i, d in enumerate(datasets)
        ]
    hub = MemoryHub()

    def connector(me: str, on_channel: Any, send: Any) -> MemoryConnector:
        return MemoryConnector(me, on_channel, hub)

    return [
        PeerClient(task, d, url, seed=i, name=f"{tag}{i}", connector=connector if memory else None)
        for i, d in enumerate(datasets)
    ]


def crypto_costs(n: int, values: int, dropped: int = 1) -> dict[str, float]:
    """Seconds for one participant's phases and for the server's unmasking, in memory."""
    people = [SecureParticipant("bench", 1, f"p{i:02d}") for i in range(n)]
    agg = SecureSum("bench", 1, values=values, clip=1.0, weight_cap=1024)
    for i, p in enumerate(people):
        agg.add_keys(f"p{i:02d}", *p.keys())
    setup = agg.setup()
    start = time.perf_counter()
    shares = [p.share(setup) for p in people]
    share_s = (time.perf_counter() - start) / n
    for i, s in enumerate(shares):
        agg.add_shares(f"p{i:02d}", s.commitment, s.envelopes)
    senders = agg.close_shares()
    rng = np.random.default_rng(0)
    change = rng.normal(0, 0.01, values).astype(np.float32)
    mask_s = []
    for i, p in enumerate(people[: n - dropped]):
        p.receive(agg.inbox(f"p{i:02d}"))
        start = time.perf_counter()
        words = quantize(change, 100, 1.0, setup.bits)
        masked = p.mask(words, senders)
        mask_s.append(time.perf_counter() - start)
        agg.add_masked(f"p{i:02d}", masked)
    survivors, gone = agg.close_masked()
    for i, p in enumerate(people[: n - dropped]):
        agg.add_reveal(f"p{i:02d}", p.reveal(survivors, gone))
    start = time.perf_counter()
    agg.result()
    unmask_s = time.perf_counter() - start
    return {"share": share_s, "mask": statistics.mean(mask_s), "unmask": unmask_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; medians shown")
    parser.add_argument("--scheme", choices=["federated", "decentralized"], default="federated")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="decentralized peers talk over in-process channels instead of WebRTC",
    )
    args = parser.parse_args(argv)
    if args.scheme == "decentralized":
        use_host_addresses(["127.0.0.1"])  # every peer is on this machine

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        server, token = _server(Path(tmp))
        try:
            for n in args.sizes:
                write_samples("mnist", n, Path(tmp) / f"data{n}", seed=0)
                base = catalog.get("mnist").with_training(
                    epochs_per_round=1, epochs=args.rounds, min_participants=n, scheme=args.scheme
                )
                datasets = [
                    load_for_task(Path(tmp) / f"data{n}" / f"client_{i}", base.training)
                    for i in range(1, n + 1)
                ]
                plain_s: list[float] = []
                secure_s: list[float] = []
                plain: list[Participant] = []
                secure: list[Participant] = []
                for rep in range(args.repeats + 1):  # rep 0 warms up and is not counted
                    plain_task = base.model_copy(update={"id": f"plain-{n}-{rep}"})
                    secure_task = base.with_training(
                        secure_aggregation={"clip": 1.0, "weight_cap": 1024}
                    ).model_copy(update={"id": f"secure-{n}-{rep}"})
                    _publish(server.url, token, plain_task)
                    _publish(server.url, token, secure_task)
                    plain = _participants(plain_task, datasets, server.url, "f", args.memory)
                    secure = _participants(secure_task, datasets, server.url, "s", args.memory)
                    p = asyncio.run(_run(plain, args.rounds))
                    s = asyncio.run(_run(secure, args.rounds))
                    if rep > 0:
                        plain_s.append(p)
                        secure_s.append(s)
                values = init_weights(base.model, seed=0).size
                rows.append(
                    {
                        "n": n,
                        "plain": statistics.median(plain_s) / args.rounds,
                        "secure": statistics.median(secure_s) / args.rounds,
                        "plain_bytes": _bytes(plain) / args.rounds,
                        "secure_bytes": _bytes(secure) / args.rounds,
                        "values": values,
                        "agree": _agree(plain) and _agree(secure),
                        **crypto_costs(n, values),
                    }
                )
        finally:
            server.stop()

    how = "over WebSockets"
    if args.scheme == "decentralized":
        how = "over in-process channels" if args.memory else "over WebRTC on loopback"
    print(
        f"MNIST CNN ({rows[0]['values']:,} values), {args.scheme} {how}, {args.rounds} rounds x "
        f"1 epoch, median of {args.repeats} run(s); one process, one training thread"
    )
    print(
        "n | plain s/round | secure s/round | time ratio | plain KB up+down/participant/round "
        "| secure KB | bytes ratio | same model"
    )
    for r in rows:
        pb, sb = r["plain_bytes"], r["secure_bytes"]
        print(
            f"{r['n']} | {r['plain']:.2f} | {r['secure']:.2f} | {r['secure'] / r['plain']:.3f} | "
            f"{pb / 1e3:.0f} | {sb / 1e3:.0f} | {sb / pb:.3f} | {r['agree']}"
        )
    print("\nthe cryptography alone (seconds; one participant, and an aggregator with 1 dropped):")
    print("n | shares (keys, Shamir, envelopes) | quantise + mask | unmask")
    for r in rows:
        print(f"{r['n']} | {r['share']:.4f} | {r['mask']:.4f} | {r['unmask']:.4f}")
    return 0


def _bytes(participants: list[Participant]) -> float:
    """Mean bytes a participant sent and received (server and peers)."""
    return statistics.mean(c.bytes_up + c.bytes_down for c in participants)


def _agree(participants: list[Participant]) -> bool:
    """Whether every participant ended with the same model."""
    peers = [p for p in participants if isinstance(p, PeerClient)]
    return len({p.weights.digest() for p in peers if p.weights is not None}) <= 1


if __name__ == "__main__":
    sys.exit(main())
