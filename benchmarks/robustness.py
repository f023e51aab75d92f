"""Robustness: every attack × every aggregation rule, as real protocol participants.

MNIST (the catalog task), 10 participants with a Dirichlet(1.0) split, 2 of them attackers
(`disco simulate --attack KIND:2`), a few rounds; each cell is a whole `disco.simulate` run with
its own server on loopback, and reports the final model's accuracy on the held-out test split.
The baseline is the same run with no attack and plain FedAvg (`mean`), measured in the same run.

Goals (issue 8): FedAvg falls below 50% under sign flip and under scaling; for every attack at
least one robust rule stays within 2 points of no-attack FedAvg; centered clipping (with
momentum) within 5 points under "a little is enough" and inner-product manipulation.

    .venv/bin/python benchmarks/robustness.py [--rounds 5] [--jobs 2] [--attacks sign_flip,alie]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RULES = {
    "mean": "mean",
    "median": "median",
    "trimmed mean": "trimmed_mean:beta=0.2",
    "krum": "krum:f=2",
    "multi-krum": "multi_krum:f=2",
    "centered clipping": "centered_clipping",
    "cc without momentum": "centered_clipping:momentum=0",
    "cc + buckets of 2": "centered_clipping:bucket_size=2",
    "cosine trust": "cosine_trust",
}
ATTACKS = {  # each attack with the setting it is measured at
    "sign_flip": "k=4",
    "scale": "k=100",
    "gaussian": "sigma=1",
    "label_flip": "",
    "alie": "",
    "ipm": "eps=0.1",
    "lie": "k=1",
}


def cell(args: tuple[str, str | None, str, int, int, int, str]) -> tuple[str, str, float, float]:
    """One simulation: (attack, rule label, accuracy, seconds); accuracy NaN if it failed."""
    try:
        return _cell(args)
    except Exception as exc:  # one failed cell must not lose the others
        print(f"  {args[1]} {args[0]}: failed: {exc!r}", file=sys.stderr, flush=True)
        return args[1] or "none", args[0], float("nan"), 0.0


def _cell(args: tuple[str, str | None, str, int, int, int, str]) -> tuple[str, str, float, float]:
    rule_label, attack, data_dir, clients, rounds, seed, epochs = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from disco import simulate

    start = time.perf_counter()
    result = simulate(
        "mnist",
        clients,
        rounds,
        partition="dirichlet:1.0",
        seed=seed,
        data_dir=data_dir,
        epochs_per_round=int(epochs),
        attack=None if attack == ABSENT else attack,
        aggregation=RULES[rule_label],
    )
    return attack or "none", rule_label, result.test_accuracy or 0.0, time.perf_counter() - start


ABSENT = "absent"
"""The row where the attackers take no part (`--absent`)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--attackers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs-per-round", default="1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="simulations at once (one core each)")
    parser.add_argument("--rules", default="/".join(RULES), help="rule rows, separated by /")
    parser.add_argument("--attacks", default="/".join(ATTACKS), help="attacks, separated by /")
    parser.add_argument(
        "--absent",
        action="store_true",
        help="add a row where the attackers take no part: each rule over the honest "
        "participants' data only (what any rule can reach against an attack that withholds "
        "the attackers' data)",
    )
    args = parser.parse_args()

    from disco.data.samples import write_samples

    rules = [r for r in args.rules.split("/") if r]
    attacks = [a for a in args.attacks.split("/") if a]
    unknown = [r for r in rules if r not in RULES] + [a for a in attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown rules or attacks {unknown}; rules: {list(RULES)}")
    with tempfile.TemporaryDirectory(prefix="disco-robust-") as tmp:
        data_dir = str(Path(tmp) / "data")
        write_samples("mnist", args.clients, data_dir, partition="dirichlet:1.0", seed=args.seed)
        common = (data_dir, args.clients, args.rounds, args.seed, args.epochs_per_round)
        jobs: list[tuple[str, str | None, str, int, int, int, str]] = [("mean", None, *common)]
        jobs += [(r, None, *common) for r in rules if r != "mean"]
        jobs += [
            (r, f"{a}:{args.attackers}" + (f":{ATTACKS[a]}" if ATTACKS[a] else ""), *common)
            for a in attacks
            for r in rules
        ]
        if args.absent:  # the same shards, the attackers' (the last ones) left out
            honest = args.clients - args.attackers
            absent_dir = Path(tmp) / "absent"
            absent_dir.mkdir()
            for name in ["test", *(f"client_{i}" for i in range(1, honest + 1))]:
                (absent_dir / name).symlink_to(Path(data_dir) / name)
            absent = (str(absent_dir), honest, args.rounds, args.seed, args.epochs_per_round)
            jobs += [(r, ABSENT, *absent) for r in rules]
        results: dict[tuple[str, str], float] = {}
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for attack, rule, accuracy, seconds in pool.map(cell, jobs):
                results[(attack.split(":")[0], rule)] = accuracy
                print(
                    f"  {attack:16s} {rule:20s} {accuracy:.3f} ({seconds:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        wall = time.perf_counter() - started

    baseline = results[("none", "mean")]
    print(
        f"\nMNIST, {args.clients} participants, Dirichlet(1.0), {args.attackers} attackers, "
        f"{args.rounds} rounds × {args.epochs_per_round} epoch; held-out accuracy (%); "
        f"no-attack FedAvg {100 * baseline:.1f}%; {wall / 60:.1f} min\n"
    )
    print("| attack | " + " | ".join(rules) + " | best robust − baseline |")
    print("|---|" + "---:|" * (len(rules) + 1))
    for attack in ["none", *attacks, *([ABSENT] if args.absent else [])]:
        row = [results.get((attack, r)) for r in rules]
        robust = [v for r, v in zip(rules, row, strict=True) if r != "mean" and v is not None]
        gap = 100 * (max(robust) - baseline) if robust else float("nan")
        cells = " | ".join("" if v is None else f"{100 * v:.1f}" for v in row)
        print(f"| {attack} | {cells} | {gap:+.1f} |")

    def acc(attack: str, rule: str) -> float:
        return results.get((attack, rule), float("nan"))

    print("\ngoals:")
    for attack in ("sign_flip", "scale"):
        if attack in attacks and "mean" in rules:
            print(f"  FedAvg under {attack} < 50%: {acc(attack, 'mean') < 0.5}")
    for attack in attacks:
        best = max(acc(attack, r) for r in rules if r != "mean")
        print(f"  {attack}: a robust rule within 2 points: {best >= baseline - 0.02}")
    for attack in ("alie", "ipm"):  # the default has momentum (0.5)
        if attack in attacks and "centered clipping" in rules:
            ok = acc(attack, "centered clipping") >= baseline - 0.05
            print(f"  centered clipping under {attack} within 5 points: {ok}")


if __name__ == "__main__":
    main()
