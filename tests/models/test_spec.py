"""The portable model format: validation, naming, shapes, JSON and initial weights."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from disco.errors import ModelError
from disco.models import (
    ARCHITECTURES,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ModelSpec,
    get_architecture,
    init_weights,
)
from disco.models.architectures import cifar10_cnn, mnist_cnn

BRIEF_DOC: dict[str, Any] = {
    "format": "disco.model/1",
    "input_shape": [28, 28, 1],
    "layers": [
        {
            "type": "conv2d",
            "name": "conv2d_1",
            "filters": 8,
            "kernel_size": [5, 5],
            "strides": [1, 1],
            "padding": "valid",
            "activation": "relu",
            "use_bias": True,
        },
        {"type": "max_pool2d", "pool_size": [2, 2], "strides": None},
        {"type": "dropout", "rate": 0.25},
        {"type": "flatten"},
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "categorical_crossentropy",
}


def doc(layers: list[dict[str, Any]], input_shape: list[int], loss: str) -> dict[str, Any]:
    """A model document with the given parts."""
    return {"input_shape": input_shape, "layers": layers, "loss": loss}


SOFTMAX3 = {"type": "dense", "units": 3, "activation": "softmax"}


# -- parsing and naming ---------------------------------------------------------------------------
def test_parse_document_fills_canonical_names_and_shapes() -> None:
    spec = ModelSpec.parse(json.dumps(BRIEF_DOC))

    names = [layer.name for layer in spec.layers]
    assert names == ["conv2d_1", "max_pool2d_1", "dropout_1", "flatten_1", "dense_1", "dense_2"]
    assert spec.layer_shapes() == [(24, 24, 8), (12, 12, 8), (12, 12, 8), (1152,), (32,), (10,)]
    assert spec.output_shape == (10,)
    assert spec.num_classes == 10
    assert spec.final_activation == "softmax"


def test_names_count_per_type_and_explicit_names_are_kept() -> None:
    spec = ModelSpec(
        input_shape=(4,),
        layers=(
            Dense(units=3),
            Dense(units=3, name="hidden"),
            Dense(units=1, activation="sigmoid"),
        ),
        loss="binary_crossentropy",
    )

    assert [layer.name for layer in spec.layers] == ["dense_1", "hidden", "dense_3"]
    assert spec.num_classes == 2


def test_json_round_trip_is_identity_for_every_architecture() -> None:
    for name, build in ARCHITECTURES.items():
        spec = build()
        text = spec.model_dump_json()

        again = ModelSpec.model_validate_json(text)

        assert again == spec, name
        assert again.model_dump_json() == text, name
        assert json.loads(text)["format"] == "disco.model/1"


def test_int_kernel_size_means_square() -> None:
    spec = ModelSpec.parse(
        doc(
            [{"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "flatten"}, SOFTMAX3],
            [5, 5, 1],
            "categorical_crossentropy",
        )
    )

    assert spec.weight_shapes()["conv2d_1.kernel"] == (3, 3, 1, 2)


def test_json_schema_is_discriminated_on_type() -> None:
    schema = ModelSpec.json_schema()

    layer_schema = schema["properties"]["layers"]["items"]
    assert layer_schema["discriminator"]["propertyName"] == "type"
    assert set(layer_schema["discriminator"]["mapping"]) == {
        "dense", "conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d",
        "global_avg_pool2d", "batch_norm", "dropout", "flatten", "activation",
        "token_embedding", "transformer_block", "layer_norm", "tied_output",
    }  # fmt: skip


# -- validation errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc([{"type": "lstm", "units": 3}], [4], "mse"), "Input tag 'lstm'"),
        (
            doc([{"type": "dense", "units": 3, "activation": "softmax"}], [8, 8, 1], "mse"),
            "layer 'dense_1': dense needs a 1-D input but gets shape [8, 8, 1]; add a flatten",
        ),
        (
            doc([{"type": "conv2d", "filters": 2, "kernel_size": 3}], [10], "mse"),
            "layer 'conv2d_1': conv2d needs an (height, width, channels) input",
        ),
        (
            doc([{"type": "conv2d", "filters": 2, "kernel_size": [5, 3]}], [4, 9, 1], "mse"),
            "conv2d window 5x3 is larger than its 4x9 input",
        ),
        (
            doc([{"type": "max_pool2d", "pool_size": 3}], [2, 2, 1], "mse"),
            "max_pool2d window 3x3 is larger than its 2x2 input",
        ),
        (
            doc([{"type": "flatten", "name": "x"}, {**SOFTMAX3, "name": "x"}], [4], "mse"),
            "duplicate layer name 'x'",
        ),
        (
            doc([{"type": "dense", "units": 3, "activation": "sigmoid"}], [4],
                "categorical_crossentropy"),
            "loss 'categorical_crossentropy' needs a last layer with softmax activation",
        ),
        (
            doc([{"type": "dense", "units": 1, "activation": "softmax"}], [4],
                "categorical_crossentropy"),
            "at least 2 classes",
        ),
        (
            doc([SOFTMAX3], [4], "binary_crossentropy"),
            "loss 'binary_crossentropy' needs a last layer with sigmoid activation and 1 unit",
        ),
        (
            doc([{**SOFTMAX3, "activation": "sigmoid"}, {"type": "dropout", "rate": 0.5}], [4],
                "binary_crossentropy"),
            "the last layer 'dropout_1' has activation 'linear'",
        ),
        (doc([{**SOFTMAX3, "kernel_init": "he"}], [4], "mse"), "Extra inputs are not permitted"),
        (doc([{**SOFTMAX3, "name": "Dense-1"}], [4], "mse"), "String should match pattern"),
        (doc([{"type": "dropout", "rate": 1.0}], [4], "mse"), "less than 1"),
        (doc([SOFTMAX3], [4, 4], "mse"), "input_shape must be [features], [context]"),
        (doc([], [4], "mse"), "a model needs at least one layer"),
        (doc([SOFTMAX3], [4], "hinge"), "loss"),
        ({**doc([SOFTMAX3], [4], "mse"), "format": "disco.model/2"}, "format"),
    ],
)  # fmt: skip
def test_parse_rejects_invalid_models_with_a_clear_model_error(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelError, match="invalid model") as info:
        ModelSpec.parse(document)

    assert message in str(info.value)


def test_direct_construction_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match="add a flatten or global_avg_pool2d layer"):
        ModelSpec(input_shape=(8, 8, 3), layers=(Dense(units=2),), loss="mse")


def test_layers_are_frozen() -> None:
    layer = Dense(units=3)

    with pytest.raises(ValidationError):
        layer.units = 4  # type: ignore[misc]


# -- shapes and weights ---------------------------------------------------------------------------
def test_same_padding_and_strides_give_ceil_sizes() -> None:
    spec = ModelSpec(
        input_shape=(7, 6, 2),
        layers=(
            Conv2D(filters=4, kernel_size=3, strides=2, padding="same"),
            MaxPool2D(pool_size=3, strides=(1, 2), padding="same"),
            Conv2D(filters=5, kernel_size=2, strides=2),
        ),
        loss="mse",
    )

    assert spec.layer_shapes() == [(4, 3, 4), (4, 2, 4), (2, 1, 5)]


def test_weight_shapes_use_tf_layouts_in_canonical_order() -> None:
    spec = mnist_cnn()

    assert list(spec.weight_shapes().items()) == [
        ("conv2d_1.kernel", (5, 5, 1, 8)),
        ("conv2d_1.bias", (8,)),
        ("conv2d_2.kernel", (5, 5, 8, 16)),
        ("conv2d_2.bias", (16,)),
        ("dense_1.kernel", (10 * 10 * 16, 32)),
        ("dense_1.bias", (32,)),
        ("dense_2.kernel", (32, 10)),
        ("dense_2.bias", (10,)),
    ]


def test_moving_statistics_come_after_all_trainable_weights() -> None:
    spec = ModelSpec(
        input_shape=(4,),
        layers=(Dense(units=3, use_bias=False), BatchNorm(), Dense(units=1, activation="sigmoid")),
        loss="binary_crossentropy",
    )

    assert list(spec.weight_shapes()) == [
        "dense_1.kernel",
        "batch_norm_1.gamma",
        "batch_norm_1.beta",
        "dense_2.kernel",
        "dense_2.bias",
        "batch_norm_1.moving_mean",
        "batch_norm_1.moving_variance",
    ]
    assert list(spec.weight_shapes(trainable=False)) == [
        "batch_norm_1.moving_mean",
        "batch_norm_1.moving_variance",
    ]
    assert spec.num_parameters == 12 + 3 + 3 + 3 + 1 + 3 + 3


def test_depthwise_weights_and_channels() -> None:
    spec = ModelSpec.parse(
        doc(
            [
                {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2},
                {"type": "global_avg_pool2d"},
                SOFTMAX3,
            ],
            [5, 5, 3],
            "categorical_crossentropy",
        )
    )

    assert spec.layer_shapes()[0] == (3, 3, 6)
    assert spec.weight_shapes()["depthwise_conv2d_1.depthwise_kernel"] == (3, 3, 3, 2)
    assert spec.weight_shapes()["depthwise_conv2d_1.bias"] == (6,)


# -- initial weights ------------------------------------------------------------------------------
def test_init_weights_is_deterministic_and_seed_dependent() -> None:
    spec = cifar10_cnn()

    first, again, other = init_weights(spec, 7), init_weights(spec, 7), init_weights(spec, 8)

    assert first.digest() == again.digest()
    assert not np.array_equal(first["dense_1.kernel"], other["dense_1.kernel"])
    assert list(first.shapes.items()) == list(spec.weight_shapes().items())


def test_init_weights_follows_keras_initialisers() -> None:
    spec = cifar10_cnn()

    w = init_weights(spec, 0)

    for name, arr in w.items():
        suffix = name.split(".")[1]
        if suffix in ("kernel", "depthwise_kernel"):
            receptive = int(np.prod(arr.shape[:-2]))
            fan_in, fan_out = arr.shape[-2] * receptive, arr.shape[-1] * receptive
            limit = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
            assert np.abs(arr).max() <= limit, name
            assert np.abs(arr).max() > 0.7 * limit, name  # uniform over the whole range
            assert abs(float(arr.mean())) < 0.25 * limit, name
        elif suffix in ("gamma", "moving_variance"):
            assert np.all(arr == 1.0), name
        else:
            assert np.all(arr == 0.0), name


def test_init_of_a_layer_does_not_depend_on_the_other_layers() -> None:
    small = ModelSpec(input_shape=(4,), layers=(Dense(units=3),), loss="mse")
    grown = ModelSpec(input_shape=(4,), layers=(Dense(units=3), Dense(units=2)), loss="mse")

    assert np.array_equal(
        init_weights(small, 3)["dense_1.kernel"], init_weights(grown, 3)["dense_1.kernel"]
    )


def test_init_weights_rejects_a_negative_seed() -> None:
    with pytest.raises(ModelError, match="non-negative"):
        init_weights(mnist_cnn(), -1)


# -- architectures --------------------------------------------------------------------------------
def test_architectures_registry() -> None:
    assert get_architecture("titanic_mlp", n_inputs=7).input_shape == (7,)
    assert get_architecture("mnist_cnn", classes=5).num_classes == 5
    assert "random" in get_architecture("cifar10_cnn").description

    with pytest.raises(ModelError, match="unknown architecture 'resnet'; known: "):
        get_architecture("resnet")
    with pytest.raises(ModelError, match="unexpected keyword argument"):
        get_architecture("mnist_cnn", depth=3)
    with pytest.raises(ModelError, match="larger than its"):
        get_architecture("mnist_cnn", h=8, w=8)


def test_flatten_of_a_flat_input_is_identity() -> None:
    spec = ModelSpec(input_shape=(6,), layers=(Flatten(), Dense(units=2)), loss="mse")

    assert spec.layer_shapes() == [(6,), (2,)]
    assert spec.num_classes is None
