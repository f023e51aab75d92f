"""Federated overhead: a real federated MNIST-CNN run against a plain PyTorch loop doing the same.

Both sides do the same work: 10 participants with the same data splits, each training 1 epoch
per round (Adam, batch 32) and evaluating on its validation split, then a sample-weighted average.
The federated side runs the real server on loopback and 10 real protocol clients; the baseline is
a plain `torch.nn.Sequential` loop with `state_dict` averaging, no framework at all.

    .venv/bin/python benchmarks/federated_overhead.py [--rounds 5] [--clients 10]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from torch import nn

from disco import catalog
from disco.client import FederatedClient
from disco.client.base import in_training_thread
from disco.data import Dataset, load_for_task
from disco.data.samples import write_samples
from disco.server import ServerConfig, start_in_background


def plain_model() -> nn.Module:
    """The MNIST CNN of the catalog, written directly in PyTorch (NCHW)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(16 * 10 * 10, 32),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(32, 10),
    )


def _tensors(data: Dataset, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).permute(0, 3, 1, 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt), torch.from_numpy(data.y.astype(np.int64))


def plain_loop(
    splits: list[tuple[Dataset, Dataset]],
    rounds: int,
    batch_size: int,
    lr: float,
    channels_last: bool = False,
) -> float:
    """Federated averaging by hand; returns the wall time in seconds.

    `channels_last` keeps images in NHWC memory order, as disco's model does internally (the
    faster layout for small convolutions on CPU); the default is the usual NCHW.
    """
    torch.manual_seed(0)
    data = [(_tensors(tr, channels_last), _tensors(va, channels_last)) for tr, va in splits]
    models = [plain_model() for _ in splits]
    optims = [torch.optim.Adam(m.parameters(), lr=lr, eps=1e-7) for m in models]
    global_state = {k: v.clone() for k, v in models[0].state_dict().items()}
    counts = torch.tensor([len(tr) for tr, _ in splits], dtype=torch.float64)
    coeffs = (counts / counts.sum()).tolist()
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(rounds):
        states = []
        for model, opt, ((x, y), (vx, vy)) in zip(models, optims, data, strict=True):
            model.load_state_dict(global_state)
            model.train()
            order = torch.randperm(len(x))
            for b in range(0, len(x), batch_size):
                idx = order[b : b + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                logits = model(vx)
                _ = (loss_fn(logits, vy).item(), (logits.argmax(1) == vy).float().mean().item())
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        global_state = {
            k: sum(c * s[k].double() for c, s in zip(coeffs, states, strict=True)).float()
            for k in global_state
        }
    return time.perf_counter() - start


async def federated_run(clients: list[FederatedClient], rounds: int) -> float:
    """All clients through the real server; returns the wall time in seconds."""
    start = time.perf_counter()
    await asyncio.gather(*(c.run(rounds) for c in clients))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs; medians shown")
    args = parser.parse_args(argv)

    base = catalog.get("mnist").with_training(
        epochs_per_round=1, epochs=args.rounds, min_participants=args.clients
    )
    tr = base.training
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        write_samples("mnist", args.clients, Path(tmp) / "data", seed=0)
        datasets = [
            load_for_task(Path(tmp) / "data" / f"client_{i}", tr)
            for i in range(1, args.clients + 1)
        ]
        token = secrets.token_urlsafe(8)
        t0 = time.perf_counter()
        config = ServerConfig(
            port=0, data_dir=Path(tmp) / "srv", admin_token=token, seed_catalog=False,
            log_level="warning",
        )  # fmt: skip
        server = start_in_background(config)
        startup = time.perf_counter() - t0
        plain_s: list[float] = []
        plain_cl_s: list[float] = []
        fed_s: list[float] = []
        train_s: list[float] = []
        try:
            # rep 0 warms both paths up (first-call costs of the CPU kernels) and is not counted
            for rep in range(args.repeats + 1):
                task = base.model_copy(update={"id": f"mnist-bench-{rep}"})
                httpx.post(
                    f"{server.url}/api/tasks",
                    content=task.model_dump_json(),
                    headers={"Authorization": f"Bearer {token}"},
                ).raise_for_status()
                clients = [
                    FederatedClient(task, d, server.url, seed=i, name=f"b{i}")
                    for i, d in enumerate(datasets, start=1)
                ]
                splits = [(c.train_data, c.val_data) for c in clients]
                # the baseline runs on the thread disco trains on: one PyTorch thread per process
                plain = in_training_thread(
                    plain_loop, splits, args.rounds, tr.batch_size, tr.learning_rate
                )
                plain_cl = in_training_thread(
                    plain_loop, splits, args.rounds, tr.batch_size, tr.learning_rate, True
                )
                federated = asyncio.run(federated_run(clients, args.rounds))
                if rep > 0:
                    plain_s.append(plain)
                    plain_cl_s.append(plain_cl)
                    fed_s.append(federated)
                    train_s.append(sum(c._train_s for c in clients))
            status = httpx.get(f"{server.url}/api/tasks/{task.id}/status").json()
        finally:
            server.stop()

    up = sum(c.bytes_up for c in clients)
    down = sum(c.bytes_down for c in clients)
    samples = sum(len(c.train_data) for c in clients) * args.rounds
    plain, plain_cl, fed, train = (
        float(np.median(v)) for v in (plain_s, plain_cl_s, fed_s, train_s)
    )
    floor = min(plain, plain_cl)
    rows = [
        ("plain PyTorch loop, NCHW", plain, plain / floor),
        ("plain PyTorch loop, channels-last", plain_cl, plain_cl / floor),
        ("disco federated, real server on loopback", fed, fed / floor),
        ("  of which local training (disco trainer)", train, train / floor),
        ("  of which protocol, server, aggregation", fed - train, (fed - train) / floor),
    ]
    print(
        f"MNIST CNN, {args.clients} clients x {args.rounds} rounds x 1 epoch, {samples} training "
        f"samples per run; torch threads {torch.get_num_threads()}; median of {args.repeats} runs"
    )
    print(f"{'run':<44}{'wall s':>9}{'ratio':>8}")
    for name, secs, ratio in rows:
        print(f"{name:<44}{secs:>9.2f}{ratio:>8.3f}")
    print("ratio: wall time / the faster plain loop (the compute floor)")
    print(f"all runs, plain NCHW: {[round(v, 2) for v in plain_s]}")
    print(f"all runs, plain channels-last: {[round(v, 2) for v in plain_cl_s]}")
    print(f"all runs, federated: {[round(v, 2) for v in fed_s]}")
    print(f"server start (not in the ratio): {startup:.2f} s")
    print(
        f"traffic per run: {up / 1e6:.1f} MB up, {down / 1e6:.1f} MB down; "
        f"final round {status['round']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
