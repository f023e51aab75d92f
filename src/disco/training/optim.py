"""The task's optimizer in PyTorch, by the rules of the browser's (web/src/core/training/optim.ts).

- ``adam``: Keras's Adam (betas 0.9, 0.999, epsilon 1e-7);
- ``sgd``: plain gradient descent;
- ``adamw``: AdamW (Loshchilov & Hutter) as ``torch.optim.AdamW`` with betas 0.9, 0.95 and
  epsilon 1e-8 (GPT-2/3's). The decay is decoupled — each step first multiplies a tensor by
  ``1 - lr * weight_decay`` — and applies to tensors of rank 2 and more only (kernels and
  embeddings), never to biases, LayerNorm or batch-norm vectors, as nanoGPT does.

``gradient_clip`` (any optimizer): before a step, when the global L2 norm of all gradients
exceeds it, every gradient is scaled by ``gradient_clip / (norm + 1e-6)``
(``torch.nn.utils.clip_grad_norm_``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import torch
from torch import nn

from disco.task import TrainingInfo

__all__ = ["ADAMW_BETAS", "ADAMW_EPSILON", "ADAM_EPSILON", "clip_gradients", "make_optimizer"]

ADAM_EPSILON: Final = 1e-7
ADAMW_BETAS: Final = (0.9, 0.95)
ADAMW_EPSILON: Final = 1e-8


def make_optimizer(model: nn.Module, training: TrainingInfo) -> torch.optim.Optimizer:
    """The optimizer `training` names, over `model`'s parameters."""
    lr = training.learning_rate
    if training.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, eps=ADAM_EPSILON)
    if training.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": training.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=ADAMW_BETAS, eps=ADAMW_EPSILON)


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float | None) -> float | None:
    """Scale the gradients to a global L2 norm of at most `max_norm`; the norm before, or None."""
    if max_norm is None:
        return None
    grads = [p for p in params if p.grad is not None]
    return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
