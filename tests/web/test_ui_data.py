"""Connecting local files in the browser: counts per label, problems named, good files count."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_files_counted_per_label_and_bad_ones_named(
    any_page: Any, breast_cancer_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    good = breast_cancer_files / "client_1" / "data.csv"
    rows = _rows(good)
    header = list(rows[0])
    # a file without the mean_radius column, and one with a single bad cell
    no_column = _write(tmp_path / "no_radius.csv", [h for h in header if h != "mean_radius"], rows)
    broken_rows = [dict(r) for r in rows[:10]]
    broken_rows[3]["mean_texture"] = "about ten"
    one_bad_cell = _write(tmp_path / "one_bad_cell.csv", header, broken_rows)

    any_page.goto("/#/tasks/breast_cancer/connect")
    any_page.get_by_test_id("train-csv-files").set_input_files([good, no_column, one_bad_cell])

    summary = any_page.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text(str(len(rows) + 9))
    counts = Counter(r["target"] for r in rows + broken_rows[:3] + broken_rows[4:])
    expect(summary.locator('[data-label="malignant"] .num')).to_have_text(str(counts["0"]))
    expect(summary.locator('[data-label="benign"] .num')).to_have_text(str(counts["1"]))
    problems = any_page.get_by_test_id("train-problems")
    expect(problems).to_contain_text("2 problems")
    expect(problems).to_contain_text("no_radius.csv: missing column(s) 'mean_radius'")
    expect(problems).to_contain_text("one_bad_cell.csv: row 5, column 'mean_texture'")
    screenshot(any_page, f"connect-csv-{_size(any_page)}")

    # the data stays connected when moving to the next step and back
    any_page.get_by_test_id("step-next").click()
    expect(any_page.get_by_test_id("start-training")).to_be_visible()
    any_page.get_by_test_id("step-back").click()
    expect(summary.get_by_test_id("sample-count")).to_have_text(str(len(rows) + 9))
    summary.get_by_role("button", name="Remove all files").click()
    expect(summary).to_have_count(0)


def test_images_one_picker_per_label(
    desktop: Any, mnist_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    client = mnist_files / "client_1"
    zeros = sorted((client / "0").glob("*.png"))[:12]
    sevens = sorted((client / "7").glob("*.png"))[:8]
    broken = tmp_path / "broken.png"
    broken.write_text("this is not a picture")

    desktop.goto("/#/tasks/mnist/connect")
    desktop.get_by_test_id("train-label-0").set_input_files([*zeros, broken])
    summary = desktop.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("12")
    desktop.get_by_test_id("train-label-7").set_input_files(sevens)
    expect(summary.get_by_test_id("sample-count")).to_have_text("20")
    expect(summary.locator('[data-label="0"] .num')).to_have_text("12")
    expect(summary.locator('[data-label="7"] .num')).to_have_text("8")
    expect(summary.locator('[data-label="3"] .num')).to_have_text("0")
    problems = desktop.get_by_test_id("train-problems")
    expect(problems).to_contain_text("1 problem")
    expect(problems).to_contain_text("broken.png: cannot read image")
    screenshot(desktop, "connect-images-desktop")


def test_images_with_a_labels_csv(phone: Any, mnist_files: Path, tmp_path: Path) -> None:
    client = mnist_files / "client_2"
    images = [*sorted((client / "1").glob("*.png"))[:5], *sorted((client / "4").glob("*.png"))[:5]]
    labels = tmp_path / "labels.csv"
    flat = tmp_path / "flat"  # one folder, distinct names: the labels come from the CSV only
    flat.mkdir()
    picked = []
    for i, p in enumerate(images):
        target = flat / f"img{i:02d}.png"
        target.write_bytes(p.read_bytes())
        picked.append(target)
    lines = [f"img{i:02d}.png,{p.parent.name}" for i, p in enumerate(images)]
    lines += ["missing.png,4", "img00.png,not-a-digit"]
    labels.write_text("filename,label\n" + "\n".join(lines) + "\n")

    phone.goto("/#/tasks/mnist/connect")
    phone.get_by_label("I have a labels file").check()
    phone.get_by_test_id("train-labels-csv").set_input_files(labels)
    phone.get_by_test_id("train-labelled-images").set_input_files(picked)
    phone.get_by_role("button", name="Connect these pictures").click()
    summary = phone.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("10")
    expect(summary.locator('[data-label="1"] .num')).to_have_text("5")
    expect(summary.locator('[data-label="4"] .num')).to_have_text("5")
    problems = phone.get_by_test_id("train-problems")
    expect(problems).to_contain_text("'missing.png' not found")
    expect(problems).to_contain_text("unknown label 'not-a-digit'")


def _size(page: Any) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"
