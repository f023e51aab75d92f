"""Models: the portable format, its PyTorch realisation and the built-in architectures."""

from __future__ import annotations

from disco.models.architectures import (
    ARCHITECTURES,
    breast_cancer_mlp,
    cifar10_cnn,
    get_architecture,
    lus_covid_cnn,
    mnist_cnn,
    titanic_mlp,
)
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
    LossName,
    MaxPool2D,
    ModelSpec,
    Padding,
    init_weights,
)
from disco.models.torch import TorchModel, build_torch_model

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
    "LossName",
    "MaxPool2D",
    "ModelSpec",
    "Padding",
    "TorchModel",
    "breast_cancer_mlp",
    "build_torch_model",
    "cifar10_cnn",
    "get_architecture",
    "init_weights",
    "lus_covid_cnn",
    "mnist_cnn",
    "titanic_mlp",
]
