"""The TF.js backend the web app trains on, in a real browser page served by `disco serve`.

The server's pages are cross-origin isolated, so the wasm backend may run on several threads: by
default half the cores (at most 4), or as many as asked for (the threaded build really starts:
its workers once died of minification); without isolation it runs on one thread. Headless
Chromium offers `navigator.gpu` but no adapter, so "auto" falls back from WebGPU to wasm cleanly,
saying why. Each page trains a few real MNIST batches (`bench.html`, the page of
benchmarks/browser_training.py) on disco's kernels only, without an uncaught error.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.data.sources import ImageSplit, get_source
from disco.server import ServerConfig, ServerHandle, start_in_background


def _train_a_little(page: Any, threads: int | None = None) -> dict[str, Any]:
    """Train 64 real digits for one epoch on bench.html with backend "auto"; its report."""
    page.goto("/bench.html")
    page.wait_for_function("typeof window.discoBench === 'function'", timeout=60_000)
    train = get_source("mnist").train
    assert isinstance(train, ImageSplit)
    x = np.ascontiguousarray(train.x[:64], dtype="<f4")
    y = np.ascontiguousarray(train.y[:64], dtype="<i4")
    request = {
        "taskId": "mnist",
        "backend": "auto",
        "x": base64.b64encode(x.tobytes()).decode(),
        "y": base64.b64encode(y.tobytes()).decode(),
        "n": 64,
        "epochs": 1,
        "profileSteps": 1,
        **({} if threads is None else {"threads": threads}),
    }
    report: dict[str, Any] = page.evaluate("req => window.discoBench(req)", request)
    return report


def test_isolated_pages_train_on_wasm_threads_after_no_webgpu(desktop: Any) -> None:
    desktop.goto("/")
    cores = desktop.evaluate("navigator.hardwareConcurrency")

    report = _train_a_little(desktop)

    assert desktop.evaluate("crossOriginIsolated") is True
    assert report["isolated"] is True
    assert report["backend"] == "wasm"
    default = max(1, min(cores // 2, 4))
    assert report["threads"] == default
    assert report["description"] == (
        f"WebAssembly, {default} threads" if default > 1 else "WebAssembly, one thread"
    )
    assert report["app_samples_per_s"] > 0 and report["kernels"]
    assert report["fallbacks"] == {}, "the MNIST CNN trains on disco's kernels only"


def test_isolated_pages_train_on_as_many_threads_as_asked(desktop: Any) -> None:
    desktop.goto("/")
    cores = desktop.evaluate("navigator.hardwareConcurrency")

    report = _train_a_little(desktop, threads=cores)

    assert report["backend"] == "wasm" and report["threads"] == min(cores, 8)
    assert report["fallbacks"] == {}


@pytest.fixture
def plain_server(tmp_path: Path, web_build: Path) -> Iterator[ServerHandle]:
    """A server whose pages are not cross-origin isolated."""
    config = ServerConfig(
        port=0,
        data_dir=tmp_path / "server",
        seed_catalog=True,
        web_dir=web_build,
        cross_origin_isolation=False,
    )
    with start_in_background(config) as handle:
        yield handle


def test_pages_without_isolation_train_on_one_thread(
    browser: Any, plain_server: ServerHandle
) -> None:
    context = browser.new_context(base_url=plain_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        report = _train_a_little(page)
        isolated = page.evaluate("crossOriginIsolated")
    finally:
        context.close()

    assert not errors
    assert isolated is False and report["isolated"] is False
    assert report["backend"] == "wasm" and report["threads"] == 1
    assert (
        report["description"] == "WebAssembly, one thread (the page is not cross-origin isolated)"
    )
