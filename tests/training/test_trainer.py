"""The local trainer: learning, the event stream, determinism and evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from disco.data.dataset import Dataset
from disco.errors import DataError
from disco.models import Dense, ModelSpec, TorchModel, build_torch_model
from disco.models.architectures import mnist_cnn
from disco.task import ColumnSpec, TrainingInfo
from disco.training import EpochMetrics, Event, Trainer, evaluate

SPEC = ModelSpec(
    input_shape=(2,),
    layers=(Dense(units=8, activation="relu"), Dense(units=1, activation="sigmoid")),
    loss="binary_crossentropy",
)


def training(**changes: object) -> TrainingInfo:
    """Tabular training info for two input columns and a 0/1 label."""
    fields: dict[str, object] = {
        "data_type": "tabular",
        "input_columns": (ColumnSpec(name="a"), ColumnSpec(name="b")),
        "output_column": "y",
        "labels": ("no", "yes"),
        "epochs": 10,
        "epochs_per_round": 1,
        "batch_size": 16,
        "learning_rate": 0.05,
    }
    fields.update(changes)
    return TrainingInfo.model_validate(fields)


def separable(n: int, seed: int) -> Dataset:
    """Points in the plane labelled by the side of the line a + b = 0, with a margin."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(4 * n, 2))
    x = x[np.abs(x.sum(axis=1)) > 0.2][:n]
    return Dataset(x.astype(np.float32), (x.sum(axis=1) > 0).astype(np.int64))


# -- learning -------------------------------------------------------------------------------------
def test_training_lowers_loss_and_reaches_high_accuracy() -> None:
    train, test = separable(256, seed=0), separable(200, seed=1)
    model = build_torch_model(SPEC, seed=0)
    trainer = Trainer(model, training(), seed=0)
    loss_before, _ = evaluate(model, test)

    history = trainer.train_round(1, train, val=test, epochs=10)
    loss_after, accuracy = evaluate(model, test)

    assert len(history) == 10
    assert history[-1].train_loss < 0.5 * history[0].train_loss
    assert loss_after < 0.5 * loss_before
    assert accuracy is not None and accuracy >= 0.95
    assert history[-1].val_accuracy == pytest.approx(accuracy)
    assert history[-1].val_loss == pytest.approx(loss_after, rel=1e-5)


def test_default_epochs_is_epochs_per_round() -> None:
    trainer = Trainer(build_torch_model(SPEC), training(epochs=6, epochs_per_round=3))

    history = trainer.train_round(1, separable(40, seed=0))

    assert [m.epoch for m in history] == [1, 2, 3]
    assert all(m.round == 1 and m.val_loss is None and m.val_accuracy is None for m in history)


# -- events ---------------------------------------------------------------------------------------
def test_events_arrive_in_order_with_their_counters() -> None:
    events: list[Event] = []
    trainer = Trainer(build_torch_model(SPEC), training(), callbacks=[events.append])
    train = separable(50, seed=0)  # 50 samples / 16 = 4 batches, the last of 2

    history = trainer.train_round(3, train, epochs=2)

    kinds = [e.kind for e in events]
    assert kinds == (
        ["round_start"]
        + ["batch_end"] * 4
        + ["epoch_end"]
        + ["batch_end"] * 4
        + ["epoch_end"]
        + ["round_end"]
    )
    assert all(e.round == 3 for e in events)
    batch_events = [e for e in events if e.kind == "batch_end"]
    assert [(e.epoch, e.batch) for e in batch_events] == [
        (epoch, batch) for epoch in (1, 2) for batch in (1, 2, 3, 4)
    ]
    assert all(e.batches == 4 for e in batch_events)
    assert all(e.loss is not None and math.isfinite(e.loss) for e in batch_events)
    epoch_events = [e for e in events if e.kind == "epoch_end"]
    assert [e.epoch for e in epoch_events] == [1, 2]
    assert [e.metrics for e in epoch_events] == history
    assert events[-1].metrics == history[-1]
    assert events[-1].epoch == 2


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses() -> None:
    events: list[Event] = []
    trainer = Trainer(build_torch_model(SPEC), training(), callbacks=[events.append])

    history = trainer.train_round(1, separable(50, seed=0), epochs=1)

    losses = [e.loss for e in events if e.kind == "batch_end"]
    sizes = [16, 16, 16, 2]
    expected = sum(loss * size for loss, size in zip(losses, sizes, strict=True)) / 50  # type: ignore[operator]
    assert history[0].train_loss == pytest.approx(expected)


# -- determinism ----------------------------------------------------------------------------------
def trained_digest(trainer_seed: int) -> str:
    """Digest of the weights after two rounds from the same initial weights."""
    model = build_torch_model(SPEC, seed=0)
    trainer = Trainer(model, training(), seed=trainer_seed)
    data = separable(100, seed=3)
    trainer.train_round(1, data, epochs=2)
    trainer.train_round(2, data, epochs=1)
    return model.get_weights().digest()


def test_same_seed_gives_bit_identical_weights() -> None:
    assert trained_digest(7) == trained_digest(7)


def test_different_seed_gives_different_weights() -> None:
    assert trained_digest(7) != trained_digest(8)


def test_training_changes_the_weights() -> None:
    model = build_torch_model(SPEC, seed=0)
    before = model.get_weights()

    Trainer(model, training()).train_round(1, separable(32, seed=0))

    after = model.get_weights()
    assert after.shapes == before.shapes
    assert after.digest() != before.digest()


# -- evaluation -----------------------------------------------------------------------------------
def test_evaluate_accuracy_matches_predictions() -> None:
    model = build_torch_model(SPEC, seed=1)
    data = separable(120, seed=2)

    loss, accuracy = evaluate(model, data, batch_size=7)

    predicted = (model.predict_proba(data.x).numpy().reshape(-1) > 0.5).astype(np.int64)
    assert accuracy == pytest.approx(float((predicted == data.y).mean()))
    assert loss > 0 and math.isfinite(loss)


def test_evaluate_categorical_accuracy() -> None:
    spec = ModelSpec(
        input_shape=(3,),
        layers=(Dense(units=4, activation="softmax"),),
        loss="categorical_crossentropy",
    )
    model = build_torch_model(spec, seed=0)
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(50, 3)).astype(np.float32), rng.integers(0, 4, size=50))

    _, accuracy = evaluate(model, data)

    predicted = model.predict_proba(data.x).numpy().argmax(axis=1)
    assert accuracy == pytest.approx(float((predicted == data.y).mean()))


def test_evaluate_regression_has_no_accuracy() -> None:
    spec = ModelSpec(input_shape=(2,), layers=(Dense(units=1),), loss="mse")
    model = build_torch_model(spec)
    data = Dataset(np.ones((4, 2), dtype=np.float32), np.zeros(4, dtype=np.float32))

    loss, accuracy = evaluate(model, data)

    assert accuracy is None
    expected = float(((model.predict_proba(data.x).numpy().reshape(-1) - 0.0) ** 2).mean())
    assert loss == pytest.approx(expected)


# -- errors ---------------------------------------------------------------------------------------
def test_empty_training_set_raises() -> None:
    empty = Dataset(np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=np.int64))
    events: list[Event] = []
    trainer = Trainer(build_torch_model(SPEC), training(), callbacks=[events.append])

    with pytest.raises(DataError, match="no training data"):
        trainer.train_round(1, empty)
    with pytest.raises(DataError, match="empty"):
        evaluate(trainer.model, empty)
    assert events == []


# -- a real architecture --------------------------------------------------------------------------
def test_mnist_cnn_runs_one_round() -> None:
    spec = mnist_cnn()
    info = TrainingInfo(
        data_type="image",
        image_height=28,
        image_width=28,
        labels=tuple(str(d) for d in range(10)),
        epochs=1,
        batch_size=32,
    )
    rng = np.random.default_rng(0)
    images = Dataset(rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, size=64))
    model: TorchModel = build_torch_model(spec)

    history = Trainer(model, info).train_round(1, images, val=images.subset(range(16)))

    assert len(history) == 1
    metrics = history[0]
    assert isinstance(metrics, EpochMetrics)
    assert (metrics.round, metrics.epoch) == (1, 1)
    assert math.isfinite(metrics.train_loss) and metrics.train_loss > 0
    assert metrics.train_accuracy is not None and 0.0 <= metrics.train_accuracy <= 1.0
    assert metrics.val_loss is not None and math.isfinite(metrics.val_loss)
    assert metrics.val_accuracy is not None and 0.0 <= metrics.val_accuracy <= 1.0
    assert model.get_weights().shapes == spec.weight_shapes()


# -- rounds shorter than an epoch -----------------------------------------------------------------
def seen_rows(trainer: Trainer) -> list[list[int]]:
    """Records, batch by batch, which samples of `indexed` the model is trained on."""
    batches: list[list[int]] = []

    def record(_module: object, args: tuple[object, ...]) -> None:
        x = args[0]
        assert hasattr(x, "detach")
        if trainer.model.training:
            batches.append([round(float(v) * 1000) for v in x.detach()[:, 0]])  # type: ignore[union-attr]

    trainer.model.register_forward_pre_hook(record)
    return batches


def indexed(n: int) -> Dataset:
    """`separable` points whose first feature also tells the sample's index (i / 1000)."""
    data = separable(n, seed=4)
    x = data.x.copy()
    x[:, 0] = np.arange(n, dtype=np.float32) / 1000
    return Dataset(x, data.y)


def test_the_parts_of_an_epoch_train_each_sample_once_in_one_shuffled_order() -> None:
    info = training(epochs=2, rounds_per_epoch=3, batch_size=8)
    events: list[Event] = []
    trainer = Trainer(build_torch_model(SPEC), info, seed=5, callbacks=[events.append])
    batches = seen_rows(trainer)
    data = indexed(60)  # 8 batches: parts of 2, 3 and 3 batches
    sizes = []
    for k in range(1, 4):
        start = len(batches)
        history = trainer.train_round(10 + k, data, epochs=None, part=info.epoch_part(k))
        sizes.append(len(batches) - start)
        assert len(history) == 1 and history[0].round == 10 + k
    assert sizes == [2, 3, 3]
    epoch1 = [i for b in batches for i in b]
    assert sorted(epoch1) == list(range(60))  # every sample once
    assert epoch1 != list(range(60))  # shuffled
    assert [e.batches for e in events if e.kind == "batch_end"] == [2, 2, 3, 3, 3, 3, 3, 3]

    # the next epoch has an order of its own
    trainer.train_round(20, data, part=info.epoch_part(4))
    assert [i for b in batches[8:] for i in b] != epoch1[:16]

    # a participant that joins again starts from part 1, in the order of the round it starts in:
    # the same round, the same order (deterministic); another round, another order
    def first_part(seed: int, round: int) -> list[int]:
        again = Trainer(build_torch_model(SPEC), info, seed=seed)
        rows = seen_rows(again)
        again.train_round(round, data, part=info.epoch_part(1))
        return [i for b in rows for i in b]

    assert first_part(5, 11) == epoch1[:16]
    assert first_part(5, 40) != epoch1[:16]


def test_a_part_is_evaluated_on_its_share_of_the_validation_set() -> None:
    info = training(epochs=1, rounds_per_epoch=4)
    model = build_torch_model(SPEC, seed=0)
    events: list[Event] = []
    trainer = Trainer(model, info, callbacks=[events.append])
    val = separable(30, seed=6)
    part = info.epoch_part(3)
    assert part is not None
    history = trainer.train_round(3, separable(64, seed=0), val=val, part=part)
    share = val.subset(part.validation_indices(len(val)))
    assert len(share) == 7  # samples 2, 6, 10, … 26 of 30
    loss, acc = evaluate(model, share)
    assert history[0].val_loss == pytest.approx(loss)
    assert history[0].val_accuracy == pytest.approx(acc)
    # 4 batches of 16, part 3 of 4: one batch, whose loss is the round's training loss
    losses = [e.loss for e in events if e.kind == "batch_end"]
    assert len(losses) == 1 and history[0].train_loss == pytest.approx(losses[0])
