"""The code-free task form: client-side field errors, server errors on their fields, publishing."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from disco import catalog
from disco.server import ServerConfig, ServerHandle, start_in_background

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


def test_publish_asks_for_the_admin_token(
    any_page: Any, server: ServerHandle, admin_token: str, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    task_id = f"shapes-{size}"
    any_page.goto("/#/create")
    # said up front: this server needs a token, and its field is there from the start
    expect(any_page.get_by_test_id("token-notice")).to_contain_text("needs its admin token")
    token = any_page.get_by_label("Admin token")
    expect(token).to_be_visible()
    _fill_image_task(any_page, f"Shapes ({size})", task_id, "circle, square\ntriangle")
    any_page.get_by_label("Width (pixels)").fill("16")
    any_page.get_by_label("Height (pixels)").fill("16")
    any_page.get_by_label("Protect updates").check()
    any_page.get_by_label("Noise multiplier").fill("0.5")
    _publish(any_page)
    expect(_field_error(any_page, "token")).to_contain_text("needs the server's admin token")
    expect(token).to_be_focused()
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


@pytest.mark.parametrize("mode", ["open", "disabled"])
def test_open_and_closed_servers_are_told_apart_up_front(
    browser: Any, web_build: Path, tmp_path: Path, mode: str
) -> None:
    config = ServerConfig(
        port=0,
        data_dir=tmp_path,
        admin_token=None,
        allow_open_creation=mode == "open",
        web_dir=web_build,
    )
    with start_in_background(config) as other:
        context = browser.new_context(base_url=other.url)
        try:
            page = context.new_page()
            page.goto("/#/create")
            expect(page.get_by_label("Title")).to_be_visible()
            expect(page.get_by_test_id("token-notice")).to_have_count(0)
            expect(page.get_by_label("Admin token")).to_have_count(0)
            publish = page.get_by_role("button", name="Publish the task")
            if mode == "open":
                expect(page.get_by_text("may need the server's admin token")).to_have_count(0)
                expect(publish).to_be_enabled()
            else:
                expect(page.get_by_test_id("creation-off")).to_contain_text(
                    "does not accept new tasks"
                )
                expect(publish).to_be_disabled()
        finally:
            context.close()


def test_controls_are_labelled_described_and_big_enough(phone: Any) -> None:
    phone.goto("/#/create")
    expect(phone.get_by_label("Admin token")).to_be_visible()
    _publish(phone)
    expect(phone.get_by_label("Title")).to_be_focused()  # the first invalid field
    for field in ("title", "labels", "token"):
        control = phone.locator(f'[data-field="{field}"]').locator("input, textarea").first
        expect(control).to_have_attribute("aria-invalid", "true")
        error_id = _field_error(phone, field).get_attribute("id")
        assert error_id and error_id in (control.get_attribute("aria-describedby") or "")
    expect(phone.locator('[aria-invalid="true"]:not(input, textarea, select)')).to_have_count(0)

    phone.get_by_label("A table (CSV file)").check()
    phone.get_by_label("Upload a model file").check()
    targets = [
        phone.get_by_role("button", name="Add a column"),
        phone.get_by_role("button", name="Remove column 1"),
        phone.get_by_text("How values are prepared", exact=True),
        phone.get_by_test_id("create-form").locator(".pick-button"),  # the file input's face
    ]
    for target in targets:
        box = target.bounding_box()
        assert box is not None and box["height"] >= 44, (target, box)


def _model_doc() -> dict[str, Any]:
    """The mnist model as a plain document, to break one thing at a time."""
    return catalog.get("mnist").model.model_dump(mode="json")


def _digits_form(page: Any, admin_token: str, task_id: str = "digits-upload") -> None:
    page.goto("/#/create")
    page.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    page.reload()
    _fill_image_task(page, "Digits again", task_id, ", ".join(str(d) for d in range(10)))
    page.get_by_label("Upload a model file").check()


def _posted_tasks(page_log: Any, page: Any) -> list[bytes]:
    """Bodies of the task documents the page posted (not the empty access check)."""
    return [
        body
        for method, url, body in page_log(page).requests
        if method == "POST" and url.endswith("/api/tasks") and body != b"null"
    ]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_broken_model_file_is_explained_as_soon_as_it_is_picked(
    size: str, request: pytest.FixtureRequest, tmp_path: Path, admin_token: str, page_log: Any,
    screenshot: Any,
) -> None:  # fmt: skip
    page = request.getfixturevalue(size)
    _digits_form(page, admin_token)
    model_input = page.get_by_label("Model file", exact=True)
    error = _field_error(page, "model")
    broken = tmp_path / "broken.json"

    broken.write_text(json.dumps({"layers": "nope"}))
    model_input.set_input_files(broken)
    expect(error).to_contain_text("input_shape is missing")
    expect(error).to_contain_text("loss is missing")
    expect(error).to_contain_text("layers must be a list of layers")
    expect(page.get_by_test_id("model-note")).to_contain_text("broken.json: 4 problems to fix")

    model = _model_doc()
    model["layers"][5]["units"] = 0
    model["layers"].insert(3, {"type": "transformer"})
    model["layers"][-1]["units"] = 7
    broken.write_text(json.dumps(model))
    model_input.set_input_files(broken)
    expect(error).to_contain_text(
        "layer 4: unknown layer type 'transformer' (known: dense, conv2d,"
    )
    expect(error).to_contain_text("layer 7 (dense_1): units must be a whole number above 0")
    expect(error).not_to_contain_text("Input should")
    expect(error).not_to_contain_text("Field required")
    # the file input itself is invalid and described by the problems
    expect(model_input).to_have_attribute("aria-invalid", "true")
    error_id = error.get_attribute("id")
    assert error_id and error_id in (model_input.get_attribute("aria-describedby") or "")
    screenshot(page, f"create-model-errors-{size}")

    _publish(page)  # nothing goes to the server; the focus lands on the file input
    expect(page.get_by_test_id("create-general")).to_contain_text("need your attention")
    expect(model_input).to_be_focused()
    assert _posted_tasks(page_log, page) == []

    model = _model_doc()
    model["layers"][-1]["units"] = 7
    broken.write_text(json.dumps(model))
    model_input.set_input_files(broken)  # only the fit with the task is wrong now
    expect(error).to_have_text(
        "layer 8 (dense_2): units is 7, but the task has 10 answers: make it 10."
    )

    broken.write_text(json.dumps(_model_doc()))
    model_input.set_input_files(broken)
    expect(error).to_have_count(0)
    expect(model_input).to_have_attribute("aria-invalid", "false")
    expect(page.get_by_test_id("model-note")).to_contain_text(
        "looks right: 8 layers for 28×28 greyscale images, 10 outputs"
    )


def test_server_refusals_land_on_their_fields_in_plain_words(
    desktop: Any, tmp_path: Path, admin_token: str
) -> None:
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(_model_doc()))
    _digits_form(desktop, admin_token, task_id="mnist")
    desktop.get_by_test_id("model-file").set_input_files(model_file)
    expect(desktop.get_by_test_id("model-note")).to_contain_text("looks right")

    def tamper(route: Any) -> None:  # a server stricter than this browser: its real 422
        doc = json.loads(route.request.post_data)
        doc["model"]["layers"][5]["units"] = -1
        doc["model"]["layers"][3] = {"type": "transformer"}
        route.fulfill(response=route.fetch(post_data=json.dumps(doc)))

    desktop.route("**/api/tasks", tamper)
    _publish(desktop)
    error = _field_error(desktop, "model")
    expect(error).to_contain_text("model → layers → 5 → units: must be greater than 0")
    expect(error).to_contain_text(
        "model → layers → 3: unknown layer type 'transformer' (known: dense"
    )
    expect(error).not_to_contain_text("Input tag")
    expect(_field_error(desktop, "id")).to_have_count(0)
    expect(desktop.get_by_label("Model file", exact=True)).to_be_focused()
    desktop.unroute("**/api/tasks")

    fields = [  # an older server passes pydantic's own words on
        ("model.input_shape", "Field required"),
        ("model.layers.2.max_pool2d.pool_size", "Input should be a valid tuple"),
        ("training.epochs", "Input should be greater than or equal to 1"),
    ]
    raw = {
        "error": "invalid task",
        "code": "invalid_task",
        "fields": [{"field": f, "message": m} for f, m in fields],
    }
    desktop.route("**/api/tasks", lambda route: route.fulfill(status=422, json=raw))
    _publish(desktop)
    expect(error).to_contain_text("model → input_shape: is missing")
    expect(error).to_contain_text("model → layers → 2 → pool_size: should be a list")
    expect(_field_error(desktop, "epochs")).to_have_text("Must be at least 1.")
    desktop.unroute("**/api/tasks")

    _publish(desktop)  # 409: the id is taken
    expect(_field_error(desktop, "id")).to_contain_text("already exists")
    expect(_field_error(desktop, "model")).to_have_count(0)


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
    expect(desktop.get_by_test_id("csv-note")).to_contain_text("31 columns")
    expect(desktop.get_by_label("Answer column")).to_have_value("target")  # guessed by its name
    expect(desktop.get_by_test_id("answer-status")).to_contain_text("because of its name")
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


# -- table tasks: the answer column is chosen, every input measured from the file ------------------

# the answer first, a measurement around 750, a text column, and a second answer-like column
# ("grade") that some rows leave empty
PLANTS = [
    ("setosa", 742.5, 5.1, "red", "a"),
    ("setosa", 751.0, 4.9, "red", ""),
    ("setosa", 738.2, 5.4, "pink", "a"),
    ("versicolor", 760.4, 6.0, "blue", "b"),
    ("versicolor", 770.1, 5.8, "blue", ""),
    ("versicolor", 765.3, 6.1, "blue", "b"),
    ("virginica", 748.9, 6.7, "green", "a"),
    ("virginica", 755.0, 6.3, "green", "b"),
    ("virginica", 759.6, 6.9, "green", ""),
]
PLANT_COLUMNS = ("species", "weight_g", "length_cm", "colour", "grade")


def _plants_csv(tmp_path: Path) -> Path:
    path = tmp_path / "plants.csv"
    lines = [",".join(PLANT_COLUMNS)] + [",".join(str(v) for v in row) for row in PLANTS]
    path.write_text("\n".join(lines) + "\n")
    return path


def _stats(column: str, answer: str) -> tuple[float, float]:
    """Mean and population standard deviation (the form's formula) on the rows with an answer."""
    k, a = PLANT_COLUMNS.index(column), PLANT_COLUMNS.index(answer)
    values = [float(row[k]) for row in PLANTS if row[a] != ""]
    return statistics.fmean(values), statistics.pstdev(values)


def _task(server: ServerHandle, task_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/api/tasks/{task_id}", timeout=10) as res:
        return dict(json.load(res))


def _start_table_task(page: Any, admin_token: str, title: str, csv: Path) -> None:
    page.get_by_label("Admin token").fill(admin_token)
    page.get_by_label("Title").fill(title)
    page.get_by_label("A table (CSV file)").check()
    page.get_by_test_id("columns-csv").set_input_files(csv)
    expect(page.get_by_test_id("csv-note")).to_contain_text("Read plants.csv: 9 rows, 5 columns")


def test_the_answer_column_is_chosen_and_the_file_read_again_for_it(
    any_page: Any, server: ServerHandle, tmp_path: Path, admin_token: str, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    page = any_page
    csv = _plants_csv(tmp_path)
    page.goto("/#/create")
    _start_table_task(page, admin_token, f"Plants ({size})", csv)
    # no column is named like an answer: none is assumed, the person is asked
    answer = page.get_by_label("Answer column")
    expect(answer).to_have_value("")
    expect(page.get_by_test_id("answer-status")).to_contain_text("Which column holds the answer")
    expect(page.get_by_test_id("column-0")).to_have_count(0)
    screenshot(page, f"create-csv-choose-answer-{size}")

    answer.select_option("species")
    expect(page.get_by_label("Possible answers")).to_have_value("setosa, versicolor, virginica")
    expect(page.get_by_label("Column 1", exact=True)).to_have_value("weight_g")
    mean, std = _stats("weight_g", "species")
    expect(page.get_by_test_id("column-0").get_by_test_id("column-about")).to_contain_text(
        f"typical value {mean:.5g}, spread {std:.5g}"
    )
    # a column added by hand is measured in the file as soon as its name is typed
    page.get_by_role("button", name="Remove column 2", exact=True).click()
    page.get_by_role("button", name="Add a column").click()
    added = page.get_by_test_id("column-3")
    expect(added.get_by_test_id("column-about")).to_contain_text("Not measured yet")
    page.get_by_label("Column 4", exact=True).fill("length_cm")
    expect(added.get_by_test_id("column-about")).to_contain_text("measured in plants.csv")
    screenshot(page, f"create-csv-answer-chosen-{size}")
    _publish(page)
    expect(page.get_by_test_id("create-success")).to_be_visible()

    task = _task(server, f"plants-{size}")["training"]
    assert task["output_column"] == "species"
    assert task["labels"] == ["setosa", "versicolor", "virginica"]
    columns = {c["name"]: c for c in task["input_columns"]}
    assert list(columns) == ["weight_g", "colour", "grade", "length_cm"]
    for name in ("weight_g", "length_cm"):
        mean, std = _stats(name, "species")
        assert columns[name]["mean"] == pytest.approx(mean, rel=1e-4), name
        assert columns[name]["std"] == pytest.approx(std, rel=1e-4), name
        assert columns[name]["categories"] is None
    assert columns["colour"]["categories"] == ["red", "pink", "blue", "green"]
    assert columns["grade"]["categories"] == ["a", "b"]

    # the same file with another answer column: inputs and answers are read again for it
    page.get_by_role("button", name="Create another").click()
    _start_table_task(page, admin_token, f"Plants by grade ({size})", csv)
    answer.select_option("species")
    expect(page.get_by_label("Possible answers")).to_have_value("setosa, versicolor, virginica")
    answer.select_option("grade")
    expect(page.get_by_label("Possible answers")).to_have_value("a, b")
    expect(page.get_by_label("Column 1", exact=True)).to_have_value("species")
    expect(page.get_by_test_id("rows-used")).to_contain_text("the 6 rows that have an answer")
    _publish(page)
    expect(page.get_by_test_id("create-success")).to_be_visible()

    task = _task(server, f"plants-by-grade-{size}")["training"]
    assert task["output_column"] == "grade"
    assert task["labels"] == ["a", "b"]
    columns = {c["name"]: c for c in task["input_columns"]}
    assert list(columns) == ["species", "weight_g", "length_cm", "colour"]
    assert columns["species"]["categories"] == ["setosa", "versicolor", "virginica"]
    for name in ("weight_g", "length_cm"):
        mean, std = _stats(name, "grade")  # the rows without a grade no longer count
        assert mean != pytest.approx(_stats(name, "species")[0], rel=1e-4)
        assert columns[name]["mean"] == pytest.approx(mean, rel=1e-4), name
        assert columns[name]["std"] == pytest.approx(std, rel=1e-4), name


def test_a_column_typed_without_a_file_is_never_scaled_silently(
    any_page: Any, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    page = any_page
    page.goto("/#/create")
    page.get_by_label("Title").fill("Typed columns")
    page.get_by_label("A table (CSV file)").check()
    page.get_by_label("Possible answers").fill("low, high")
    page.get_by_label("Column 1", exact=True).fill("weight_g")
    page.get_by_label("Answer column").fill("grade")
    about = page.get_by_test_id("column-0").get_by_test_id("column-about")
    expect(about).to_contain_text("Not measured yet: pick the CSV file above")
    _publish(page)
    expect(_field_error(page, "columns.0.mean")).to_contain_text(
        "Enter the typical value, or pick the CSV file above to measure it."
    )
    expect(_field_error(page, "columns.0.std")).to_contain_text("Enter the spread")
    expect(page.get_by_label("Typical value (mean)")).to_be_focused()
    screenshot(page, f"create-column-unmeasured-{size}")
    page.get_by_label("Typical value (mean)").fill("750")
    page.get_by_label("Spread (standard deviation)").fill("12.5")
    expect(about).to_have_text("Typical value 750 and spread 12.5, entered by hand.")


# -- training settings: every scheme and rule the server offers, waiting for the others ---------


def test_every_scheme_and_rule_of_the_server_is_offered_in_plain_words(
    any_page: Any, server: ServerHandle, admin_token: str, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    page = any_page
    with urllib.request.urlopen(f"{server.url}/api/schema/task", timeout=10) as res:
        training = json.load(res)["$defs"]["TrainingInfo"]["properties"]
    schemes = training["scheme"]["enum"]
    rules = list(training["aggregation"]["discriminator"]["mapping"])  # {"rule": ...} union
    page.goto("/#/create")
    radios = page.get_by_test_id("create-form").locator("input[type=radio]")
    expect(radios.and_(page.locator("[name=aggregation]"))).to_have_count(len(rules))
    assert sorted(radios.and_(page.locator("[name=scheme]")).evaluate_all(
        "els => els.map(e => e.value)"
    )) == sorted(schemes)  # fmt: skip
    for value in rules:  # each explained in one sentence, tied to its radio button
        about = page.get_by_test_id(f"aggregation-about-{value}")
        expect(about).to_have_text(re.compile(r"^[A-Z].{40,}\.$"))
        radio = page.locator(f"input[name=aggregation][value={value}]")
        assert about.get_attribute("id") == radio.get_attribute("aria-describedby")
    expect(page.get_by_test_id("aggregation-about-mean")).to_contain_text(
        "weighted by how many examples each person has"
    )
    expect(page.get_by_test_id("scheme-about-decentralized")).to_contain_text(
        "keeps no model after the initial one"
    )
    expect(page.get_by_label("Together, directly between participants")).to_be_visible()

    _fill_image_task(page, f"Robust shapes ({size})", f"robust-shapes-{size}", "circle, square")
    page.get_by_label("Admin token").fill(admin_token)
    page.get_by_label("Median", exact=True).check()
    page.get_by_label("Round deadline (seconds)").fill("120")
    wait = page.get_by_label("Wait for others (seconds)")
    wait.fill("60")
    _publish(page)
    expect(_field_error(page, "wait_for_others_s")).to_have_text(
        "Wait at least as long as the round deadline (120 seconds): otherwise people stop "
        "waiting before a round can close."
    )
    expect(wait).to_be_focused()
    screenshot(page, f"create-collaboration-{size}")
    wait.fill("900")
    _publish(page)
    expect(page.get_by_test_id("create-success")).to_be_visible()
    task = _task(server, f"robust-shapes-{size}")["training"]
    assert (task["aggregation"]["rule"], task["wait_for_others_s"]) == ("median", 900)
    page.get_by_role("link", name="Open the task").click()  # the task page says it too
    expect(page.get_by_test_id("aggregation-text")).to_contain_text(
        "How updates are combined: Median. For each of the model's numbers"
    )
    screenshot(page, f"task-aggregation-{size}")

    # alone, nothing is combined: the rules are not asked about
    page.goto("/#/create")
    page.get_by_label("Alone", exact=True).check()
    expect(page.locator("input[name=aggregation]")).to_have_count(0)


def test_a_rule_the_server_adds_appears_without_a_form_change(
    desktop: Any, server: ServerHandle
) -> None:
    with urllib.request.urlopen(f"{server.url}/api/schema/task", timeout=10) as res:
        schema = json.load(res)
    rules = schema["$defs"]["TrainingInfo"]["properties"]["aggregation"]["discriminator"]
    rules["mapping"]["geometric_median"] = "#/$defs/GeometricMedianRule"
    rules["mapping"]["secret_rule"] = "#/$defs/SecretRule"  # a rule whose definition is missing
    schema["$defs"]["GeometricMedianRule"] = {
        "description": "The point closest to every update (``eps``: how close).",
        "properties": {
            "rule": {"const": "geometric_median", "type": "string"},
            "eps": {"default": 0.001, "exclusiveMinimum": 0, "maximum": 1, "type": "number",
                    "title": "Eps", "description": "when to stop refining"},
        },
    }  # fmt: skip
    desktop.route("**/api/schema/task", lambda route: route.fulfill(json=schema))
    desktop.goto("/#/create")
    # explained by the schema's own words, its setting a field of its own
    expect(desktop.get_by_label("Geometric median", exact=True)).to_be_visible()
    expect(desktop.get_by_test_id("aggregation-about-geometric_median")).to_have_text(
        "The point closest to every update (eps: how close)."
    )
    expect(desktop.get_by_test_id("aggregation-about-secret_rule")).to_contain_text(
        "no plain description of it yet"
    )
    desktop.get_by_label("Geometric median", exact=True).check()
    eps = desktop.get_by_label("Eps", exact=True)
    expect(eps).to_have_value("0.001")
    expect(desktop.locator('[data-field="aggregation.eps"] .hint')).to_have_text(
        "When to stop refining."
    )


def test_a_rules_settings_are_filled_in_checked_and_sent(
    any_page: Any, server: ServerHandle, admin_token: str, page_log: Any, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    page, task_id = any_page, f"trimmed-shapes-{size}"
    page.goto("/#/create")
    page.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    page.reload()
    _fill_image_task(page, f"Trimmed shapes ({size})", task_id, "circle, square")
    settings = page.get_by_test_id("rule-settings")
    # the average's own setting, at its default, explained by the schema's description
    expect(settings).to_contain_text("Settings of this rule")
    expect(page.get_by_label("Largest share of one person")).to_have_value("0.5")

    page.get_by_label("Trimmed average", exact=True).check()
    beta = page.get_by_label("Share left out at each end")
    expect(beta).to_have_value("0.1")
    expect(page.locator('[data-field="aggregation.beta"] .hint')).to_have_text(
        re.compile(r"^[A-Z].{10,}\.$")
    )
    expect(page.get_by_label("Group size")).to_have_value("1")

    # out of bounds: said under the field at once, and nothing is published
    error = _field_error(page, "aggregation.beta")
    beta.fill("0.7")
    beta.press("Tab")
    expect(error).to_have_text("Share left out at each end must be at least 0 and below 0.5.")
    expect(beta).to_have_attribute("aria-invalid", "true")
    screenshot(page, f"create-rule-settings-error-{size}")
    _publish(page)
    expect(page.get_by_role("alert").first).to_contain_text("need your attention")
    expect(error).to_have_text("Share left out at each end must be at least 0 and below 0.5.")
    expect(beta).to_be_focused()
    assert _posted_tasks(page_log, page) == []

    # a rule with a setting that may be left empty says so; each rule keeps what was typed
    page.get_by_label("Multi-Krum", exact=True).check()
    kept = page.get_by_label("Updates kept")
    expect(kept).to_have_value("")
    expect(kept).to_have_attribute("placeholder", "automatic")
    expect(page.locator('[data-field="aggregation.m"] .hint')).to_contain_text(
        "Leave empty to choose it automatically."
    )
    expect(page.get_by_label("Dishonest participants to resist")).to_have_value("1")
    page.get_by_label("Trimmed average", exact=True).check()
    expect(beta).to_have_value("0.7")

    beta.fill("0.2")
    beta.press("Tab")
    expect(error).to_have_count(0)
    screenshot(page, f"create-rule-settings-{size}")
    _publish(page)
    expect(page.get_by_test_id("create-success")).to_be_visible()
    aggregation = _task(server, task_id)["training"]["aggregation"]
    assert aggregation == {"rule": "trimmed_mean", "beta": 0.2, "bucket_size": 1}
    page.get_by_role("link", name="Open the task").click()
    expect(page.get_by_test_id("aggregation-text")).to_contain_text(
        "How updates are combined: Trimmed average, 20% left out at each end."
    )


def test_the_servers_refusal_of_the_waiting_time_lands_on_its_field(
    desktop: Any, admin_token: str
) -> None:
    desktop.goto("/#/create")
    desktop.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    desktop.reload()
    _fill_image_task(desktop, "Impatient", "impatient", "circle, square")

    def tamper(route: Any) -> None:  # a form that let it through: the server's real 422
        doc = json.loads(route.request.post_data)
        doc["training"]["wait_for_others_s"] = 30
        route.fulfill(response=route.fetch(post_data=json.dumps(doc)))

    desktop.route("**/api/tasks", tamper)
    _publish(desktop)
    expect(_field_error(desktop, "wait_for_others_s")).to_have_text(
        "Wait at least as long as the round deadline (120 seconds), or people stop waiting "
        "before a round can close."
    )
    expect(desktop.get_by_label("Wait for others (seconds)")).to_be_focused()


def test_secure_aggregation_is_offered_explained_checked_and_sent(
    any_page: Any, server: ServerHandle, admin_token: str, page_log: Any, screenshot: Any
) -> None:
    size = "phone" if any_page.viewport_size["width"] < 500 else "desktop"
    page, task_id = any_page, f"secure-shapes-{size}"
    page.goto("/#/create")
    page.evaluate(f"sessionStorage.setItem('disco.adminToken', {json.dumps(admin_token)})")
    page.reload()
    _fill_image_task(page, f"Secure shapes ({size})", task_id, "circle, square")
    secure = page.get_by_label("Secure aggregation: only the total is seen")
    expect(secure).not_to_be_checked()
    secure.check()
    expect(page.get_by_test_id("secure-about")).to_contain_text("learns only the total")
    settings = page.get_by_test_id("secure-settings")
    expect(settings).to_contain_text("Settings of secure aggregation")
    expect(page.get_by_label("Clip range")).to_have_value("1")
    expect(page.get_by_label("Participants needed to unmask")).to_have_attribute(
        "placeholder", "automatic"
    )

    # the form's default of 2 participants is too few: said on that field, nothing is sent
    _publish(page)
    expect(_field_error(page, "min_participants")).to_contain_text("at least 3 participants")
    assert _posted_tasks(page_log, page) == []
    page.get_by_label("Minimum participants").fill("3")
    # a rule that needs each update cannot be combined with it: said plainly
    page.get_by_label("Median", exact=True).check(force=True)
    expect(page.get_by_test_id("secure-conflict")).to_be_visible()
    screenshot(page, f"create-secure-{size}")
    page.get_by_label("Average", exact=True).first.check()
    expect(page.get_by_test_id("secure-conflict")).to_have_count(0)
    _publish(page)
    expect(page.get_by_test_id("create-success")).to_be_visible()
    training = _task(server, task_id)["training"]
    assert training["secure_aggregation"] == {"clip": 1.0, "weight_cap": 1024, "threshold": None}
    assert training["min_participants"] == 3 and training["aggregation"]["rule"] == "mean"
