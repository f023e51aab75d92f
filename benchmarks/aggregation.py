"""Aggregation throughput and memory: every rule over a round of 100 updates of a ~5 MB model.

Each rule runs in its own process, the way a server runs a round: the round's collector
(`Aggregator.open_round`) receives the updates one by one and `result()` gives the new model.

* **GB/s** — update bytes combined per second (100 × 5 MB / time from the first `add` to the
  result), against the floor measured in the same process: numpy reading the same bytes
  (`ndarray.sum` over every update). Goal: `mean` ≥ 0.5 of the floor. Measured twice: updates
  added one at a time, and added from 6 threads at once, as the server adds them when many
  uploads land together (its thread pool has 6 workers on 2 cores: FedAvg then folds the
  updates that wait together, in one pass over its sums).
* **peak memory** — the process's peak RSS while a round of updates arrives one at a time (each
  update is dropped once added, as the server does), minus its idle RSS with the global model
  loaded, in units of the model's size. Goal: `mean` ≤ 4× the model.

    .venv/bin/python benchmarks/aggregation.py [--updates 100] [--mib 5] [--rules mean/median]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

WORKERS = 6  # the server's thread pool on 2 cores (min(32, cores + 4))
RULES = {
    "mean": {"rule": "mean", "max_share": 0.5},
    "mean (no cap)": {"rule": "mean", "max_share": 1.0},
    "median": {"rule": "median"},
    "trimmed_mean": {"rule": "trimmed_mean", "beta": 0.1},
    "krum": {"rule": "krum", "f": 10},
    "multi_krum": {"rule": "multi_krum", "f": 10},
    "centered_clipping": {"rule": "centered_clipping"},
    "median (buckets of 2)": {"rule": "median", "bucket_size": 2},
}


def model_shapes(mib: float) -> dict[str, tuple[int, ...]]:
    """A CNN-like model of about `mib` MiB: two convolutions, a large dense layer, biases."""
    total = int(mib * 2**20 / 4)
    dense_in = (total - 102400 - 51200 - 64 - 128 - 640) // 128
    return {
        "conv1.kernel": (5, 5, 64, 64),
        "conv1.bias": (64,),
        "conv2.kernel": (5, 5, 32, 64),
        "dense.kernel": (dense_in, 128),
        "dense.bias": (128,),
        "out.kernel": (64, 10),
    }


def rss() -> tuple[int, int]:
    """(current, peak) resident memory of this process, in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def training_noise(global_weights, seed: int) -> dict:  # type: ignore[no-untyped-def]
    """What local training changes, for `updates` (made before measuring: not the server's)."""
    rng = np.random.default_rng(seed)
    return {
        n: rng.normal(scale=0.01, size=a.size).astype(np.float32) for n, a in global_weights.items()
    }


def updates(global_weights, count: int, noise: dict) -> Iterator:  # type: ignore[no-untyped-def]
    """`count` trained models, made one at a time (only the one being handed out is alive)."""
    from disco.weights import Weights

    for i in range(count):
        shift = np.float32(0.001 * ((i * 7919) % 101 - 50))
        arrays = []
        for n, a in global_weights.items():
            arr = np.add(a.reshape(-1), noise[n])  # the only allocation: the update itself
            arr += shift
            arrays.append((n, arr.reshape(a.shape)))
        yield Weights.adopt(arrays)


def one_rule(name: str, count: int, mib: float) -> dict[str, float]:
    """Measure one rule in this process; returns the numbers as a dict."""
    from pydantic import TypeAdapter

    from disco import catalog
    from disco.aggregation import build_aggregator
    from disco.task import AggregationConfig
    from disco.weights import Weights

    config = TypeAdapter(AggregationConfig).validate_python(RULES[name])
    training = catalog.get("mnist").training.model_copy(update={"aggregation": config})
    rng = np.random.default_rng(0)
    shapes = model_shapes(mib)
    g = Weights.adopt(
        (n, rng.normal(scale=0.1, size=s).astype(np.float32)) for n, s in shapes.items()
    )
    size = g.nbytes

    # memory: updates arrive one at a time and are dropped once added
    noise = training_noise(g, seed=1)
    aggregator = build_aggregator(training)
    collector = aggregator.open_round(g)
    idle, _ = rss()
    reset_peak()
    for i, update in enumerate(updates(g, count, noise)):
        collector.add(f"p{i:03d}", update, 100 + i % 17)
        del update
    collector.result()
    peak = rss()[1] - idle
    del collector

    # speed: the same round again, updates already in memory; the floor reads the same bytes
    held = list(updates(g, count, noise))
    floor = min(
        _timed(lambda: [float(a.sum()) for u in held for a in u.values()]) for _ in range(3)
    )
    seconds: dict[int, list[float]] = {1: [], WORKERS: []}
    for _ in range(2):
        for workers in seconds:
            seconds[workers].append(_round(build_aggregator(training).open_round(g), held, workers))
    total = count * size
    return {
        "rule": name,
        "gbps": total / min(seconds[1]) / 1e9,
        "gbps_together": total / min(seconds[WORKERS]) / 1e9,
        "floor_gbps": total / floor / 1e9,
        "peak_models": peak / size,
        "model_mb": size / 1e6,
    }


def _round(collector, held: list, workers: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds to add `held` to `collector` from `workers` threads and get the result."""

    def add(i: int) -> None:
        collector.add(f"p{i:03d}", held[i], 100 + i % 17)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(add, range(len(held))))
    collector.result()
    return time.perf_counter() - start


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=100, help="updates in the round")
    parser.add_argument("--mib", type=float, default=5.0, help="model size in MiB")
    parser.add_argument("--rules", default="/".join(RULES), help="rule rows, separated by /")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_rule(args.one, args.updates, args.mib)))
        return

    rows = []
    for name in args.rules.split("/"):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                name,
                "--updates",
                str(args.updates),
                "--mib",
                str(args.mib),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  {name}: done", file=sys.stderr, flush=True)
    model_mb = rows[0]["model_mb"] if rows else 0.0
    print(f"\n{args.updates} updates of a {model_mb:.2f} MB model (float32)\n")
    print(
        f"| rule | floor GB/s | one at a time: GB/s | vs floor | {WORKERS} at once: GB/s "
        "| vs floor | peak memory (× model) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        floor = r["floor_gbps"]
        print(
            f"| {r['rule']} | {floor:.2f} | {r['gbps']:.2f} | {r['gbps'] / floor:.3f} | "
            f"{r['gbps_together']:.2f} | {r['gbps_together'] / floor:.3f} | "
            f"{r['peak_models']:.1f} |"
        )


if __name__ == "__main__":
    main()
