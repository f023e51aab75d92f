"""Fixtures for the data tests: task training info for small tabular and image tasks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from disco.task import ColumnSpec, TrainingInfo


@pytest.fixture
def tabular() -> TrainingInfo:
    """Columns a (numeric, fill 0, mean 1, std 2), b (numeric), c (categorical); label y."""
    return TrainingInfo(
        data_type="tabular",
        input_columns=(
            ColumnSpec(name="a", fill=0.0, mean=1.0, std=2.0),
            ColumnSpec(name="b"),
            ColumnSpec(name="c", categories=("red", "green", "blue")),
        ),
        output_column="y",
        labels=("no", "yes"),
    )


@pytest.fixture
def image_task() -> Callable[..., TrainingInfo]:
    """Factory for an image task of a given size, channels and labels."""

    def make(
        height: int = 4, width: int = 4, channels: int = 1, labels: tuple[str, ...] = ("cat", "dog")
    ) -> TrainingInfo:
        return TrainingInfo(
            data_type="image",
            image_height=height,
            image_width=width,
            channels=channels,  # type: ignore[arg-type]
            labels=labels,
        )

    return make


@pytest.fixture
def save_image() -> Callable[..., Path]:
    """Write a uint8 array (H, W) or (H, W, 3) as an image file, creating parent folders."""

    def save(path: Path, pixels: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
        return path

    return save
