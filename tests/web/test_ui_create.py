"""The code-free task form: client-side field errors, server errors on their fields, publishing."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from disco import catalog
from disco.server import ServerHandle

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

DISCO = Path(sys.executable).with_name("disco")


def _field_error(page: Any, field: str) -> Any:
    return page.locator(f'[data-field="{field}"] .field-error')


def _publish(page: Any) -> None:
    page.get_by_role("button", name="Publish the task").click()


def _fill_image_task(page: Any, title: str, task_id: str, labels: str) -> None:
    page.get_by_label("Title").fill(title)
    page.get_by_label("Short id").fill(task_id)
    page.get_by_label("Summary").fill("Tell shapes apart.")
    page.get_by_label("Kinds of pictures (answers)").fill(labels)


def test_bad_input_gets_field_errors(desktop: Any, screenshot: Any) -> None:
    desktop.goto("/#/create")
    desktop.get_by_label("Short id").fill("Bad Id!")
    desktop.get_by_label("Kinds of pictures (answers)").fill("cat")
    desktop.get_by_label("Width (pixels)").fill("8")
    desktop.get_by_label("Epochs", exact=True).fill("2")
    desktop.get_by_label("Epochs per round").fill("3")
    desktop.get_by_label("Learning rate").fill("0")
    _publish(desktop)
    expect(desktop.get_by_role("alert").first).to_contain_text("need your attention")
    expect(_field_error(desktop, "title")).to_contain_text("Give the task a title")
    expect(_field_error(desktop, "id")).to_contain_text("lowercase letters")
    expect(_field_error(desktop, "labels")).to_contain_text("at least two")
    expect(_field_error(desktop, "model")).to_contain_text("at least 12×12")
    expect(_field_error(desktop, "epochs_per_round")).to_contain_text("cannot be more")
    expect(_field_error(desktop, "learning_rate")).to_contain_text("above 0")
    expect(desktop.locator('[data-field="id"] input')).to_have_attribute("aria-invalid", "true")
    expect(desktop.locator('[data-field="summary"] .field-error')).to_have_count(0)
    screenshot(desktop, "create-errors-desktop")


def test_server_refusals_land_on_their_fields(
    desktop: Any, tmp_path: Path, admin_token: str
) -> None:
    model = catalog.get("mnist").model.model_dump(mode="json")
    model["layers"][5]["units"] = -1  # dense_1: the server's schema refuses it
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(model))

    desktop.goto("/#/create")
    desktop.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    desktop.reload()
    _fill_image_task(desktop, "Digits again", "mnist", ", ".join(str(d) for d in range(10)))
    desktop.get_by_label("Upload a model file").check()
    desktop.get_by_test_id("model-file").set_input_files(model_file)
    _publish(desktop)  # 422: the model's units
    expect(_field_error(desktop, "model")).to_contain_text("greater than 0")
    expect(_field_error(desktop, "id")).to_have_count(0)

    model["layers"][5]["units"] = 32
    model_file.write_text(json.dumps(model))
    desktop.get_by_test_id("model-file").set_input_files(model_file)
    _publish(desktop)  # 409: the id is taken
    expect(_field_error(desktop, "id")).to_contain_text("already exists")
    expect(_field_error(desktop, "model")).to_have_count(0)


def test_publish_asks_for_the_admin_token(
    any_page: Any, server: ServerHandle, admin_token: str, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    task_id = f"shapes-{size}"
    any_page.goto("/#/create")
    _fill_image_task(any_page, f"Shapes ({size})", task_id, "circle, square\ntriangle")
    any_page.get_by_label("Width (pixels)").fill("16")
    any_page.get_by_label("Height (pixels)").fill("16")
    any_page.get_by_label("Protect updates").check()
    any_page.get_by_label("Noise multiplier").fill("0.5")
    _publish(any_page)
    token = any_page.get_by_label("Admin token")
    expect(_field_error(any_page, "token")).to_contain_text("needs the server's admin token")
    token.fill("wrong-token-123")
    _publish(any_page)
    expect(_field_error(any_page, "token")).to_contain_text("wrong")
    screenshot(any_page, f"create-token-{size}")
    token.fill(admin_token)
    _publish(any_page)
    expect(any_page.get_by_test_id("create-success")).to_contain_text("Published")

    with urllib.request.urlopen(f"{server.url}/api/tasks/{task_id}", timeout=10) as res:
        task = json.load(res)
    assert task["training"]["labels"] == ["circle", "square", "triangle"]
    assert task["training"]["privacy"] == {"clipping_radius": 1.0, "noise_multiplier": 0.5}
    assert task["model"]["input_shape"] == [16, 16, 1]
    assert task["model"]["layers"][-1]["units"] == 3
    any_page.get_by_role("link", name="Open the task").click()
    expect(any_page.get_by_test_id("task-title")).to_have_text(f"Shapes ({size})")
    expect(any_page.get_by_test_id("privacy-text")).to_contain_text("blurred with noise")


def test_table_task_from_a_csv_header(
    desktop: Any, server: ServerHandle, breast_cancer_files: Path, admin_token: str
) -> None:
    desktop.goto("/#/create")
    desktop.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    desktop.reload()
    desktop.get_by_label("Title").fill("Breast cancer, my way")
    desktop.get_by_label("A table (CSV file)").check()
    desktop.get_by_test_id("columns-csv").set_input_files(
        breast_cancer_files / "client_1" / "data.csv"
    )
    expect(desktop.get_by_text("Read 30 input columns")).to_be_visible()
    expect(desktop.get_by_label("Answer column")).to_have_value("target")
    expect(desktop.get_by_label("Possible answers")).to_have_value("0, 1")
    desktop.get_by_label("Column 1", exact=True).fill("")
    _publish(desktop)
    expect(_field_error(desktop, "columns.0.name")).to_contain_text("Name the column")
    desktop.get_by_role("button", name="Remove column 1", exact=True).click()
    _publish(desktop)
    expect(desktop.get_by_test_id("create-success")).to_be_visible()

    with urllib.request.urlopen(f"{server.url}/api/tasks/breast-cancer-my-way", timeout=10) as r:
        task = json.load(r)
    columns = task["training"]["input_columns"]
    assert [c["name"] for c in columns][:2] == ["mean_texture", "mean_perimeter"]
    assert len(columns) == 29 and task["training"]["output_column"] == "target"
    assert 15 < columns[0]["mean"] < 25 and columns[0]["std"] > 1
    assert task["model"]["input_shape"] == [29]
    assert task["model"]["loss"] == "binary_crossentropy"
    rounds = task["training"]["epochs"] // task["training"]["epochs_per_round"]

    # the new task is trained together by this browser and a Python client
    desktop.get_by_role("link", name="Open the task").click()
    desktop.get_by_test_id("step-next").click()
    desktop.get_by_test_id("train-csv-files").set_input_files(
        breast_cancer_files / "client_1" / "data.csv"
    )
    expect(desktop.get_by_test_id("train-summary").get_by_test_id("sample-count")).not_to_have_text(
        "0"
    )
    desktop.get_by_test_id("step-next").click()
    expect(desktop.get_by_label("With others")).to_be_checked()
    desktop.get_by_test_id("start-training").click()
    status = desktop.get_by_test_id("training-status")
    expect(status).to_have_attribute("data-phase", "waiting_for_participants", timeout=30_000)
    python = subprocess.run(
        [str(DISCO), "train", "--task", "breast-cancer-my-way", "--server", server.url, "--json",
         "--data", str(breast_cancer_files / "client_2"), "--name", "python-1"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert python.returncode == 0, python.stderr
    result = json.loads(python.stdout.strip().splitlines()[-1])
    expect(status).to_have_attribute("data-phase", "done", timeout=60_000)
    expect(desktop.get_by_test_id("counter-round")).to_have_text(f"{rounds} / {rounds}")
    expect(desktop.get_by_test_id("training-log")).to_contain_text("2 contributor(s)")
    with urllib.request.urlopen(f"{server.url}/api/tasks/breast-cancer-my-way/rounds") as res:
        history = json.load(res)
    assert len(history) == rounds
    assert all(
        sorted(p["kind"] for p in r["participants"]) == ["browser", "python"] for r in history
    )
    assert result["digest"] == history[-1]["digest"]
