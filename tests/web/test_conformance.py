"""Conformance: TF.js in the browser and PyTorch in Python compute the same training step.

For every catalog architecture (dropout rates set to 0, so that both engines are deterministic),
two extra specs covering the remaining layers and activations, and a small GPT trained with AdamW
and gradient clipping on token windows (the clip below the gradients' norm, so that it acts),
this test

1. starts from ``init_weights(spec, seed)`` with the biases and batch-norm tensors moved off
   their trivial initial values (so that every canonical tensor matters to the result);
2. runs ONE optimizer step of disco's own `Trainer` on a fixed random batch (the batch size is
   the batch, so one epoch is one step) and records the batch loss, the weights after the step
   (batch-norm moving statistics included) and the inference outputs afterwards;
3. writes all of it as raw little-endian float32 files plus ``cases.json`` and runs
   ``web/tests/conformance.test.ts`` under vitest with ``DISCO_CONFORMANCE_DIR`` pointing there;
   the TS test builds the model with `buildModel`, loads the weights with `setWeights`, takes one
   `trainOnBatch` step (`tokenStep` for the GPT) and compares, writing ``report.json`` with the
   errors it measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from disco import catalog
from disco.data.dataset import Dataset
from disco.models import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    MaxPool2D,
    ModelSpec,
    TorchModel,
    gpt,
    init_weights,
)
from disco.task import TrainingInfo
from disco.training import Event, Trainer
from disco.weights import Weights

WEB = Path(__file__).resolve().parents[2] / "web"
VITEST = WEB / "node_modules" / ".bin" / "vitest"
BATCH = 8
BACKENDS = ("cpu", "wasm")  # TF.js backends the TS test runs on
SEED = 0

# Layers, paddings and activations the catalog does not use.
COVERAGE_IMAGE = ModelSpec(
    input_shape=(11, 9, 2),
    layers=(
        Conv2D(filters=4, kernel_size=3, strides=(2, 1)),
        Conv2D(filters=4, kernel_size=3, strides=2, padding="same", activation="tanh"),
        Conv2D(filters=3, kernel_size=(3, 2), padding="same", activation="relu"),
        DepthwiseConv2D(kernel_size=(2, 3), depth_multiplier=2, padding="same", activation="gelu"),
        AvgPool2D(pool_size=2, padding="same"),
        MaxPool2D(pool_size=2, strides=1, padding="same"),
        BatchNorm(momentum=0.9, epsilon=0.01),
        Activation(activation="sigmoid"),
        Flatten(),
        Dense(units=3, activation="softmax"),
    ),
    loss="categorical_crossentropy",
)
COVERAGE_MSE = ModelSpec(
    input_shape=(5,),
    layers=(
        Dense(units=6, activation="gelu"),
        BatchNorm(),
        Dense(units=4, activation="relu6", use_bias=False),
        Dense(units=1, activation="tanh"),
    ),
    loss="mse",
)


# A GPT with every GPT layer, trained with AdamW and clipping; dropout 0 for determinism.
COVERAGE_GPT = gpt(vocab_size=37, context=12, d_model=16, layers=2, heads=4, dropout=0.0)
GPT_TRAINING = TrainingInfo(
    data_type="text", optimizer="adamw", learning_rate=0.01, weight_decay=0.1, gradient_clip=0.2
)


def _no_dropout(spec: ModelSpec) -> ModelSpec:
    data = spec.model_dump(mode="json")
    for layer in data["layers"]:
        if layer["type"] == "dropout":
            layer["rate"] = 0.0
        if layer["type"] == "transformer_block":
            layer["dropout"] = 0.0
    return ModelSpec.model_validate(data)


def _cases() -> list[tuple[str, ModelSpec, TrainingInfo]]:
    """(name, spec, training) for every distinct catalog model and the coverage specs."""
    cases: list[tuple[str, ModelSpec, TrainingInfo]] = []
    seen: set[tuple[str, float, str]] = set()
    for task in catalog.all_tasks():
        spec = _no_dropout(task.model)
        key = (spec.model_dump_json(), task.training.learning_rate, task.training.optimizer)
        if key not in seen:
            seen.add(key)
            cases.append((task.id, spec, task.training))
    cases.append(
        ("coverage_image", COVERAGE_IMAGE, TrainingInfo(data_type="text", learning_rate=0.003))
    )
    cases.append(
        (
            "coverage_mse_sgd",
            COVERAGE_MSE,
            TrainingInfo(data_type="text", optimizer="sgd", learning_rate=0.1),
        )
    )
    cases.append(("coverage_gpt_adamw", COVERAGE_GPT, GPT_TRAINING))
    return cases


def _start_weights(spec: ModelSpec, rng: np.random.Generator) -> Weights:
    """`init_weights`, with biases and batch-norm tensors moved off 0 and 1."""
    out: list[tuple[str, np.ndarray]] = []
    for name, value in init_weights(spec, SEED).items():
        suffix = name.rsplit(".", 1)[1]
        if suffix.endswith(("bias", "beta", "moving_mean")):
            value = value + rng.normal(0.0, 0.1, value.shape)
        elif suffix.endswith(("gamma", "moving_variance")):
            value = value * rng.uniform(0.5, 1.5, value.shape)
        out.append((name, value))
    return Weights(out)


def _batch(spec: ModelSpec, rng: np.random.Generator) -> Dataset | np.ndarray:
    """A batch of BATCH samples; token windows (BATCH, context + 1) for a GPT."""
    if spec.takes_tokens:
        return rng.integers(0, spec.output_shape[-1], (BATCH, spec.input_shape[0] + 1))
    x = rng.normal(0.0, 1.0, (BATCH, *spec.input_shape)).astype(np.float32)
    if spec.loss == "categorical_crossentropy":
        y: np.ndarray = np.arange(BATCH) % spec.output_shape[0]
    elif spec.loss == "binary_crossentropy":
        y = (np.arange(BATCH) % 2).astype(np.float32)
    else:
        y = rng.normal(0.0, 0.5, BATCH).astype(np.float32)
    return Dataset(x, y)


def _xy(batch: Dataset | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets: a window without its last token, and without its first."""
    if isinstance(batch, Dataset):
        return batch.x, batch.y
    return batch[:, :-1], batch[:, 1:]


def _gradients(spec: ModelSpec, start: Weights, batch: Dataset | np.ndarray) -> Weights:
    """d loss / d weight at `start`, in canonical layout (trainable tensors only)."""
    model = TorchModel(spec)
    model.set_weights(start)
    model.train()
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) for a in _xy(batch))
    model.loss(model(x), y).backward()
    with torch.no_grad():
        for param in model.parameters():
            assert param.grad is not None
            param.copy_(param.grad)  # the canonical conversion of get_weights, applied to grads
    trainable = spec.weight_shapes(trainable=True)
    return Weights((n, a) for n, a in model.get_weights().items() if n in trainable)


def _f32(path: Path, arrays: list[np.ndarray]) -> None:
    path.write_bytes(b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays))


def _write_case(
    out: Path, name: str, spec: ModelSpec, training: TrainingInfo, rng: np.random.Generator
) -> dict[str, Any]:
    start = _start_weights(spec, rng)
    batch = _batch(spec, rng)
    model = TorchModel(spec)
    model.set_weights(start)
    events: list[Event] = []
    step = training.model_copy(update={"batch_size": BATCH, "epochs_per_round": 1})
    Trainer(model, step, seed=SEED, callbacks=[events.append]).train_round(1, batch, epochs=1)
    losses = [e.loss for e in events if e.kind == "batch_end"]
    assert len(losses) == 1 and losses[0] is not None, "one batch, one step"
    after = model.get_weights()
    x, y = _xy(batch)
    outputs = model.predict_proba(x).numpy()
    trainable = spec.weight_shapes(trainable=True)
    grads = _gradients(spec, start, batch)
    norm = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    clip = training.gradient_clip
    if clip is not None and name.startswith("coverage"):
        assert norm > clip, f"{name}: the clip ({clip}) must act; the gradients' norm is {norm}"
    _f32(out / f"{name}.grad.f32", list(grads.values()))
    _f32(out / f"{name}.init.f32", list(start.values()))
    _f32(out / f"{name}.after.f32", list(after.values()))
    _f32(out / f"{name}.x.f32", [x])  # token ids are exact in float32
    _f32(out / f"{name}.y.f32", [y])
    _f32(out / f"{name}.out.f32", [outputs])
    return {
        "name": name,
        "spec": spec.model_dump(mode="json"),
        "optimizer": training.optimizer,
        "learning_rate": training.learning_rate,
        "weight_decay": training.weight_decay,
        "gradient_clip": clip,
        "clip_scale": 1.0 if clip is None else min(1.0, clip / (norm + 1e-6)),
        "n": BATCH,
        "loss": losses[0],
        "weights": [
            {"name": n, "shape": list(shape), "trainable": n in trainable}
            for n, shape in spec.weight_shapes().items()
        ],
        "output_shape": list(outputs.shape),
    }


def test_tfjs_and_torch_take_the_same_training_step(tmp_path: Path) -> None:
    if not VITEST.exists():  # fail with the fix, never skip
        pytest.fail(f"{VITEST} is missing: run `make web` (it installs web/node_modules)")
    rng = np.random.default_rng(SEED)
    cases = [_write_case(tmp_path, name, spec, tr, rng) for name, spec, tr in _cases()]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "DISCO_CONFORMANCE_DIR": str(tmp_path), "CI": "1", "NO_COLOR": "1"}
    node = shutil.which("node")
    assert node is not None, "node is needed to run the web tests"

    result = subprocess.run(
        [node, str(VITEST), "run", "tests/conformance.test.ts"],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    report_file = tmp_path / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else []
    print(json.dumps(report, indent=1))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    checked = sorted((r["name"], r["backend"]) for r in report)
    assert checked == sorted((c["name"], b) for c in cases for b in BACKENDS)
    assert all(r["passed"] for r in report), report
