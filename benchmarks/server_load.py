"""Server load: one federated round with N participants, driven from separate processes.

A real `disco serve` process on loopback holds one task with a tiny model (a two-feature logistic
regression: 3 values) and `min_participants` = N. Worker processes (so that the load generator is
not what is measured) open N WebSocket connections between them and speak the protocol as
participants do: `hello`, then, once all N are connected, one `update` each, then they read until
the `result`. The update carries the round's model itself, so the server's work is the protocol's,
not the arithmetic's.

For each N: how long connecting took, how long after the last update was sent every participant
had the result (the round's close as participants see it), the server process's CPU time and
peak RSS (from /proc), and the messages each participant received in the round. The first size is
the baseline: the ratio column is the server's CPU per participant against it (1.0: linear).

    .venv/bin/python benchmarks/server_load.py [--sizes 100 500 1000 2000] [--workers 8]

Goal (issue 11): 1,000 participants in one round close in < 2 s after the last update, and the
cost grows linearly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TASK = {
    "id": "load",
    "display": {"title": "Load"},
    "training": {
        "data_type": "tabular",
        "input_columns": [{"name": "a"}, {"name": "b"}],
        "output_column": "y",
        "min_participants": 1,
        "round_deadline_s": 600,
        "epochs": 1,
    },
    "model": {
        "input_shape": [2],
        "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_crossentropy",
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mb(pid: int, key: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- a worker: many participants in one process ------------------------------------------------
def worker(url: str, task_id: str, count: int, ready: Any, go: Any, out: Any) -> None:
    """Run `count` participants; report (connected, last update sent, last result, messages)."""
    out.put(asyncio.run(_participants(url, task_id, count, ready, go)))


async def _participants(url: str, task_id: str, count: int, ready: Any, go: Any) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from disco.protocol import Hello, ModelUpdate, RoundResult, Welcome, decode, encode

    ws_url = url.replace("http", "ws", 1) + "/ws"
    sockets = []
    models = []
    for i in range(count):
        ws = await connect(ws_url, max_size=None, open_timeout=60, ping_interval=None)
        await ws.send(encode(Hello(task_id=task_id, name=f"load-{os.getpid()}-{i}")))
        welcome = decode(await ws.recv())
        assert isinstance(welcome, Welcome) and welcome.weights is not None
        sockets.append(ws)
        models.append(welcome.weights)
    ready.put(count)
    await asyncio.to_thread(go.wait)
    received = [0] * count
    result_at = [0.0] * count

    async def read(k: int) -> None:
        while True:
            message = decode(await sockets[k].recv())
            received[k] += 1
            if isinstance(message, RoundResult):
                result_at[k] = time.time()
                return

    readers = [asyncio.ensure_future(read(k)) for k in range(count)]
    for ws, weights in zip(sockets, models, strict=True):
        await ws.send(encode(ModelUpdate(round=0, num_samples=1, weights=weights)))
    sent_at = time.time()
    await asyncio.wait_for(asyncio.gather(*readers), 600)
    for ws in sockets:
        await ws.close()
    return {"sent_at": sent_at, "result_at": max(result_at), "received": sum(received)}


# -- one size ----------------------------------------------------------------------------------
def one_size(url: str, token: str, pid: int, n: int, workers: int) -> dict[str, float]:
    task = json.loads(json.dumps(TASK))
    task["id"] = f"load-{n}"
    task["training"]["min_participants"] = n
    request = urllib.request.Request(
        f"{url}/api/tasks",
        data=json.dumps(task).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).close()
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [n // workers + (1 if k < n % workers else 0) for k in range(workers)]
    procs = [
        ctx.Process(target=worker, args=(url, task["id"], c, ready, go, out)) for c in shares if c
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    connected = sum(ready.get(timeout=600) for _ in procs)
    connect_s = time.perf_counter() - start
    assert connected == n
    cpu_before = _proc_cpu_s(pid)
    go.set()
    reports = [out.get(timeout=900) for _ in procs]
    cpu = _proc_cpu_s(pid) - cpu_before
    for p in procs:
        p.join(timeout=60)
    last_update = max(r["sent_at"] for r in reports)
    everyone = max(r["result_at"] for r in reports)
    return {
        "n": n,
        "connect_s": connect_s,
        "close_s": everyone - last_update,
        "cpu_s": cpu,
        "rss_mb": _proc_mb(pid, "VmRSS"),
        "peak_mb": _proc_mb(pid, "VmHWM"),
        "messages": sum(r["received"] for r in reports) / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--workers", type=int, default=8, help="load-generating processes")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="disco-load-") as tmp:
        port, token = _free_port(), secrets.token_urlsafe(12)
        env = {**os.environ, "DISCO_LOG_LEVEL": "warning"}
        # every simulated participant comes from 127.0.0.1: the per-address rates do not apply
        env |= {"DISCO_CONNECTIONS_PER_MINUTE": "0", "DISCO_REQUESTS_PER_MINUTE": "0"}
        command = [sys.executable, "-m", "disco.cli", "serve", "--port", str(port)]
        command += ["--data-dir", tmp, "--admin-token", token]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/health", timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            idle_mb = _proc_mb(server.pid, "VmRSS")
            for n in args.sizes:
                row = one_size(url, token, server.pid, n, args.workers)
                rows.append(row)
                print(
                    f"  N={n}: close {row['close_s']:.2f} s, server CPU {row['cpu_s']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)

    base = rows[0]["cpu_s"] / rows[0]["n"]
    print(
        f"one federated round, tiny model, N participants from {args.workers} processes; "
        f"server idle RSS {idle_mb:.0f} MB"
    )
    print(
        "N | connect s | close after last update s | server CPU s | CPU ms/participant "
        "| vs first size | server RSS MB (peak) | messages/participant"
    )
    for r in rows:
        per = r["cpu_s"] / r["n"]
        print(
            f"{r['n']} | {r['connect_s']:.1f} | {r['close_s']:.2f} | {r['cpu_s']:.2f} | "
            f"{1000 * per:.2f} | {per / base:.2f} | {r['rss_mb']:.0f} ({r['peak_mb']:.0f}) | "
            f"{r['messages']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
