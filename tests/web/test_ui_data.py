"""Connecting local files in the browser: counts per label, problems named, good files count.

Folders are connected as `disco data samples` writes them (one sub-folder per label), picked
through a folder picker or dropped; wrongly sized pictures, empty and non-text CSV files get a
message naming them, and each pick can be removed on its own.
"""

from __future__ import annotations

import base64
import csv
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

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
    extra = flat / "img10.png"  # a picture whose row has a label the task does not know
    extra.write_bytes(images[0].read_bytes())
    picked.append(extra)
    lines = [f"img{i:02d}.png,{p.parent.name}" for i, p in enumerate(images)]
    lines += ["missing.png,4", "img10.png,not-a-digit", "img00.png,4"]
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
    expect(problems).to_contain_text("row 14: image 'img00.png' is already listed in row 2")


def _size(page: Any) -> str:
    return "phone" if page.viewport_size["width"] < 500 else "desktop"


MNIST_LABELS = "'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'"


def _picture(path: Path, width: int, height: int, colour: bool = False) -> Path:
    """A noisy picture of ``width`` x ``height`` pixels (RGB or grey), parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width, 3) if colour else (height, width)
    pixels = np.random.default_rng(width * height).integers(0, 255, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _digits(client: Path, label: str, count: int) -> list[Path]:
    return sorted((client / label).glob("*.png"))[:count]


def test_a_folder_picked_for_the_whole_task(phone: Any, mnist_files: Path, screenshot: Any) -> None:
    client = mnist_files / "client_1"
    per_label = {d.name: len(list(d.glob("*.png"))) for d in client.iterdir() if d.is_dir()}

    phone.goto("/#/tasks/mnist/connect")
    phone.get_by_test_id("train-folder").set_input_files(client)

    summary = phone.get_by_test_id("train-summary")
    # a whole client folder (over 1,300 pictures) takes several seconds to read on a busy machine
    total = str(sum(per_label.values()))
    expect(summary.get_by_test_id("sample-count")).to_have_text(total, timeout=60_000)
    for label, count in per_label.items():
        expect(summary.locator(f'[data-label="{label}"] .num')).to_have_text(str(count))
    expect(phone.get_by_test_id("train-batches")).to_contain_text("folder client_1")
    # the PNGs are exactly the task's size: nothing resized, nothing wrong, no label missing
    expect(phone.get_by_test_id("train-resized")).to_have_count(0)
    expect(phone.get_by_test_id("train-problems")).to_have_count(0)
    expect(phone.get_by_test_id("train-missing")).to_have_count(0)
    screenshot(phone, "connect-folder-phone")


def test_folder_problems_name_the_file_and_good_files_count(
    desktop: Any, mnist_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    digits = mnist_files / "client_2"
    mine = tmp_path / "mine"
    for label in ("0", "7"):  # two files named 00001.png, in different folders
        (mine / label).mkdir(parents=True)
        shutil.copy(_digits(digits, label, 1)[0], mine / label / "00001.png")
    (mine / "1").mkdir()
    (mine / "1" / "00001.png").write_text("not a picture")  # a third 00001.png, unreadable
    _picture(mine / "3" / "photo.png", 300, 200, colour=True)  # colour, resized: counts
    _picture(mine / "7" / "banner.png", 100, 50)  # twice as wide as the task: refused
    _picture(mine / "7" / "icon.png", 10, 10)  # less than half the task's size: refused
    _picture(mine / "horse" / "00001.png", 28, 28)  # not a label
    (mine / "README.txt").write_text("my digits")  # directly in the folder: not read

    desktop.goto("/#/tasks/mnist/connect")
    desktop.get_by_test_id("train-folder").set_input_files(mine)

    summary = desktop.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("3")
    for label, count in {"0": 1, "1": 0, "3": 1, "7": 1}.items():
        expect(summary.locator(f'[data-label="{label}"] .num')).to_have_text(str(count))
    problems = desktop.get_by_test_id("train-problems")
    expect(problems).to_contain_text("4 problems")
    expect(problems).to_contain_text(
        f"mine/horse: folder 'horse' is not a label of this task; the labels are {MNIST_LABELS}"
    )
    expect(problems).to_contain_text("mine/1/00001.png: cannot read image")
    expect(problems).to_contain_text(
        "mine/7/banner.png: image is 100×50 pixels but the task expects 28×28; it is too wide "
        "to resize without distorting it (crop it closer to the task's shape)"
    )
    expect(problems).to_contain_text(
        "mine/7/icon.png: image is 10×10 pixels but the task expects 28×28; it is too small to "
        "enlarge (at least 14×14 pixels)"
    )
    expect(desktop.get_by_test_id("train-resized")).to_have_text("1 picture was resized to 28×28.")
    expect(desktop.get_by_test_id("train-notes")).to_contain_text(
        "Not read, directly in mine instead of a label sub-folder: mine/README.txt"
    )
    expect(desktop.get_by_test_id("train-missing")).to_contain_text(
        "No samples yet for: 1, 2, 4, 5, 6, 8, 9."
    )
    screenshot(desktop, "connect-folder-problems-desktop")


def test_wrongly_sized_pictures_refused_per_label_and_one_pick_removed(
    phone: Any, mnist_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    zeros = _digits(mnist_files / "client_1", "0", 5)
    banner = _picture(tmp_path / "banner.png", 100, 50)
    tall = _picture(tmp_path / "tall.png", 50, 100)
    huge = _picture(tmp_path / "huge.png", 8200, 30)
    photo = _picture(tmp_path / "photo.jpg", 640, 480, colour=True)
    threes = _digits(mnist_files / "client_1", "3", 2)

    phone.goto("/#/tasks/mnist/connect")
    phone.get_by_test_id("train-label-0").set_input_files([*zeros, banner, tall, huge, photo])
    summary = phone.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("6")
    problems = phone.get_by_test_id("train-problems")
    expect(problems).to_contain_text("3 problems")
    expect(problems).to_contain_text("banner.png: image is 100×50 pixels")
    expect(problems).to_contain_text(
        "tall.png: image is 50×100 pixels but the task expects 28×28; it is too tall"
    )
    expect(problems).to_contain_text(
        "huge.png: image is 8200×30 pixels but the task expects 28×28; it is too large "
        "(at most 8192 pixels per side)"
    )
    expect(phone.get_by_test_id("train-resized")).to_have_text("1 picture was resized to 28×28.")
    phone.get_by_test_id("train-label-3").set_input_files(threes)
    expect(summary.get_by_test_id("sample-count")).to_have_text("8")
    screenshot(phone, "connect-sizes-phone")

    # removing the first pick takes its samples, problems and note away; the threes stay
    batches = phone.get_by_test_id("train-batches")
    expect(batches.locator("li")).to_have_count(2)
    batches.get_by_role("button", name="Remove 9 files for 0").click()
    expect(summary.get_by_test_id("sample-count")).to_have_text("2")
    expect(summary.locator('[data-label="3"] .num')).to_have_text("2")
    expect(phone.get_by_test_id("train-problems")).to_have_count(0)
    expect(phone.get_by_test_id("train-resized")).to_have_count(0)
    expect(batches.locator("li")).to_have_count(1)


def _site(client: Path, out: Path) -> list[tuple[str, str]]:
    """Five digits of 0 and of 7 copied as out/0/*.png and out/7/*.png; (path, label) rows."""
    rows = []
    for label in ("0", "7"):
        (out / label).mkdir(parents=True)
        for p in _digits(client, label, 5):
            shutil.copy(p, out / label / p.name)
            rows.append((f"{label}/{p.name}", label))
    return rows


def test_labels_csv_paths_match_a_picked_folder(
    desktop: Any, mnist_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    site = tmp_path / "site"
    rows = _site(mnist_files / "client_2", site)
    lines = [f"{path},{label}" for path, label in rows]
    labels = tmp_path / "labels.csv"
    # a bare name that both 0/ and 7/ hold, and a path that is not in the folder
    labels.write_text("filename,label\n" + "\n".join([*lines, "00001.png,0", "9/99999.png,9"]))

    desktop.goto("/#/tasks/mnist/connect")
    desktop.get_by_label("I have a labels file").check()
    desktop.get_by_test_id("train-labels-csv").set_input_files(labels)
    desktop.get_by_test_id("train-labelled-images-folder").set_input_files(site)
    desktop.get_by_role("button", name="Connect these pictures").click()

    summary = desktop.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("10")
    expect(summary.locator('[data-label="0"] .num')).to_have_text("5")
    expect(summary.locator('[data-label="7"] .num')).to_have_text("5")
    problems = desktop.get_by_test_id("train-problems")
    expect(problems).to_contain_text("2 problems")
    expect(problems).to_contain_text(
        "labels.csv: row 12: image '00001.png' matches 2 picked files "
        "(site/0/00001.png, site/7/00001.png); write its folder too"
    )
    expect(problems).to_contain_text("labels.csv: row 13: image '9/99999.png' not found")
    screenshot(desktop, "connect-labels-csv-folder-desktop")


def test_a_labels_csv_inside_the_task_folder_is_used(
    phone: Any, mnist_files: Path, tmp_path: Path
) -> None:
    site = tmp_path / "with_csv"
    rows = _site(mnist_files / "client_3", site / "images")
    # the labels swap 0 and 7: the CSV decides, not the sub-folder names
    swapped = [(path, "7" if label == "0" else "0") for path, label in rows[:7]]
    (site / "labels.csv").write_text(
        "filename,label\n" + "\n".join(f"{p},{lbl}" for p, lbl in swapped) + "\n"
    )

    phone.goto("/#/tasks/mnist/connect")
    phone.get_by_test_id("train-folder").set_input_files(site)
    summary = phone.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("7")
    expect(summary.locator('[data-label="7"] .num')).to_have_text("5")
    expect(summary.locator('[data-label="0"] .num')).to_have_text("2")
    expect(phone.get_by_test_id("train-notes")).to_contain_text(
        "Labels read from with_csv/labels.csv"
    )
    problems = phone.get_by_test_id("train-problems")  # the 3 pictures it does not list
    expect(problems).to_contain_text("3 problems")
    expect(problems).to_contain_text(
        "with_csv/images/7/" + rows[7][0].split("/")[1] + ": not listed in with_csv/labels.csv"
    )


_DROP = """
([testid, tree]) => {
  const entry = (node) => node.children
    ? { name: node.name, isFile: false, isDirectory: true, createReader() {
          let given = false;
          return { readEntries(ok) {
            const out = given ? [] : node.children.map(entry);
            given = true;
            setTimeout(() => ok(out), 0);
          } };
        } }
    : { name: node.name, isFile: true, isDirectory: false, file(ok) {
          const bytes = Uint8Array.from(atob(node.b64), (c) => c.charCodeAt(0));
          ok(new File([bytes], node.name, { type: "image/png" }));
        } };
  const root = entry(tree);
  const item = { kind: "file", webkitGetAsEntry: () => root, getAsFile: () => null };
  const zone = document.querySelector(`[data-testid="${testid}"]`).closest(".drop");
  const drop = new Event("drop", { bubbles: true, cancelable: true });
  Object.defineProperty(drop, "dataTransfer", { value: { items: [item], files: [] } });
  zone.dispatchEvent(drop);
}
"""


def _tree(folder: Path) -> dict[str, Any]:
    """A folder as nested {name, children} / {name, b64} for the page's fake drop."""
    if folder.is_dir():
        return {"name": folder.name, "children": [_tree(p) for p in sorted(folder.iterdir())]}
    return {"name": folder.name, "b64": base64.b64encode(folder.read_bytes()).decode()}


def test_dropped_folders_are_read_recursively(
    desktop: Any, mnist_files: Path, tmp_path: Path
) -> None:
    """Drops a folder as Chromium hands it over (DataTransfer items with directory entries)."""
    dropped = tmp_path / "dropped"
    _site(mnist_files / "client_1", dropped)
    (dropped / "7" / "deeper").mkdir()
    shutil.copy(next((dropped / "7").glob("*.png")), dropped / "7" / "deeper" / "00001.png")
    sevens = tmp_path / "sevens"
    shutil.copytree(dropped / "7", sevens / "batch")

    desktop.goto("/#/tasks/mnist/connect")
    expect(desktop.get_by_test_id("train-folder")).to_be_attached()
    desktop.evaluate(_DROP, ["train-folder", _tree(dropped)])
    summary = desktop.get_by_test_id("train-summary")
    expect(summary.get_by_test_id("sample-count")).to_have_text("11")
    expect(summary.locator('[data-label="0"] .num')).to_have_text("5")
    expect(summary.locator('[data-label="7"] .num')).to_have_text("6")
    expect(desktop.get_by_test_id("train-batches")).to_contain_text("folder dropped")

    # a folder dropped on one label's zone: every picture in it, at any depth, gets that label
    desktop.evaluate(_DROP, ["train-label-7", _tree(sevens)])
    expect(summary.get_by_test_id("sample-count")).to_have_text("17")
    expect(summary.locator('[data-label="7"] .num')).to_have_text("12")
    expect(desktop.get_by_test_id("train-problems")).to_have_count(0)


def test_empty_csv_and_a_picture_given_as_csv(
    phone: Any, breast_cancer_files: Path, tmp_path: Path, screenshot: Any
) -> None:
    rows = _rows(breast_cancer_files / "client_1" / "data.csv")
    header = list(rows[0])
    empty = _write(tmp_path / "empty.csv", header, [])
    benign = _write(tmp_path / "benign.csv", header, [r for r in rows if r["target"] == "1"])
    photo = _picture(tmp_path / "photo.png", 40, 40)

    phone.goto("/#/tasks/breast_cancer/connect")
    phone.get_by_test_id("train-csv-files").set_input_files([empty, photo, benign])
    summary = phone.get_by_test_id("train-summary")
    benign_count = sum(r["target"] == "1" for r in rows)
    expect(summary.get_by_test_id("sample-count")).to_have_text(str(benign_count))
    problems = phone.get_by_test_id("train-problems")
    expect(problems).to_contain_text("2 problems")
    expect(problems.locator("li")).to_have_text(
        ["empty.csv: no data rows", "photo.png: not a CSV text file"]
    )
    missing = phone.get_by_test_id("train-missing")
    expect(missing).to_contain_text("No samples yet for: malignant.")
    screenshot(phone, "connect-csv-problems-phone")

    phone.get_by_test_id("train-batches").get_by_role("button", name="Remove photo.png").click()
    expect(problems.locator("li")).to_have_text(["empty.csv: no data rows"])
    expect(summary.get_by_test_id("sample-count")).to_have_text(str(benign_count))


def test_long_label_names_stay_whole_at_phone_width(phone: Any, screenshot: Any) -> None:
    phone.goto("/#/tasks/fashion_mnist/connect")
    titles = phone.get_by_test_id("train-connect").locator(".label-grid .drop-title")
    expect(titles).to_have_count(10)
    # each label's text lies on one line: none breaks mid-word ("t-shi/rt", "pul/lov/er")
    lines = titles.evaluate_all(
        """els => els.map((el) => {
          const range = document.createRange();
          range.selectNodeContents(el);
          const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
          return [el.textContent.trim(), tops.size];
        })"""
    )
    assert [n for _, n in lines] == [1] * 10, lines
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways ({width}px)"
    screenshot(phone, "connect-labels-phone")
