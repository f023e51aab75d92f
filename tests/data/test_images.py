"""Image loading: label folders, labels CSV, resizing, orientation, colour modes, bad files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from disco.data.images import (
    load_image,
    load_image_folder,
    load_images_unlabelled,
    load_labelled_images,
    size_problem,
)
from disco.errors import DataError
from disco.task import TrainingInfo

Task = Callable[..., TrainingInfo]
Save = Callable[..., Path]
# shared with the web app's tests: the same sizes give the same messages in the browser
SIZE_CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "image_sizes.json").read_text(encoding="utf-8")
)["cases"]


def gradient(height: int, width: int) -> np.ndarray:
    """Pixels that grow along rows (top to bottom) and are constant along columns."""
    return np.repeat(np.linspace(0, 255, height).astype(np.uint8)[:, None], width, axis=1)


def test_non_square_image_keeps_its_orientation(
    tmp_path: Path, image_task: Task, save_image: Save
) -> None:
    pixels = np.zeros((2, 5), dtype=np.uint8)  # 2 rows, 5 columns
    pixels[0, 4] = 255  # top-right corner
    path = save_image(tmp_path / "wide.png", pixels)
    arr = load_image(path, image_task(height=2, width=5))
    assert arr.shape == (2, 5, 1)
    assert arr[0, 4, 0] == 1.0 and arr.sum() == 1.0


def test_resize_to_non_square_task_size(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    path = save_image(tmp_path / "wide.png", gradient(12, 40))
    arr = load_image(path, image_task(height=8, width=20))
    assert arr.shape == (8, 20, 1) and arr.dtype == np.float32
    assert np.all(np.diff(arr[:, 0, 0]) > 0)  # still brighter towards the bottom
    assert np.allclose(arr[:, :, 0], arr[:, :1, 0])  # and constant along each row
    assert 0.0 <= arr.min() and arr.max() <= 1.0


@pytest.mark.parametrize(
    "case", SIZE_CASES, ids=[f"{c['image'][0]}x{c['image'][1]}" for c in SIZE_CASES]
)
def test_size_rule(case: dict[str, Any], image_task: Task) -> None:
    (task_width, task_height), (width, height) = case["task"], case["image"]
    task = image_task(height=task_height, width=task_width)
    assert size_problem(width, height, task) == case["problem"]


def test_refused_size_names_the_file_and_good_files_still_count(
    tmp_path: Path, image_task: Task, save_image: Save
) -> None:
    task = image_task(height=28, width=28)
    save_image(tmp_path / "cat" / "good.png", np.zeros((28, 28)))
    save_image(tmp_path / "cat" / "photo.png", np.zeros((300, 400)))  # resized
    save_image(tmp_path / "dog" / "banner.png", np.zeros((50, 100)))  # 100x50: refused
    save_image(tmp_path / "dog" / "icon.png", np.zeros((10, 10)))  # refused
    d, problems = load_image_folder(tmp_path, task, skip_bad=True)
    assert d.sources == ("cat/good.png", "cat/photo.png") and d.x.shape == (2, 28, 28, 1)
    assert problems == [
        f"{tmp_path / 'dog' / 'banner.png'}: image is 100×50 pixels but the task expects 28×28; "
        "it is too wide to resize without distorting it (crop it closer to the task's shape)",
        f"{tmp_path / 'dog' / 'icon.png'}: image is 10×10 pixels but the task expects 28×28; "
        "it is too small to enlarge (at least 14×14 pixels)",
    ]
    with pytest.raises(DataError, match=r"banner\.png: image is 100×50 pixels"):
        load_image_folder(tmp_path, task)


def test_size_rule_sees_the_exif_rotation(tmp_path: Path, image_task: Task) -> None:
    """A portrait photo stored landscape with an EXIF rotation is judged as it is shown."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    path = tmp_path / "turned.jpg"
    Image.fromarray(np.zeros((10, 40), np.uint8)).save(path, exif=exif)  # stored 40x10
    shown_wide = image_task(height=10, width=40)
    with pytest.raises(DataError, match="image is 10×40 pixels but the task expects 40×10"):
        load_image(path, shown_wide)
    assert load_image(path, image_task(height=40, width=10)).shape == (40, 10, 1)


def test_grey_and_rgb_conversion(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    path = save_image(tmp_path / "red.png", rgb)
    colour = load_image(path, image_task(channels=3))
    assert colour.shape == (4, 4, 3)
    assert np.allclose(colour[..., 0], 1.0) and np.allclose(colour[..., 1:], 0.0)
    grey = load_image(path, image_task(channels=1))
    assert grey.shape == (4, 4, 1)
    assert np.allclose(grey, 76 / 255)  # ITU-R 601 luma of red: 0.299 * 255
    jpeg = tmp_path / "g.jpg"
    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(jpeg, quality=95)
    rgb_of_grey = load_image(jpeg, image_task(channels=3))
    assert rgb_of_grey.shape == (4, 4, 3) and np.allclose(rgb_of_grey, 200 / 255, atol=0.02)


def test_palette_image_with_transparency(tmp_path: Path, image_task: Task) -> None:
    path = tmp_path / "p.png"
    img = Image.fromarray(np.full((4, 4), 255, np.uint8)).convert("P")
    img.save(path, transparency=0)
    assert load_image(path, image_task(channels=3)).shape == (4, 4, 3)  # and no warning


def test_sixteen_bit_image_is_scaled_not_clipped(tmp_path: Path, image_task: Task) -> None:
    path = tmp_path / "scan.png"
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)
    assert np.allclose(load_image(path, image_task()), 32768 / 65535, atol=1e-4)


def test_label_folders(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    for i in range(3):
        save_image(tmp_path / "cat" / f"{i}.png", np.full((4, 4), 10, np.uint8))
    save_image(tmp_path / "Dog" / "a.jpg", np.full((4, 4), 250, np.uint8))
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0junk")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden").mkdir()
    d = load_image_folder(tmp_path, image_task(labels=("cat", "dog", "bird")))
    assert sorted(d.y.tolist()) == [0, 0, 0, 1]  # 'Dog' matches 'dog'; 'dog' has no images
    assert d.x.shape == (4, 4, 4, 1)
    assert d.sources is not None and "Dog/a.jpg" in d.sources
    assert d.x[d.sources.index("Dog/a.jpg")].mean() > 0.9


def test_unknown_label_folder_is_named(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    save_image(tmp_path / "cat" / "0.png", np.zeros((4, 4)))
    save_image(tmp_path / "horse" / "0.png", np.zeros((4, 4)))
    with pytest.raises(
        DataError, match=r"'horse' is not a label of this task; the labels are 'cat', 'dog'"
    ):
        load_image_folder(tmp_path, image_task())
    with pytest.raises(DataError, match="no label folders"):
        load_image_folder(tmp_path / "cat", image_task())


def test_corrupt_file_raises_or_is_skipped(
    tmp_path: Path, image_task: Task, save_image: Save
) -> None:
    save_image(tmp_path / "cat" / "good.png", np.zeros((4, 4)))
    bad = tmp_path / "dog" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"bad\.png: cannot read image"):
        load_image_folder(tmp_path, image_task())
    d, problems = load_image_folder(tmp_path, image_task(), skip_bad=True)
    assert len(d) == 1 and d.y.tolist() == [0]
    assert len(problems) == 1 and "bad.png" in problems[0]


def test_truncated_png_is_an_error(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    path = save_image(tmp_path / "t.png", np.random.default_rng(0).integers(0, 255, (64, 64)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"t\.png"):
        load_image(path, image_task())


def test_labels_csv(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    save_image(tmp_path / "img" / "a.png", np.zeros((4, 4)))
    save_image(tmp_path / "img" / "sub" / "b.png", np.full((4, 4), 255))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("filename;label\na.png;dog\nsub/b.png;0\n")
    d = load_labelled_images(csv_path, tmp_path / "img", image_task())
    assert d.y.tolist() == [1, 0] and d.sources == ("a.png", "sub/b.png")
    assert d.x[1].min() == 1.0

    csv_path.write_text("filename,label\na.png,dog\nmissing.png,cat\n")
    with pytest.raises(DataError, match=r"row 3: image 'missing.png' not found"):
        load_labelled_images(csv_path, tmp_path / "img", image_task())
    d, problems = load_labelled_images(csv_path, tmp_path / "img", image_task(), skip_bad=True)
    assert len(d) == 1 and "missing.png" in problems[0]

    csv_path.write_text("filename,label\na.png,dog\n./a.png,cat\nsub/b.png,0\n")
    with pytest.raises(DataError, match=r"row 3: image './a.png' is already listed in row 2"):
        load_labelled_images(csv_path, tmp_path / "img", image_task())
    d, problems = load_labelled_images(csv_path, tmp_path / "img", image_task(), skip_bad=True)
    assert d.y.tolist() == [1, 0] and len(problems) == 1  # the first row's label counts

    csv_path.write_text("filename,label\na.png,horse\n")
    with pytest.raises(DataError, match=r"row 2: unknown label 'horse'"):
        load_labelled_images(csv_path, tmp_path / "img", image_task())
    csv_path.write_text("filename,label\n../labels.csv,cat\n")
    with pytest.raises(DataError, match="must be a path inside"):
        load_labelled_images(csv_path, tmp_path / "img", image_task())
    csv_path.write_text("file,class\na.png,cat\n")
    with pytest.raises(DataError, match="needs columns 'filename' and 'label'"):
        load_labelled_images(csv_path, tmp_path / "img", image_task())


def test_unlabelled_images(tmp_path: Path, image_task: Task, save_image: Save) -> None:
    save_image(tmp_path / "b.png", np.zeros((6, 6)))
    save_image(tmp_path / "a.jpeg", np.zeros((4, 4)))
    inputs = load_images_unlabelled(tmp_path, image_task())
    assert inputs.sources == ("a.jpeg", "b.png") and inputs.x.shape == (2, 4, 4, 1)
    one = load_images_unlabelled([tmp_path / "b.png"], image_task())
    assert one.sources == ("b.png",)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_images_unlabelled(tmp_path / "empty", image_task())
