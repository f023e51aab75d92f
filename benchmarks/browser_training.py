"""Browser training speed: the web app's loop against a bare TF.js `model.fit` and PyTorch.

Same model (the catalog's MNIST CNN), same samples (real MNIST digits), same batch size and
epochs. The browser side runs in headless Chromium on the page `bench.html` of the built web app
served by a real disco server; the app's loop is `Trainer.trainRound` (what the Train step runs),
the floor is a bare `model.fit` on the same tensors. PyTorch runs disco's own trainer on the CPU.

    .venv/bin/python benchmarks/browser_training.py [--samples 2048] [--epochs 2] [--backend wasm]

Goal: the app's loop within 1.1x of the bare loop. The ratio to PyTorch is reported, not judged
(wasm runs single-threaded with 128-bit SIMD here).
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from disco import catalog
from disco.data import Dataset
from disco.data.sources import get_source
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


def pytorch_samples_per_s(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """disco's PyTorch trainer on the same data (one untimed warm-up epoch first)."""
    task = catalog.get("mnist").with_training(epochs_per_round=epochs, epochs=epochs)
    data = Dataset(x, y)
    Trainer(build_torch_model(task.model), task.training).train_round(0, data, epochs=1)
    trainer = Trainer(build_torch_model(task.model), task.training)
    start = time.perf_counter()
    trainer.train_round(0, data)
    return len(x) * epochs / (time.perf_counter() - start)


def browser_samples_per_s(
    x: np.ndarray, y: np.ndarray, epochs: int, backend: str
) -> dict[str, float | str]:
    """The app's loop and the bare loop in headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="disco-bench-") as tmp:
        config = ServerConfig(port=0, data_dir=Path(tmp), seed_catalog=True, log_level="warning")
        with start_in_background(config) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/bench.html")
                page.wait_for_function("typeof window.discoBench === 'function'", timeout=60_000)
                request = {
                    "taskId": "mnist",
                    "backend": backend,
                    "x": base64.b64encode(x.astype("<f4").tobytes()).decode(),
                    "y": base64.b64encode(y.astype("<i4").tobytes()).decode(),
                    "n": len(x),
                    "epochs": epochs,
                }
                result: dict[str, float | str] = page.evaluate(
                    "req => window.discoBench(req)", request
                )
            finally:
                browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backend", default="wasm", choices=["wasm", "webgl", "cpu"])
    args = parser.parse_args(argv)

    train = get_source("mnist").train
    x = np.ascontiguousarray(train.x[: args.samples], dtype=np.float32)
    y = np.ascontiguousarray(train.y[: args.samples], dtype=np.int64)

    web = browser_samples_per_s(x, y, args.epochs, args.backend)
    torch_sps = pytorch_samples_per_s(x, y, args.epochs)
    app, bare = float(web["app_samples_per_s"]), float(web["bare_samples_per_s"])

    print(
        f"MNIST CNN, {len(x)} real digits x {args.epochs} epochs, batch 32; "
        f"browser backend {web['backend']}"
    )
    print(f"{'loop':<42}{'samples/s':>11}{'vs bare TF.js':>15}")
    rows = [
        ("bare TF.js model.fit (in-browser floor)", bare),
        ("disco web app loop (Trainer.trainRound)", app),
        ("PyTorch on the CPU (disco Trainer)", torch_sps),
    ]
    for name, sps in rows:
        print(f"{name:<42}{sps:>11.0f}{bare / sps:>14.3f}x")
    print(f"app loop time / bare loop time: {bare / app:.3f} (goal <= 1.1)")
    print(f"PyTorch is {torch_sps / app:.1f}x faster than the app loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
