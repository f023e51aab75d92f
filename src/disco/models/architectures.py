"""The built-in architectures of the catalog tasks, as portable `ModelSpec`s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disco.errors import ModelError
from disco.models.spec import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LayerNorm,
    MaxPool2D,
    ModelSpec,
    TiedOutput,
    TokenEmbedding,
    TransformerBlock,
)

__all__ = [
    "ARCHITECTURES",
    "breast_cancer_mlp",
    "cifar10_cnn",
    "get_architecture",
    "gpt",
    "lus_covid_cnn",
    "mnist_cnn",
    "titanic_mlp",
]


def titanic_mlp(n_inputs: int = 5) -> ModelSpec:
    """Titanic survival: MLP 124-64-32-1, sigmoid output, binary cross-entropy."""
    return ModelSpec(
        input_shape=(n_inputs,),
        layers=(
            Dense(units=124, activation="relu"),
            Dense(units=64, activation="relu"),
            Dense(units=32, activation="relu"),
            Dense(units=1, activation="sigmoid"),
        ),
        loss="binary_crossentropy",
        description="MLP 124-64-32-1 with ReLU and a sigmoid output (survived or not).",
    )


def breast_cancer_mlp(n_inputs: int = 30) -> ModelSpec:
    """Breast cancer diagnosis: MLP 32-16-1, sigmoid output, binary cross-entropy."""
    return ModelSpec(
        input_shape=(n_inputs,),
        layers=(
            Dense(units=32, activation="relu"),
            Dense(units=16, activation="relu"),
            Dense(units=1, activation="sigmoid"),
        ),
        loss="binary_crossentropy",
        description="MLP 32-16-1 with ReLU and a sigmoid output (malignant or benign).",
    )


def mnist_cnn(h: int = 28, w: int = 28, c: int = 1, classes: int = 10) -> ModelSpec:
    """Handwritten digits: the reference DISCO CNN (conv 8, conv 16, pool, dense 32)."""
    return ModelSpec(
        input_shape=(h, w, c),
        layers=(
            Conv2D(filters=8, kernel_size=(5, 5), activation="relu"),
            Conv2D(filters=16, kernel_size=(5, 5), activation="relu"),
            MaxPool2D(pool_size=(2, 2)),
            Dropout(rate=0.25),
            Flatten(),
            Dense(units=32, activation="relu"),
            Dropout(rate=0.25),
            Dense(units=classes, activation="softmax"),
        ),
        loss="categorical_crossentropy",
        description="Conv8(5x5)-Conv16(5x5)-MaxPool2-Dropout.25-Dense32-Dropout.25-Dense, softmax.",
    )


def _separable(filters: int, stride: int) -> list[Layer]:
    """A MobileNet-v1 block: depthwise 3x3, BN, ReLU6, pointwise 1x1, BN, ReLU6."""
    return [
        DepthwiseConv2D(
            kernel_size=(3, 3), strides=(stride, stride), padding="same", use_bias=False
        ),
        BatchNorm(),
        Activation(activation="relu6"),
        Conv2D(filters=filters, kernel_size=(1, 1), use_bias=False),
        BatchNorm(),
        Activation(activation="relu6"),
    ]


def cifar10_cnn(h: int = 32, w: int = 32, c: int = 3, classes: int = 10) -> ModelSpec:
    """Small images: a MobileNet-v1-style net of width 0.25 (random init), then dense softmax."""
    layers: list[Layer] = [
        Conv2D(filters=8, kernel_size=(3, 3), strides=(2, 2), padding="same", use_bias=False),
        BatchNorm(),
        Activation(activation="relu6"),
        *_separable(16, 1),
        *_separable(32, 2),
        *_separable(32, 1),
        *_separable(64, 2),
        GlobalAvgPool2D(),
        Dropout(rate=0.25),
        Dense(units=classes, activation="softmax"),
    ]
    return ModelSpec(
        input_shape=(h, w, c),
        layers=tuple(layers),
        loss="categorical_crossentropy",
        description=(
            "MobileNet-v1-style CNN, width 0.25: conv 8 stride 2 and four depthwise-separable "
            "blocks (16, 32, 32, 64) with batch norm and ReLU6, global average pooling, dense "
            "softmax. Trained from a random initialisation: no pretrained weights are used."
        ),
    )


def lus_covid_cnn(h: int = 100, w: int = 100, c: int = 3, classes: int = 2) -> ModelSpec:
    """Lung ultrasound (COVID positive/negative): two conv + max-pool blocks, dense softmax."""
    return ModelSpec(
        input_shape=(h, w, c),
        layers=(
            Conv2D(filters=8, kernel_size=(3, 3), activation="relu"),
            MaxPool2D(pool_size=(2, 2)),
            Conv2D(filters=16, kernel_size=(3, 3), activation="relu"),
            MaxPool2D(pool_size=(2, 2)),
            Flatten(),
            Dense(units=classes, activation="softmax"),
        ),
        loss="categorical_crossentropy",
        description="Conv8(3x3)-MaxPool2-Conv16(3x3)-MaxPool2-Dense softmax.",
    )


def gpt(
    vocab_size: int = 2048,
    context: int = 64,
    d_model: int = 128,
    layers: int = 4,
    heads: int = 4,
    dropout: float = 0.1,
) -> ModelSpec:
    """A GPT language model: token + position embedding, pre-LN blocks, tied output.

    The defaults (those of the shakespeare task: 2,048 tokens, a context of 64) hold 1,063,680
    parameters: 270,336 in the embeddings, 198,272 in each of the four blocks and 256 in the
    final LayerNorm.
    """
    if layers < 1:
        raise ValueError(f"a GPT needs at least one transformer block, got layers={layers}")
    stack: list[Layer] = [TokenEmbedding(vocab_size=vocab_size, units=d_model)]
    if dropout > 0:
        stack.append(Dropout(rate=dropout))
    stack += [TransformerBlock(heads=heads, dropout=dropout) for _ in range(layers)]
    stack += [LayerNorm(), TiedOutput()]
    return ModelSpec(
        input_shape=(context,),
        layers=tuple(stack),
        loss="next_token_crossentropy",
        description=(
            f"GPT: {layers} pre-LayerNorm transformer blocks of width {d_model} with {heads} "
            f"causal attention heads and a GELU MLP, learned positions over {context} tokens, "
            f"output tied to the {vocab_size}-token embedding, dropout {dropout}."
        ),
    )


ARCHITECTURES: dict[str, Callable[..., ModelSpec]] = {
    "titanic_mlp": titanic_mlp,
    "breast_cancer_mlp": breast_cancer_mlp,
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "lus_covid_cnn": lus_covid_cnn,
    "gpt": gpt,
}


def get_architecture(name: str, **kwargs: Any) -> ModelSpec:
    """The built-in architecture `name` with its keyword arguments (ModelError if unknown)."""
    try:
        build = ARCHITECTURES[name]
    except KeyError:
        raise ModelError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    try:
        return build(**kwargs)
    except TypeError as exc:
        raise ModelError(f"architecture {name!r}: {exc}") from exc
    except ValueError as exc:  # pydantic ValidationError: the arguments give an invalid model
        raise ModelError(f"architecture {name!r} with {kwargs}: {exc}") from exc
