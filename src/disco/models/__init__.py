"""Models: the portable format, its PyTorch realisation and the built-in architectures (a GPT).

The PyTorch realisation (`TorchModel`, `build_torch_model`, in `disco.models.torch`) is imported
on first use, so that the format, the architectures and `init_weights` (numpy only) do not load
torch: the server uses them and never trains.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from disco.models.architectures import (
    ARCHITECTURES,
    breast_cancer_mlp,
    cifar10_cnn,
    get_architecture,
    gpt,
    lus_covid_cnn,
    mnist_cnn,
    titanic_mlp,
)
from disco.models.init import init_weights
from disco.models.spec import (
    FORMAT,
    Activation,
    ActivationName,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LayerNorm,
    LossName,
    MaxPool2D,
    ModelSpec,
    Padding,
    TiedOutput,
    TokenEmbedding,
    TransformerBlock,
)

if TYPE_CHECKING:
    from disco.models.torch import TorchModel, build_torch_model

_TORCH_NAMES = frozenset({"TorchModel", "build_torch_model"})

__all__ = [
    "ARCHITECTURES",
    "FORMAT",
    "Activation",
    "ActivationName",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "LayerNorm",
    "LossName",
    "MaxPool2D",
    "ModelSpec",
    "Padding",
    "TiedOutput",
    "TokenEmbedding",
    "TorchModel",
    "TransformerBlock",
    "breast_cancer_mlp",
    "build_torch_model",
    "cifar10_cnn",
    "get_architecture",
    "gpt",
    "init_weights",
    "lus_covid_cnn",
    "mnist_cnn",
    "titanic_mlp",
]


def __getattr__(name: str) -> Any:
    """`TorchModel` and `build_torch_model`, importing torch the first time one is asked for."""
    if name in _TORCH_NAMES:
        value = getattr(importlib.import_module("disco.models.torch"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _TORCH_NAMES)
