"""The PyTorch realisation: canonical weights, TF-equivalent numerics, losses and training."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import torch

from disco.errors import ModelError, WeightsError
from disco.models import (
    ARCHITECTURES,
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ModelSpec,
    TorchModel,
    build_torch_model,
    init_weights,
)
from disco.models.architectures import cifar10_cnn, mnist_cnn
from disco.weights import Weights

A = npt.NDArray[np.float64]


# -- a channels-last numpy reference of TF semantics ----------------------------------------------
def pad_same(x: A, window: tuple[int, int], strides: tuple[int, int], value: float = 0.0) -> A:
    """TF 'same' padding of (B, H, W, C): extra cell on the bottom/right."""
    pads = [(0, 0)]
    for n, k, s in zip(x.shape[1:3], window, strides, strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    pads.append((0, 0))
    return np.pad(x, pads, constant_values=value)


def windows(x: A, window: tuple[int, int], strides: tuple[int, int]) -> A:
    """(B, H, W, C) -> (B, OH, OW, kh, kw, C) sliding windows, valid."""
    kh, kw = window
    oh, ow = (x.shape[1] - kh) // strides[0] + 1, (x.shape[2] - kw) // strides[1] + 1
    out = np.empty((x.shape[0], oh, ow, kh, kw, x.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = x[:, i : i + strides[0] * oh : strides[0],
                                        j : j + strides[1] * ow : strides[1], :]  # fmt: skip
    return out


def np_conv2d(x: A, kernel: A, bias: A, strides: tuple[int, int], padding: str) -> A:
    """Conv2D, kernel [kh, kw, in, out]."""
    window = kernel.shape[:2]
    if padding == "same":
        x = pad_same(x, window, strides)
    return np.einsum("bhwijc,ijco->bhwo", windows(x, window, strides), kernel) + bias


def np_depthwise(x: A, kernel: A, bias: A, strides: tuple[int, int], padding: str) -> A:
    """DepthwiseConv2D, kernel [kh, kw, in, mult], output channel c*mult + m."""
    window = kernel.shape[:2]
    if padding == "same":
        x = pad_same(x, window, strides)
    out = np.einsum("bhwijc,ijcm->bhwcm", windows(x, window, strides), kernel)
    return out.reshape(*out.shape[:3], -1) + bias


def np_max_pool(x: A, window: tuple[int, int], strides: tuple[int, int], padding: str) -> A:
    if padding == "same":
        x = pad_same(x, window, strides, value=-np.inf)
    return windows(x, window, strides).max(axis=(3, 4))


def np_avg_pool(x: A, window: tuple[int, int], strides: tuple[int, int], padding: str) -> A:
    """Average over real cells only (TF excludes padding from the count)."""
    ones = np.ones_like(x)
    if padding == "same":
        x, ones = pad_same(x, window, strides), pad_same(ones, window, strides)
    total = windows(x, window, strides).sum(axis=(3, 4))
    return total / windows(ones, window, strides).sum(axis=(3, 4))


def relu(x: A) -> A:
    return np.maximum(x, 0.0)


def softmax(x: A) -> A:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_weights(spec: ModelSpec, seed: int) -> Weights:
    """Weights of the spec's shapes with values far from any default (variances kept positive)."""
    rng = np.random.default_rng(seed)
    return Weights(
        (n, np.abs(rng.normal(1.0, 0.5, s)) if n.endswith("variance") else rng.normal(0, 0.5, s))
        for n, s in spec.weight_shapes().items()
    )


def logits_of(model: TorchModel, x: A) -> A:
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(x, dtype=torch.float32)).double().numpy()


# -- canonical weights ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_torch_weights_match_the_spec_shapes_and_init(name: str) -> None:
    spec = ARCHITECTURES[name]()

    model = build_torch_model(spec, seed=5)
    w = model.get_weights()

    assert list(w.shapes.items()) == list(spec.weight_shapes().items())
    assert w == init_weights(spec, 5)
    dtype = torch.long if spec.takes_tokens else torch.float32
    zeros = torch.zeros(2, *spec.input_shape, dtype=dtype)
    assert tuple(model(zeros).shape) == (2, *spec.output_shape)


@pytest.mark.parametrize("build", [mnist_cnn, cifar10_cnn])
def test_get_set_weights_round_trip_is_bit_exact(build: type) -> None:
    spec = build()
    model = TorchModel(spec)
    w = random_weights(spec, 1)

    model.set_weights(w)
    back = model.get_weights()

    assert back == w
    assert back.digest() == w.digest()


def test_set_weights_matches_by_name_not_order() -> None:
    spec = cifar10_cnn()
    model = TorchModel(spec)
    w = random_weights(spec, 2)

    model.set_weights(Weights(reversed(list(w.items()))))

    assert model.get_weights() == w


def test_get_weights_is_a_copy() -> None:
    model = TorchModel.from_spec(mnist_cnn(), seed=0)
    before = model.get_weights()

    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    assert before == init_weights(mnist_cnn(), 0)


def _broken(w: Weights, name: str, value: npt.ArrayLike) -> Weights:
    return Weights((n, value if n == name else a) for n, a in w.items())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: _broken(w, "dense_1.kernel", np.zeros((3, 3))),
         r"tensor 'dense_1.kernel' has shape \(3, 3\), the model expects \(1600, 32\)"),
        (lambda w: Weights((n, a) for n, a in w.items() if n != "conv2d_2.bias"),
         r"missing \['conv2d_2.bias'\], unexpected none"),
        (lambda w: Weights([*w.items(), ("extra.bias", np.zeros(2))]),
         r"missing none, unexpected \['extra.bias'\]"),
        (lambda w: _broken(w, "dense_2.bias", np.full(10, np.nan)),
         "tensor 'dense_2.bias' contains NaN or infinite values"),
        (lambda w: _broken(w, "conv2d_1.kernel", np.full((5, 5, 1, 8), np.inf)),
         "tensor 'conv2d_1.kernel' contains NaN or infinite values"),
    ],
)  # fmt: skip
def test_set_weights_rejects_bad_weights_and_leaves_the_model_unchanged(
    mutate: object, message: str
) -> None:
    spec = mnist_cnn()
    model = TorchModel.from_spec(spec, seed=0)
    before = model.get_weights().digest()
    bad = mutate(random_weights(spec, 3))  # type: ignore[operator]

    with pytest.raises(WeightsError, match=message):
        model.set_weights(bad)

    assert model.get_weights().digest() == before


# -- numerics equal to a channels-last TF reference -----------------------------------------------
def test_conv_pool_flatten_dense_matches_channels_last_reference() -> None:
    spec = ModelSpec(
        input_shape=(7, 6, 2),
        layers=(
            Conv2D(filters=3, kernel_size=(3, 2), activation="relu"),
            MaxPool2D(pool_size=2),
            Flatten(),
            Dense(units=4, activation="softmax"),
        ),
        loss="categorical_crossentropy",
    )
    w = random_weights(spec, 4)
    model = TorchModel(spec)
    model.set_weights(w)
    x = np.random.default_rng(0).normal(size=(3, 7, 6, 2))

    h = relu(np_conv2d(x, w["conv2d_1.kernel"], w["conv2d_1.bias"], (1, 1), "valid"))
    h = np_max_pool(h, (2, 2), (2, 2), "valid").reshape(3, -1)  # (B, H*W*C) channels-last
    expected = h @ w["dense_1.kernel"] + w["dense_1.bias"]

    np.testing.assert_allclose(logits_of(model, x), expected, rtol=1e-5, atol=1e-5)
    probs = model.predict_proba(x).numpy()
    np.testing.assert_allclose(probs, softmax(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(6, 6), (7, 5), (8, 9)])
def test_same_padding_with_stride_two_matches_tf(size: tuple[int, int]) -> None:
    spec = ModelSpec(
        input_shape=(*size, 2),
        layers=(
            Conv2D(filters=3, kernel_size=3, strides=2, padding="same", activation="tanh"),
            MaxPool2D(pool_size=3, strides=2, padding="same"),
            AvgPool2D(pool_size=2, strides=1, padding="same"),
            Flatten(),
            Dense(units=2),
        ),
        loss="mse",
    )
    w = random_weights(spec, 5)
    model = TorchModel(spec)
    model.set_weights(w)
    x = np.random.default_rng(1).normal(size=(2, *size, 2))

    h = np.tanh(np_conv2d(x, w["conv2d_1.kernel"], w["conv2d_1.bias"], (2, 2), "same"))
    h = np_max_pool(h, (3, 3), (2, 2), "same")
    h = np_avg_pool(h, (2, 2), (1, 1), "same").reshape(2, -1)
    expected = h @ w["dense_1.kernel"] + w["dense_1.bias"]

    np.testing.assert_allclose(logits_of(model, x), expected, rtol=1e-5, atol=1e-5)


def test_same_padding_puts_the_extra_cell_at_the_end() -> None:
    # hand-computed TF result: [1, 2, 3, 4] with kernel [1, 1, 1], stride 2, padded to [1..4, 0]
    spec = ModelSpec(
        input_shape=(1, 4, 1),
        layers=(Conv2D(filters=1, kernel_size=(1, 3), strides=2, padding="same", use_bias=False),),
        loss="mse",
    )
    model = TorchModel(spec)
    model.set_weights(Weights({"conv2d_1.kernel": np.ones((1, 3, 1, 1))}))

    out = logits_of(model, np.arange(1.0, 5.0).reshape(1, 1, 4, 1))

    assert out.ravel().tolist() == [6.0, 7.0]


def test_depthwise_and_batch_norm_inference_match_reference() -> None:
    spec = ModelSpec(
        input_shape=(6, 5, 3),
        layers=(
            DepthwiseConv2D(kernel_size=3, strides=2, padding="same", depth_multiplier=2),
            BatchNorm(epsilon=0.01),
            Activation(activation="relu6"),
            GlobalAvgPool2D(),
            Dense(units=3, activation="softmax"),
        ),
        loss="categorical_crossentropy",
    )
    w = random_weights(spec, 6)
    model = TorchModel(spec)
    model.set_weights(w)
    x = np.random.default_rng(2).normal(size=(4, 6, 5, 3)) * 3

    h = np_depthwise(
        x, w["depthwise_conv2d_1.depthwise_kernel"], w["depthwise_conv2d_1.bias"], (2, 2), "same"
    )
    mean, var = w["batch_norm_1.moving_mean"], w["batch_norm_1.moving_variance"]
    h = (h - mean) / np.sqrt(var + 0.01) * w["batch_norm_1.gamma"] + w["batch_norm_1.beta"]
    h = np.clip(h, 0.0, 6.0).mean(axis=(1, 2))
    expected = h @ w["dense_1.kernel"] + w["dense_1.bias"]

    np.testing.assert_allclose(logits_of(model, x), expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_training_uses_keras_momentum_and_biased_variance() -> None:
    spec = ModelSpec(input_shape=(2,), layers=(BatchNorm(momentum=0.9),), loss="mse")
    model = TorchModel.from_spec(spec)
    x = np.array([[1.0, 10.0], [2.0, 20.0], [6.0, 0.0]])

    model.train()
    out = model(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    w = model.get_weights()

    np.testing.assert_allclose(w["batch_norm_1.moving_mean"], 0.1 * x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(w["batch_norm_1.moving_variance"], 0.9 + 0.1 * x.var(0), rtol=1e-6)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# -- losses ---------------------------------------------------------------------------------------
def test_categorical_loss_equals_crossentropy_of_softmax() -> None:
    model = TorchModel.from_spec(mnist_cnn())
    logits = torch.tensor([[2.0, -1.0, 0.5] + [0.0] * 7, [0.0] * 9 + [3.0]])
    y = torch.tensor([2, 9])

    loss = model.loss(logits, y).item()

    p = softmax(logits.double().numpy())
    assert loss == pytest.approx(-np.log(p[[0, 1], [2, 9]]).mean(), rel=1e-6)


def test_binary_loss_equals_bce_of_sigmoid() -> None:
    model = TorchModel.from_spec(ARCHITECTURES["titanic_mlp"]())
    logits = torch.tensor([[1.5], [-0.3], [4.0]])
    y = torch.tensor([1.0, 0.0, 0.0])

    loss = model.loss(logits, y).item()

    p = 1 / (1 + np.exp(-logits.double().numpy().ravel()))
    keras = -(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p)).mean()
    assert loss == pytest.approx(keras, rel=1e-6)


def test_mse_loss_applies_the_final_activation() -> None:
    spec = ModelSpec(input_shape=(3,), layers=(Dense(units=2, activation="sigmoid"),), loss="mse")
    model = TorchModel.from_spec(spec)
    logits = torch.tensor([[0.0, 2.0]])

    loss = model.loss(logits, torch.tensor([[1.0, 0.0]])).item()

    assert loss == pytest.approx(((0.5 - 1.0) ** 2 + (1 / (1 + math.exp(-2.0))) ** 2) / 2)


# -- behaviour ------------------------------------------------------------------------------------
def test_forward_rejects_a_wrong_sample_shape() -> None:
    model = TorchModel.from_spec(mnist_cnn())

    with pytest.raises(ModelError, match=r"per-sample shape \[1, 28, 28\], the model expects"):
        model(torch.zeros(2, 1, 28, 28))


def test_predict_proba_restores_training_mode() -> None:
    model = TorchModel.from_spec(mnist_cnn())
    model.train()

    probs = model.predict_proba(np.zeros((3, 28, 28, 1)))

    assert model.training
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), np.ones(3), rtol=1e-6)


def test_mnist_cnn_learns_separable_synthetic_digits() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    prototypes = rng.normal(size=(10, 28, 28, 1))
    y = rng.integers(0, 10, size=512)
    x = torch.tensor(prototypes[y] + rng.normal(scale=1.0, size=(512, 28, 28, 1)))
    labels = torch.tensor(y)
    model = TorchModel.from_spec(mnist_cnn(), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    losses = []
    for step in range(120):
        idx = slice((step * 32) % 512, (step * 32) % 512 + 32)
        loss = model.loss(model(x[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())

    assert np.mean(losses[:5]) > 1.8
    assert np.mean(losses[-10:]) < 0.5
    accuracy = (model.predict_proba(x[:256]).argmax(dim=1) == labels[:256]).float().mean()
    assert accuracy > 0.9
