"""Steps the browser tests share (importable because pytest puts tests/web on sys.path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from disco import catalog


def connect_digits(page: Any, folder: Path, per_label: int, purpose: str = "train") -> int:
    """Pick `per_label` PNGs of every digit in `folder` as a person would; return the count."""
    total = 0
    for digit in range(10):
        files = sorted((folder / str(digit)).glob("*.png"))[:per_label]
        page.get_by_test_id(f"{purpose}-label-{digit}").set_input_files(files)
        total += len(files)
    count = page.get_by_test_id(f"{purpose}-summary").get_by_test_id("sample-count")
    expect(count).to_have_text(str(total), timeout=60_000)
    return total


def digits_subset(folder: Path, out: Path, per_label: int) -> Path:
    """A copy of the first `per_label` PNGs of each digit in `folder` (one folder per label)."""
    for digit in range(10):
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
        for png in sorted((folder / str(digit)).glob("*.png"))[:per_label]:
            shutil.copy(png, out / str(digit) / png.name)
    return out


def get_json(url: str) -> Any:
    """GET `url` and parse its JSON body."""
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.load(res)


def connect_table(page: Any, task_id: str, csv: Path) -> None:
    """Open the task's data step, pick the CSV file, go on to the training step."""
    page.goto(f"/#/tasks/{task_id}/connect")
    page.get_by_test_id("train-csv-files").set_input_files(csv)
    count = page.get_by_test_id("train-summary").get_by_test_id("sample-count")
    expect(count).not_to_have_text("0", timeout=30_000)
    page.get_by_test_id("step-next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Train the model")


def table_task(publish: Any, task_id: str, **training: Any) -> str:
    """A copy of the breast-cancer task (a small table) with other training settings."""
    doc = catalog.get("breast_cancer").model_dump(mode="json")
    doc["id"] = task_id
    doc["display"]["title"] = f"Small table {task_id}"
    doc["training"].update(training)
    return publish(doc)


def train_with_python_participants(
    status: Any,
    server_url: str,
    task_id: str,
    data: dict[int, Path],
    *,
    done_timeout_ms: int,
    exit_timeout_s: int,
) -> set[str]:
    """Start one `disco train --json` per folder of `data` (named python-K), wait for the page's
    `status` to reach "done" and for each process to end with 0; their final model digests."""
    disco = Path(sys.executable).with_name("disco")
    clients = [
        subprocess.Popen(
            [str(disco), "train", "--task", task_id, "--server", server_url, "--json",
             "--data", str(folder), "--name", f"python-{k}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k, folder in data.items()
    ]  # fmt: skip
    try:
        expect(status).to_have_attribute("data-phase", "done", timeout=done_timeout_ms)
        outputs = [p.communicate(timeout=exit_timeout_s) for p in clients]
    finally:
        for p in clients:
            p.kill()
    for p, (_, err) in zip(clients, outputs, strict=True):
        assert p.returncode == 0, err
    return {json.loads(out.strip().splitlines()[-1])["digest"] for out, _ in outputs}
