"""The optimizers (AdamW's decoupled decay, global-norm clipping) and training on token windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disco.data.dataset import Dataset
from disco.errors import DataError
from disco.models import build_torch_model, gpt
from disco.task import TrainingInfo
from disco.training import Event, Trainer, evaluate
from disco.training.optim import ADAMW_BETAS, ADAMW_EPSILON, clip_gradients, make_optimizer

CONTEXT, VOCAB = 8, 12


def text_training(**changes: object) -> TrainingInfo:
    base = {"data_type": "text", "optimizer": "adamw", "learning_rate": 0.01, "batch_size": 8}
    return TrainingInfo.model_validate({**base, **changes})


def test_training_info_has_adamw_weight_decay_and_clipping() -> None:
    t = TrainingInfo(data_type="text")
    assert (t.optimizer, t.weight_decay, t.gradient_clip) == ("adam", 0.1, None)
    with pytest.raises(ValueError, match="gradient_clip"):
        TrainingInfo(data_type="text", gradient_clip=0)
    with pytest.raises(ValueError, match="weight_decay"):
        TrainingInfo(data_type="text", weight_decay=-0.1)


def test_one_adamw_step_is_decoupled_decay_then_adam_on_matrices_only() -> None:
    model = torch.nn.Linear(3, 2)  # weight: rank 2 (decayed), bias: rank 1 (not)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = make_optimizer(model, text_training(learning_rate=0.1, weight_decay=0.5))
    model(torch.ones(4, 3)).pow(2).sum().backward()  # type: ignore[no-untyped-call]
    gw, gb = model.weight.grad.clone(), model.bias.grad.clone()  # type: ignore[union-attr]

    opt.step()

    def adam(g: torch.Tensor) -> torch.Tensor:  # the first step: bias-corrected moments
        b1, b2 = ADAMW_BETAS
        m, v = (1 - b1) * g / (1 - b1), (1 - b2) * g * g / (1 - b2)
        return 0.1 * m / (v.sqrt() + ADAMW_EPSILON)

    torch.testing.assert_close(model.weight.detach(), w0 * (1 - 0.1 * 0.5) - adam(gw))
    torch.testing.assert_close(model.bias.detach(), b0 - adam(gb))


def test_clipping_scales_every_gradient_to_the_global_norm() -> None:
    model = torch.nn.Linear(2, 2)
    model(torch.full((1, 2), 10.0)).sum().backward()  # type: ignore[no-untyped-call]
    grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))

    before = clip_gradients(model.parameters(), 1.0)

    assert before == pytest.approx(norm, rel=1e-6)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g / (norm + 1e-6))
    assert clip_gradients(model.parameters(), None) is None


def repeating_windows(n: int = 40) -> np.ndarray:
    stream = np.arange(n * CONTEXT + 1) % 5 + 1
    return np.stack([stream[i : i + CONTEXT + 1] for i in range(0, n * CONTEXT - CONTEXT, CONTEXT)])


def test_a_gpt_learns_token_windows_with_perplexity_and_token_accuracy() -> None:
    model = build_torch_model(gpt(VOCAB, CONTEXT, d_model=16, layers=1, heads=2, dropout=0.0))
    windows = repeating_windows()
    events: list[Event] = []
    trainer = Trainer(model, text_training(gradient_clip=1.0, epochs_per_round=6), seed=1,
                      callbacks=[events.append])  # fmt: skip

    history = trainer.train_round(1, windows, windows[:4])

    first, last = history[0], history[-1]
    assert last.train_loss < first.train_loss / 3
    assert last.train_perplexity == pytest.approx(math.exp(last.train_loss))
    assert last.val_perplexity == pytest.approx(math.exp(last.val_loss or 0))
    assert last.val_accuracy == 1.0
    assert evaluate(model, windows[:4]) == pytest.approx((last.val_loss, 1.0))
    assert [e.kind for e in events][-1] == "round_end"


def test_token_training_refuses_the_wrong_data_with_the_fix() -> None:
    model = build_torch_model(gpt(VOCAB, CONTEXT, d_model=16, layers=1, heads=2))
    trainer = Trainer(model, text_training())
    dataset = Dataset(np.zeros((4, CONTEXT), np.float32), np.zeros(4, np.int64))

    with pytest.raises(DataError, match="trains on token windows"):
        trainer.train_round(1, dataset)
    with pytest.raises(DataError, match=r"shape \(N, 9\)"):
        trainer.train_round(1, np.zeros((3, CONTEXT), np.int32))
    with pytest.raises(DataError, match="token ids must be 0 to 11"):
        trainer.train_round(1, np.full((3, CONTEXT + 1), VOCAB, np.int32))
