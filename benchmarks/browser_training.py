"""Training speed in the browser against PyTorch on the same model, measured in the same run.

For each model of `WORKLOADS` (the catalog's MNIST CNN in samples/s; the GPT of the task
`shakespeare` in tokens/s, on token windows of the training plays), on the same samples, batch
size and epochs:

- in headless Chromium, on the page `bench.html` of the built web app served by a real disco
  server, in each configuration of `CONFIGS`: wasm on one thread in a page that is not
  cross-origin isolated (the plain SIMD build), wasm in an isolated page (the server's default)
  on the app's own choice of threads (half the cores, at most 4) and on one thread per core, and
  the plain-JS cpu backend (the last resort, on a share of the samples). Each runs the web app's
  loop (`Trainer.trainRound`, what the Train step runs) and the bare floor — `model.fit`, or for
  the GPT a plain loop of one `optimizer.minimize` a batch on the same windows — then
  `tf.profile` times every kernel of a few training steps (where the time goes);
- disco's PyTorch trainer on the CPU, with one thread and with one per core.

Browser runs and PyTorch runs are interleaved and repeated, and the tables show medians: the
ratios compare engines measured under the same load.

    .venv/bin/python benchmarks/browser_training.py [--samples N] [--epochs 2] [--repeats 3]
        [--models mnist,gpt] [--configs wasm-1,wasm-isolated,wasm-cores,cpu]

`--samples` defaults to each model's own (`Workload.samples`: 2048 digits, 256 windows of 64
tokens); the default run measures the MNIST CNN only (a few minutes), `--models gpt` the GPT.

Needs the built web app (`make web`). Goals (issue 12): the app's default configuration at least
0.25x PyTorch's samples/s (tokens/s for the GPT); the app's loop within 1.1x of the bare loop.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from playwright.sync_api import sync_playwright

from disco import catalog
from disco.data import Dataset
from disco.data.sources import ImageSplit, get_source
from disco.models import build_torch_model
from disco.server import ServerConfig, start_in_background
from disco.training import Trainer

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
GOAL_VS_TORCH = 0.25
GOAL_APP_OVER_BARE = 1.1
CORES = torch.get_num_threads()


class Samples(NamedTuple):
    """The same samples for both engines."""

    x: np.ndarray  # the browser's inputs (n, ...), sent as float32
    y: np.ndarray  # its labels: class ids (n,), or a row per sample (n, k) (the next tokens)
    torch: Dataset | np.ndarray  # the same samples as disco's Python `Trainer` takes them
    units: int  # what a sample counts for in the rates (1 sample; T tokens)


@dataclass(frozen=True)
class Workload:
    """A model measured in both engines: one entry of `WORKLOADS`."""

    name: str
    task_id: str  # the catalog task whose model and training settings are used
    unit: str  # what the rates count: "samples", or "tokens" for a language model
    data: Callable[[int], Samples]  # the first n samples
    samples: int  # how many by default


def _mnist(n: int) -> Samples:
    train = get_source("mnist").train
    assert isinstance(train, ImageSplit)
    x = np.ascontiguousarray(train.x[:n], dtype=np.float32)
    y = np.ascontiguousarray(train.y[:n], dtype=np.int64)
    return Samples(x, y, Dataset(x, y), 1)


def _shakespeare(n: int) -> Samples:
    """n windows of context + 1 tokens of the training plays, cut as `disco.data.text` does."""
    from disco.catalog.shakespeare import CONTEXT, tokenizer
    from disco.data.shakespeare import training_works
    from disco.data.text import TextWindows, make_windows

    tok, works = tokenizer(), iter(training_works())
    ids: list[list[int]] = []
    while sum(len(d) for d in ids) < (n + 1) * (CONTEXT + 1):
        ids.append(tok.encode(next(works).text))
    windows = make_windows(ids, tok.eot_id, CONTEXT, validation_split=0).train[:n]
    x, y = TextWindows.pairs(windows)
    return Samples(x.astype(np.float32), np.ascontiguousarray(y), windows, CONTEXT)


WORKLOADS: dict[str, Workload] = {
    "mnist": Workload("MNIST CNN", "mnist", "samples", _mnist, 2048),
    "gpt": Workload("GPT", "shakespeare", "tokens", _shakespeare, 256),
}
DEFAULT_MODELS = "mnist"


@dataclass(frozen=True)
class Browser:
    """A browser configuration: one entry of `CONFIGS`."""

    key: str
    backend: str  # the backend asked for ("wasm", "cpu"; "auto" tries WebGPU first)
    isolated: bool  # whether the server sends the COOP/COEP headers
    threads: int | None = None  # wasm threads asked for (None: the app's own choice)
    share: float = 1.0  # of the samples and profiled steps (the plain-JS backend: fewer)


CONFIGS: dict[str, Browser] = {
    c.key: c
    for c in (
        Browser("wasm-1", "wasm", isolated=False),
        Browser("wasm-isolated", "wasm", isolated=True),  # what `disco serve` gives a browser
        Browser("wasm-cores", "wasm", isolated=True, threads=CORES),
        Browser("cpu", "cpu", isolated=True, share=0.125),
    )
}
DEFAULT = "wasm-isolated"


def pytorch_rate(work: Workload, samples: Samples, epochs: int, threads: int) -> float:
    """disco's PyTorch trainer on `x`, `y` on `threads` threads, after a warm-up epoch: units/s."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        task = catalog.get(work.task_id).with_training(
            epochs_per_round=epochs, epochs=epochs, rounds_per_epoch=1
        )
        data = samples.torch
        Trainer(build_torch_model(task.model), task.training).train_round(0, data, epochs=1)
        trainer = Trainer(build_torch_model(task.model), task.training)
        start = time.perf_counter()
        trainer.train_round(0, data)
        return len(samples.x) * samples.units * epochs / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def browser_run(
    work: Workload, samples: Samples, epochs: int, config: Browser, profile_steps: int
) -> dict[str, Any]:
    """The app's loop, the bare loop and a profile in headless Chromium, rates in units/s."""
    n = max(1, int(len(samples.x) * config.share))
    x, y = samples.x[:n], samples.y[:n]
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        server_config = ServerConfig(
            port=0,
            data_dir=Path(tmp),
            seed_catalog=True,
            log_level="warning",
            cross_origin_isolation=config.isolated,
        )
        with start_in_background(server_config) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/bench.html")
                page.wait_for_function("typeof window.discoBench === 'function'", timeout=60_000)
                request = {
                    "taskId": work.task_id,
                    "backend": config.backend,
                    "x": base64.b64encode(x.astype("<f4").tobytes()).decode(),
                    "y": base64.b64encode(y.astype("<i4").tobytes()).decode(),
                    "n": n,
                    "epochs": epochs,
                    "profileSteps": max(1, round(profile_steps * config.share)),
                    **({} if config.threads is None else {"threads": config.threads}),
                }
                result: dict[str, Any] = page.evaluate("req => window.discoBench(req)", request)
            finally:
                browser.close()
    if result["isolated"] != config.isolated:
        raise RuntimeError(f"{config.key}: the page's isolation is {result['isolated']}")
    if result["backend"] != config.backend and config.backend != "auto":
        raise RuntimeError(f"{config.key}: ran on {result['backend']}, not {config.backend}")
    result["app_rate"] = result["app_samples_per_s"] * samples.units
    result["bare_rate"] = result["bare_samples_per_s"] * samples.units
    return result


def print_profile(title: str, run: dict[str, Any], top: int = 10) -> None:
    """The kernels that take most of a training step, as a markdown table."""
    kernels = run["kernels"]
    total = sum(k["ms_per_step"] for k in kernels)
    print(
        f"\nWhere a step's time goes, {title} ({run['step_ms']:.1f} ms a step of "
        f"{run['batch_size']} under tf.profile, kernels {total:.1f} ms):\n"
    )
    print("| kernel | ms/step | share | calls/step |\n|---|---:|---:|---:|")
    for k in kernels[:top]:
        share = k["ms_per_step"] / total if total else 0.0
        print(f"| {k['name']} | {k['ms_per_step']:.2f} | {share:.1%} | {k['calls_per_step']:.0f} |")
    rest = sum(k["ms_per_step"] for k in kernels[top:])
    print(f"| ({len(kernels[top:])} others) | {rest:.2f} | {rest / total if total else 0:.1%} | |")
    print(f"\nslower fallback kernels that ran: {run['fallbacks'] or 'none'}")


def measure(work: Workload, args: argparse.Namespace, configs: list[Browser]) -> None:
    """Interleaved repeats of every configuration and of PyTorch; the tables for `work`."""
    samples = work.data(args.samples or work.samples)
    rates: dict[str, list[float]] = {}
    runs: dict[str, dict[str, Any]] = {}  # the last repeat's, for the labels and profiles
    torch_rows = [f"PyTorch, {t} thread{'s' if t > 1 else ''}" for t in sorted({1, CORES})]
    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    for _ in range(args.repeats):
        for config in configs:
            run = browser_run(work, samples, args.epochs, config, args.profile_steps)
            runs[config.key] = run
            rates.setdefault(f"app:{config.key}", []).append(run["app_rate"])
            rates.setdefault(f"bare:{config.key}", []).append(run["bare_rate"])
        for threads, row in zip(sorted({1, CORES}), torch_rows, strict=True):
            rates.setdefault(row, []).append(pytorch_rate(work, samples, args.epochs, threads))
    med = {key: float(np.median(values)) for key, values in rates.items()}
    torch_rates = [med[row] for row in torch_rows]
    unit = f"{work.unit}/s"

    n = len(samples.x)
    size = f"{n} samples" if samples.units == 1 else f"{n} windows of {samples.units} tokens"
    print(
        f"\n### {work.name} (task `{work.task_id}`): {size} x {args.epochs} "
        f"epochs, Chromium headless, {CORES} cores; medians of {args.repeats} interleaved runs\n"
    )
    load_after = os.getloadavg()
    loads = " -> ".join(", ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
    print(f"started {started}; load average (1, 5, 15 min) at the start and the end: {loads}\n")
    heads = " | ".join(f"vs {row}" for row in torch_rows)
    print(f"| engine | {unit} | {heads} | app loop / bare loop (time) |")
    print("|---|---:|" + "---:|" * len(torch_rows) + "---:|")
    for config in configs:
        app, bare = med[f"app:{config.key}"], med[f"bare:{config.key}"]
        label = f"{config.key}: {runs[config.key]['description']}"
        if config.share < 1:
            label += f" ({config.share:.0%} of the samples)"
        ratios = " | ".join(f"{app / t:.3f}" for t in torch_rates)
        print(f"| browser, {label} | {app:.0f} | {ratios} | {bare / app:.3f} |")
    for row, t in zip(torch_rows, torch_rates, strict=True):
        ratios = " | ".join(f"{t / other:.3f}" for other in torch_rates)
        print(f"| {row} (disco Trainer) | {t:.0f} | {ratios} | |")
    if DEFAULT in runs:
        app = med[f"app:{DEFAULT}"]
        pairs = zip(torch_rows, torch_rates, strict=True)
        print(
            f"\nthe app's default ({DEFAULT}) / PyTorch: "
            + ", ".join(f"{app / t:.3f} ({row})" for row, t in pairs)
            + f"; goal >= {GOAL_VS_TORCH}. App loop / bare loop goal: <= {GOAL_APP_OVER_BARE}."
        )
    for config in configs:
        print_profile(f"{config.key}: {runs[config.key]['description']}", runs[config.key])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="default: the model's own")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="of: " + ",".join(WORKLOADS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="of: " + ",".join(CONFIGS))
    args = parser.parse_args(argv)
    models, keys = args.models.split(","), args.configs.split(",")
    unknown = [m for m in models if m not in WORKLOADS] + [k for k in keys if k not in CONFIGS]
    if unknown:
        parser.error(f"unknown model or configuration: {', '.join(unknown)}")
    for model in models:
        measure(WORKLOADS[model], args, [CONFIGS[k] for k in keys])
    return 0


if __name__ == "__main__":
    sys.exit(main())
