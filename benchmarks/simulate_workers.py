"""How much faster a simulation runs with its participants spread over worker processes.

`disco.simulate(task, clients, rounds, workers=W)` deals the participants over W processes, each
with its own event loop and one PyTorch thread (`disco.simulation.participants`). The baseline,
measured in the same run, is every participant in this process on one PyTorch thread
(``workers=1`` after ``torch.set_num_threads(1)``): the same model bit for bit, which the table
checks. Also shown: ``workers=1`` on PyTorch's default threads (its sums may be split and rounded
differently, so the digest may differ).

    .venv/bin/python benchmarks/simulate_workers.py [--task mnist] [--clients 4] [--rounds 3]
        [--workers 2,4] [--repeats 2]

Each configuration runs `--repeats` times, interleaved; the table shows medians of the wall time
of the whole `simulate` call (sample files, server, participants, evaluation).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from disco.simulation import simulate


def _run(task: str, clients: int, rounds: int, workers: int, data_dir: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = simulate(task, clients, rounds, seed=0, workers=workers, data_dir=data_dir)
    return time.perf_counter() - start, result.digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="2,4", help="worker counts to try, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    configs = [("1 process, 1 thread (baseline)", 1, 1)]
    configs.append((f"1 process, {default_threads} threads (PyTorch's default)", 1, 0))
    configs += [
        (f"{w} worker processes, 1 thread each", w, 1) for w in map(int, args.workers.split(","))
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    digests: dict[str, set[str]] = {name: set() for name, _, _ in configs}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")  # the same sample files for every run
        for _ in range(args.repeats):
            for name, workers, threads in configs:
                torch.set_num_threads(threads or default_threads)
                wall, digest = _run(args.task, args.clients, args.rounds, workers, data)
                times[name].append(wall)
                digests[name].add(digest)
    base_name = configs[0][0]
    base = statistics.median(times[base_name])
    (base_digest,) = digests[base_name]
    print(
        f"### {args.task}, {args.clients} participants, {args.rounds} rounds, "
        f"{os.cpu_count()} cores; medians of {args.repeats}\n"
    )
    print(f"load average at the start: {load[0]:.2f}, at the end: {os.getloadavg()[0]:.2f}\n")
    print("| how | wall | speed-up vs baseline | same model as the baseline |")
    print("|---|---:|---:|---|")
    for name, _, _ in configs:
        wall = statistics.median(times[name])
        same = "yes" if digests[name] == {base_digest} else f"no ({len(digests[name])} digests)"
        print(f"| {name} | {wall:.1f} s | {base / wall:.2f}x | {same} |")


if __name__ == "__main__":
    main()
