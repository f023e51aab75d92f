"""The local trainer: epochs of mini-batch training with metrics and one flat stream of events.

The same trainer serves local, federated and simulated participants: a round is
``epochs_per_round`` epochs on the local training set, each followed by an evaluation on the local
validation set, or one part of an epoch (`disco.schedule`: the part's batches of the epoch's
order, then an evaluation on the part's share of the validation set). Events
(round/epoch/batch) go to callbacks — the CLI's progress bars and the history both consume them.
Training is deterministic under a seed: data order and dropout draw from generators seeded per
(seed, round, epoch); the parts of an epoch cut into rounds share the order drawn in the round
that trained its part 1 (a participant that joins again starts again from part 1 with a new
order: short sessions do not train the same windows each time).

Image and tabular models train on a `Dataset`; a language model (a spec that `takes_tokens`)
trains on token windows, an integer array (N, context + 1) as `disco.data.text` cuts them:
inputs are each window without its last token, targets without its first, the loss is the mean
over batch x positions, and the metrics are that loss, its exponential (perplexity) and the
share of positions whose most likely next token is the target (token accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from disco.data.dataset import Dataset
from disco.errors import DataError
from disco.models import TorchModel
from disco.schedule import EpochPart
from disco.task import TrainingInfo
from disco.training.optim import clip_gradients, make_optimizer

__all__ = ["EpochMetrics", "Event", "EventCallback", "Trainer", "TrainingData", "evaluate"]

TrainingData = Dataset | np.ndarray
"""A `Dataset`, or token windows (N, context + 1) for a language model."""

EventKind = Literal["round_start", "batch_end", "epoch_end", "round_end"]


@dataclass(frozen=True)
class EpochMetrics:
    """Loss and accuracy of one epoch on the training data and on the validation data."""

    round: int
    epoch: int
    train_loss: float
    train_accuracy: float | None
    val_loss: float | None = None
    val_accuracy: float | None = None
    # language models: exp of the mean loss over every predicted token
    train_perplexity: float | None = None
    val_perplexity: float | None = None


@dataclass(frozen=True)
class Event:
    """One step of training, as seen by progress displays."""

    kind: EventKind
    round: int
    epoch: int = 0
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    metrics: EpochMetrics | None = None
    part: EpochPart | None = None  # the part of an epoch the round trains, when it trains one


EventCallback = Callable[[Event], None]


def _accuracy(model: TorchModel, logits: torch.Tensor, y: torch.Tensor) -> float | None:
    kind = model.spec.loss
    if kind in ("categorical_crossentropy", "next_token_crossentropy"):
        return float((logits.argmax(dim=-1) == y).float().mean())
    if kind == "binary_crossentropy":
        return float(((logits.reshape(-1) > 0).long() == y.reshape(-1).long()).float().mean())
    return None


def _tensor(a: np.ndarray, dtype: type[np.generic]) -> torch.Tensor:
    """A tensor sharing `a`'s memory when possible (copied if `a` is read-only)."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def _windows(model: TorchModel, data: TrainingData) -> tuple[torch.Tensor, torch.Tensor]:
    """Token windows (N, T + 1) as inputs and targets (N, T), checked against the model."""
    spec = model.spec
    if not isinstance(data, np.ndarray):
        raise DataError(
            "a language model trains on token windows (an integer array of shape "
            f"(N, {spec.input_shape[0] + 1})), not on a {type(data).__name__}"
        )
    context, vocab = spec.input_shape[0], spec.output_shape[-1]
    if data.ndim != 2 or data.shape[1] != context + 1 or data.dtype.kind not in "iu":
        raise DataError(
            f"token windows must be integers of shape (N, {context + 1}) for a context of "
            f"{context}, got {data.dtype} {data.shape}"
        )
    if data.size and (int(data.min()) < 0 or int(data.max()) >= vocab):
        raise DataError(
            f"token ids must be 0 to {vocab - 1} (the model's vocabulary), "
            f"got {int(data.min())} to {int(data.max())}"
        )
    ids = _tensor(data, np.int64)
    return ids[:, :-1], ids[:, 1:]


def _arrays(model: TorchModel, data: TrainingData) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of `data` as tensors for `model`."""
    if model.spec.takes_tokens:
        return _windows(model, data)
    if not isinstance(data, Dataset):
        raise DataError(f"this model trains on a Dataset, not on a {type(data).__name__}")
    if model.spec.loss == "categorical_crossentropy":
        return _tensor(data.x, np.float32), _tensor(data.y, np.int64)
    return _tensor(data.x, np.float32), _tensor(data.y, np.float32)


def _perplexity(model: TorchModel, loss: float | None) -> float | None:
    if loss is None or not model.spec.takes_tokens:
        return None
    return math.exp(min(loss, 700.0))  # exp overflows a float past ~709


@torch.no_grad()
def evaluate(
    model: TorchModel, data: TrainingData, batch_size: int = 512
) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of `model` on `data`."""
    if len(data) == 0:
        raise DataError("cannot evaluate on an empty dataset")
    model.eval()
    x_all, y_all = _arrays(model, data)
    if model.spec.takes_tokens:  # logits are (B, T, V): keep a batch's under 2^24 values
        batch_size = max(1, min(batch_size, 2**24 // math.prod(model.spec.output_shape)))
    loss_sum, correct, n = 0.0, 0.0, len(data)
    for start in range(0, n, batch_size):
        x, y = x_all[start : start + batch_size], y_all[start : start + batch_size]
        logits = model(x)
        loss_sum += float(model.loss(logits, y)) * len(x)
        acc = _accuracy(model, logits, y)
        correct += (acc or 0.0) * len(x)
    has_acc = model.spec.loss != "mse"
    return loss_sum / n, (correct / n if has_acc else None)


@dataclass
class Trainer:
    """Trains one participant's model on its local data, round after round."""

    model: TorchModel
    training: TrainingInfo
    seed: int = 0
    callbacks: list[EventCallback] = field(default_factory=list)
    _optimizer: torch.optim.Optimizer | None = field(default=None, init=False, repr=False)
    # an epoch cut into rounds: its order's seed, drawn in the round of its part 1
    _epoch_seeds: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def _emit(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, created on first use and kept across rounds (like a compiled model)."""
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.training)
        return self._optimizer

    def train_round(
        self,
        round: int,
        train: TrainingData,
        val: TrainingData | None = None,
        epochs: int | None = None,
        part: EpochPart | None = None,
    ) -> list[EpochMetrics]:
        """Run `epochs` (default: epochs_per_round) epochs, or `part` of an epoch; return each
        epoch's metrics (a part: one entry, on the part's batches and validation share)."""
        if len(train) == 0:
            raise DataError("no training data: connect at least one sample")
        if part is not None:
            epochs = 1
        elif epochs is None:
            epochs = self.training.epochs_per_round
        bs = self.training.batch_size
        x_all, y_all = _arrays(self.model, train)
        n = len(train)
        batches = (n + bs - 1) // bs
        self._emit(Event("round_start", round, part=part))
        history = []
        for epoch in range(1, epochs + 1):
            if part is None:
                order_seed, dropout_seed = _seeds([self.seed, round, epoch])
                steps = range(batches)
            else:  # the parts of one epoch share one order, drawn in the round of its part 1
                order_seed, dropout_seed = _seeds([self.seed, round, epoch])
                if part.index == 1 or part.epoch not in self._epoch_seeds:
                    self._epoch_seeds[part.epoch] = order_seed
                order_seed = self._epoch_seeds[part.epoch]
                steps = part.batch_range(batches)
            torch.manual_seed(dropout_seed)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(order_seed))
            self.model.train()
            loss_sum, correct, seen = 0.0, 0.0, 0
            for i, b in enumerate(steps):
                idx = order[b * bs : (b + 1) * bs]
                x, y = x_all[idx], y_all[idx]
                self.optimizer.zero_grad(set_to_none=True)
                logits = self.model(x)
                loss = self.model.loss(logits, y)
                loss.backward()  # type: ignore[no-untyped-call]
                clip_gradients(self.model.parameters(), self.training.gradient_clip)
                self.optimizer.step()
                batch_loss = float(loss.detach())
                loss_sum += batch_loss * len(idx)
                correct += (_accuracy(self.model, logits.detach(), y) or 0.0) * len(idx)
                seen += len(idx)
                self._emit(
                    Event("batch_end", round, epoch, i + 1, len(steps), batch_loss, part=part)
                )
            has_acc = self.model.spec.loss != "mse"
            train_loss, train_acc = loss_sum / seen, (correct / seen if has_acc else None)
            vl: float | None = None
            va: float | None = None
            if val is not None and len(val) > 0:
                share = val if part is None else _take(val, part.validation_indices(len(val)))
                vl, va = evaluate(self.model, share)
            metrics = EpochMetrics(
                round, epoch, train_loss, train_acc, vl, va,
                _perplexity(self.model, train_loss), _perplexity(self.model, vl),
            )  # fmt: skip
            history.append(metrics)
            done = Event(
                "epoch_end", round, epoch, len(steps), len(steps), metrics=metrics, part=part
            )
            self._emit(done)
        self._emit(Event("round_end", round, epochs, metrics=history[-1], part=part))
        return history


def _seeds(entropy: list[int]) -> tuple[int, int]:
    """Two seeds (data order, dropout) drawn from `entropy`."""
    a, b = np.random.SeedSequence(entropy).generate_state(2)
    return int(a), int(b)


def _take(data: TrainingData, indices: np.ndarray) -> TrainingData:
    """The samples of `data` at `indices`, in that order."""
    if isinstance(data, np.ndarray):
        taken: np.ndarray = data[indices]
        return taken
    return data.subset(indices)
