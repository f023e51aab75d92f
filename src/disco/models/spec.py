"""The portable model format: a Keras/TF.js-style stack of layers as a validated JSON document.

A `ModelSpec` is written once and realised by two engines: PyTorch here
(`disco.models.torch`) and TF.js in the browser (each layer maps to one ``tf.layers.*``).
Shapes are per sample and channels-last: ``[H, W, C]`` for images, ``[F]`` for tabular data,
``[T]`` token ids for language models (a ``token_embedding`` first layer tells it from ``[F]``;
the GPT layers live in `disco.models.transformer`).
Weights travel under canonical names (``conv2d_1.kernel``) in TF/Keras layouts;
`disco.models.init.init_weights` gives every engine the same starting point.

Construction validates field by field (pydantic `ValidationError`, a `ValueError`);
`ModelSpec.parse` wraps every failure into one `ModelError` for user-facing input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from disco.errors import ModelError
from disco.models.base import LayerBase, Shape, WeightInfo
from disco.models.transformer import LayerNorm, TiedOutput, TokenEmbedding, TransformerBlock

__all__ = [
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
    "Shape",
    "TiedOutput",
    "TokenEmbedding",
    "TransformerBlock",
    "WeightInfo",
]

FORMAT: Final = "disco.model/1"

ActivationName = Literal["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "gelu"]
Padding = Literal["valid", "same"]
LossName = Literal[
    "categorical_crossentropy", "binary_crossentropy", "mse", "next_token_crossentropy"
]


def _pair(value: Any) -> Any:
    """Accept ``3`` for ``[3, 3]``, as Keras and TF.js do."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return value


Pair = Annotated[tuple[PositiveInt, PositiveInt], BeforeValidator(_pair)]
_Layer = LayerBase


def _bias(shape: Shape) -> WeightInfo:
    return WeightInfo(suffix="bias", shape=shape, trainable=True, init="zeros")


def _image(layer: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"{layer} needs an (height, width, channels) input, got shape {list(shape)}"
        )
    return shape[0], shape[1], shape[2]


def _spatial(
    layer: str, hw: tuple[int, int], window: tuple[int, int], strides: tuple[int, int], pad: str
) -> tuple[int, int]:
    """Output height and width of a sliding window, TF semantics."""
    if pad == "same":
        return -(-hw[0] // strides[0]), -(-hw[1] // strides[1])
    if window[0] > hw[0] or window[1] > hw[1]:
        raise ValueError(
            f"{layer} window {window[0]}x{window[1]} is larger than its {hw[0]}x{hw[1]} input; "
            "use padding 'same' or a smaller window"
        )
    return (hw[0] - window[0]) // strides[0] + 1, (hw[1] - window[1]) // strides[1] + 1


class Dense(_Layer):
    """Fully connected layer on a 1-D input: ``kernel`` [in, units], ``bias`` [units]."""

    type: Literal["dense"] = "dense"
    units: PositiveInt
    activation: ActivationName = "linear"
    use_bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(
                f"dense needs a 1-D input but gets shape {list(shape)}; "
                "add a flatten or global_avg_pool2d layer before it"
            )
        return (self.units,)

    def weights(self, shape: Shape) -> list[WeightInfo]:
        kernel = (shape[0], self.units)
        out = [WeightInfo(suffix="kernel", shape=kernel, trainable=True, init="glorot_uniform")]
        if self.use_bias:
            out.append(_bias((self.units,)))
        return out


class Conv2D(_Layer):
    """2-D convolution: ``kernel`` [kh, kw, in, filters], ``bias`` [filters]."""

    type: Literal["conv2d"] = "conv2d"
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    activation: ActivationName = "linear"
    use_bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        h, w, _ = _image("conv2d", shape)
        oh, ow = _spatial("conv2d", (h, w), self.kernel_size, self.strides, self.padding)
        return (oh, ow, self.filters)

    def weights(self, shape: Shape) -> list[WeightInfo]:
        kh, kw = self.kernel_size
        kernel = (kh, kw, shape[2], self.filters)
        out = [WeightInfo(suffix="kernel", shape=kernel, trainable=True, init="glorot_uniform")]
        if self.use_bias:
            out.append(_bias((self.filters,)))
        return out


class DepthwiseConv2D(_Layer):
    """Per-channel convolution: ``depthwise_kernel`` [kh, kw, in, multiplier], ``bias``."""

    type: Literal["depthwise_conv2d"] = "depthwise_conv2d"
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    depth_multiplier: PositiveInt = 1
    activation: ActivationName = "linear"
    use_bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        h, w, c = _image("depthwise_conv2d", shape)
        oh, ow = _spatial("depthwise_conv2d", (h, w), self.kernel_size, self.strides, self.padding)
        return (oh, ow, c * self.depth_multiplier)

    def weights(self, shape: Shape) -> list[WeightInfo]:
        kh, kw = self.kernel_size
        kernel = (kh, kw, shape[2], self.depth_multiplier)
        out = [
            WeightInfo(
                suffix="depthwise_kernel", shape=kernel, trainable=True, init="glorot_uniform"
            )
        ]
        if self.use_bias:
            out.append(_bias((shape[2] * self.depth_multiplier,)))
        return out


class _Pool2D(_Layer):
    """Window pooling; `strides` defaults to `pool_size` (null in JSON)."""

    pool_size: Pair = (2, 2)
    strides: Pair | None = None
    padding: Padding = "valid"

    @property
    def step(self) -> tuple[int, int]:
        """The effective strides."""
        return self.strides if self.strides is not None else self.pool_size

    def output_shape(self, shape: Shape) -> Shape:
        h, w, c = _image(self.kind, shape)
        oh, ow = _spatial(self.kind, (h, w), self.pool_size, self.step, self.padding)
        return (oh, ow, c)

    @property
    def kind(self) -> str:
        """The layer type tag."""
        return str(getattr(self, "type", "pool"))


class MaxPool2D(_Pool2D):
    """Max pooling; padded cells never win (TF semantics)."""

    type: Literal["max_pool2d"] = "max_pool2d"


class AvgPool2D(_Pool2D):
    """Average pooling; padded cells are left out of the average (TF semantics)."""

    type: Literal["avg_pool2d"] = "avg_pool2d"


class GlobalAvgPool2D(_Layer):
    """Mean over height and width: (H, W, C) -> (C,)."""

    type: Literal["global_avg_pool2d"] = "global_avg_pool2d"

    def output_shape(self, shape: Shape) -> Shape:
        return (_image("global_avg_pool2d", shape)[2],)


class BatchNorm(_Layer):
    """Batch normalisation over the last axis, Keras semantics (momentum 0.99, epsilon 1e-3)."""

    type: Literal["batch_norm"] = "batch_norm"
    momentum: float = Field(default=0.99, ge=0.0, le=1.0)
    epsilon: float = Field(default=1e-3, gt=0.0)

    def weights(self, shape: Shape) -> list[WeightInfo]:
        c = (shape[-1],)
        return [
            WeightInfo(suffix="gamma", shape=c, trainable=True, init="ones"),
            WeightInfo(suffix="beta", shape=c, trainable=True, init="zeros"),
            WeightInfo(suffix="moving_mean", shape=c, trainable=False, init="zeros"),
            WeightInfo(suffix="moving_variance", shape=c, trainable=False, init="ones"),
        ]


class Dropout(_Layer):
    """Zero a `rate` fraction of values while training, scaling the rest by 1/(1-rate)."""

    type: Literal["dropout"] = "dropout"
    rate: float = Field(ge=0.0, lt=1.0)


class Flatten(_Layer):
    """Flatten to 1-D in channels-last (H, W, C) order."""

    type: Literal["flatten"] = "flatten"

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class Activation(_Layer):
    """Apply an activation function alone."""

    type: Literal["activation"] = "activation"
    activation: ActivationName


Layer = Annotated[
    Dense
    | Conv2D
    | DepthwiseConv2D
    | MaxPool2D
    | AvgPool2D
    | GlobalAvgPool2D
    | BatchNorm
    | Dropout
    | Flatten
    | Activation
    | TokenEmbedding
    | TransformerBlock
    | LayerNorm
    | TiedOutput,
    Field(discriminator="type"),
]


def final_activation(layer: _Layer) -> ActivationName:
    """The activation a layer applies last ("linear" for layers without one)."""
    if isinstance(layer, TiedOutput):
        return "softmax"  # logits over the vocabulary
    act: ActivationName = getattr(layer, "activation", "linear")
    return act


class ModelSpec(BaseModel):
    """A portable model: per-sample input shape, a stack of layers and a loss."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["disco.model/1"] = FORMAT
    input_shape: tuple[PositiveInt, ...]
    layers: tuple[Layer, ...]
    loss: LossName
    description: str = ""

    @field_validator("input_shape")
    @classmethod
    def _input_rank(cls, shape: Shape) -> Shape:
        if len(shape) not in (1, 3):
            raise ValueError(
                "input_shape must be [features], [context] (token ids, read by a "
                f"token_embedding first layer) or [height, width, channels], got {list(shape)}"
            )
        return shape

    @field_validator("layers")
    @classmethod
    def _named(cls, layers: tuple[_Layer, ...]) -> tuple[_Layer, ...]:
        if not layers:
            raise ValueError("a model needs at least one layer")
        counts: dict[str, int] = {}
        named: list[_Layer] = []
        for layer in layers:
            kind = str(getattr(layer, "type"))  # noqa: B009 - every concrete layer has one
            counts[kind] = counts.get(kind, 0) + 1
            if layer.name is None:
                layer = layer.model_copy(update={"name": f"{kind}_{counts[kind]}"})
            named.append(layer)
        seen: set[str] = set()
        for layer in named:
            if layer.name in seen:
                raise ValueError(f"duplicate layer name {layer.name!r}; layer names must be unique")
            seen.add(str(layer.name))
        return tuple(named)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        self._check_tokens()
        self.layer_shapes()
        self._check_loss()
        return self

    def _check_tokens(self) -> None:
        """Token ids are read by a first token_embedding only; tied_output ends such a model."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, TokenEmbedding) and i != 0:
                raise ValueError(
                    f"layer {layer.name!r}: token_embedding must be the first layer "
                    "(it reads the token ids)"
                )
            if isinstance(layer, TiedOutput):
                if i != len(self.layers) - 1:
                    raise ValueError(f"layer {layer.name!r}: tied_output must be the last layer")
                if not self.takes_tokens:
                    raise ValueError(
                        f"layer {layer.name!r}: tied_output reuses the token matrix of a "
                        "token_embedding first layer, and this model has none"
                    )
        if self.takes_tokens != (self.loss == "next_token_crossentropy"):
            raise ValueError(
                "loss 'next_token_crossentropy' goes with models that read token ids "
                "(a token_embedding first layer and a tied_output last layer), and only with them"
            )

    @property
    def takes_tokens(self) -> bool:
        """True when a sample is ``input_shape[0]`` integer token ids (a language model)."""
        return isinstance(self.layers[0], TokenEmbedding)

    def _check_loss(self) -> None:
        last = self.layers[-1]
        act, out = final_activation(last), self.output_shape
        where = f"the last layer {last.name!r} has activation {act!r} and output shape {list(out)}"
        if self.loss == "categorical_crossentropy":
            if act != "softmax" or len(out) != 1 or out[0] < 2:
                raise ValueError(
                    "loss 'categorical_crossentropy' needs a last layer with softmax activation "
                    f"and a 1-D output of at least 2 classes; {where}"
                )
        elif self.loss == "binary_crossentropy":
            if act != "sigmoid" or out != (1,):
                raise ValueError(
                    "loss 'binary_crossentropy' needs a last layer with sigmoid activation and "
                    f"1 unit; {where}"
                )
        elif self.loss == "next_token_crossentropy" and not isinstance(last, TiedOutput):
            raise ValueError(
                f"loss 'next_token_crossentropy' needs a tied_output last layer; {where}"
            )

    # -- derived facts, computed from the spec alone ------------------------------------------
    def layer_shapes(self) -> list[Shape]:
        """Per-sample output shape of every layer, in order (ValueError if a layer cannot fit)."""
        shapes: list[Shape] = []
        shape: Shape = self.input_shape
        for layer in self.layers:
            try:
                shape = layer.output_shape(shape)
                if isinstance(layer, TiedOutput) and isinstance(self.layers[0], TokenEmbedding):
                    embedding = self.layers[0]
                    if shape[1] != embedding.units:
                        raise ValueError(
                            f"tied_output needs inputs of the embedding's width "
                            f"{embedding.units}, got {shape[1]}"
                        )
                    shape = (shape[0], embedding.vocab_size)
            except ValueError as exc:
                raise ValueError(f"layer {layer.name!r}: {exc}") from None
            shapes.append(shape)
        return shapes

    def layer_input_shapes(self) -> list[Shape]:
        """Per-sample input shape of every layer, in order."""
        return [self.input_shape, *self.layer_shapes()[:-1]]

    @property
    def output_shape(self) -> Shape:
        """Per-sample output shape of the model."""
        return self.layer_shapes()[-1]

    @property
    def num_classes(self) -> int | None:
        """Number of classes for classification losses (2 for binary), None for regression."""
        if self.loss == "categorical_crossentropy":
            return self.output_shape[0]
        if self.loss == "binary_crossentropy":
            return 2
        if self.loss == "next_token_crossentropy":
            return self.output_shape[-1]  # the vocabulary
        return None

    @property
    def final_activation(self) -> ActivationName:
        """The activation of the last layer, applied after the logits."""
        return final_activation(self.layers[-1])

    def weight_infos(self) -> list[tuple[str, WeightInfo]]:
        """(canonical name, info) of every weight in canonical (TF.js ``getWeights``) order."""
        trainable: list[tuple[str, WeightInfo]] = []
        frozen: list[tuple[str, WeightInfo]] = []
        for layer, shape in zip(self.layers, self.layer_input_shapes(), strict=True):
            for info in layer.weights(shape):
                (trainable if info.trainable else frozen).append(
                    (f"{layer.name}.{info.suffix}", info)
                )
        return trainable + frozen

    def weight_shapes(self, trainable: bool | None = None) -> dict[str, Shape]:
        """Canonical name -> shape, in canonical order; filter by `trainable` when given."""
        return {
            name: info.shape
            for name, info in self.weight_infos()
            if trainable is None or info.trainable == trainable
        }

    @property
    def num_parameters(self) -> int:
        """Total number of weight values, moving statistics included."""
        return sum(math.prod(s) for s in self.weight_shapes().values())

    # -- (de)serialisation ----------------------------------------------------------------------
    @classmethod
    def parse(cls, data: str | bytes | Mapping[str, Any]) -> ModelSpec:
        """Validate a JSON text or a decoded document, raising one `ModelError` on any problem."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ModelError(f"invalid model: {_summary(exc)}") from exc

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of the format (for the web app and the TypeScript mirror)."""
        return cls.model_json_schema()


def _summary(exc: ValidationError) -> str:
    """One line per pydantic error: ``layers.2.conv2d.filters: Input should be ...``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
