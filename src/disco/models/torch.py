"""PyTorch realisation of a portable `ModelSpec`, numerically equivalent to TF.js.

Inputs arrive channels-last, (B, H, W, C) or (B, F), as in TF.js, or as token ids (B, T) for
a model with a token_embedding first layer (its GPT layers: `disco.models.gpt_torch`; T may be
shorter than the context, for generation); convolutions run on NCHW
inside and `flatten` goes back to channels-last first, so canonical dense kernels mean the same
in both engines. `same` padding and pooling follow TF (extra padding on the bottom/right).
`forward` returns logits (the last layer before its activation); `loss` fuses the activation
with the loss for numerical stability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disco.errors import ModelError, WeightsError
from disco.models import gpt_torch
from disco.models.init import init_weights
from disco.models.spec import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LayerNorm,
    MaxPool2D,
    ModelSpec,
    Shape,
    TiedOutput,
    TokenEmbedding,
    TransformerBlock,
)
from disco.weights import Weights

__all__ = ["TorchModel", "build_torch_model"]

_Array = npt.NDArray[np.float32]
_Pads = tuple[int, int, int, int]  # F.pad order for NCHW: (left, right, top, bottom)
_Convert = Callable[[_Array], _Array]
_Slot = tuple[nn.Module, str, _Convert, _Convert]  # module, attribute, to/from canonical layout


def _same_pads(hw: tuple[int, int], window: tuple[int, int], strides: tuple[int, int]) -> _Pads:
    """TF 'same' padding: the total split in two, the extra cell on the bottom/right."""
    pads: list[int] = []
    for n, k, s in zip(hw, window, strides, strict=True):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    top, bottom, left, right = pads
    return (left, right, top, bottom)


def activate(x: Tensor, name: str, channel_dim: int = -1) -> Tensor:
    """Apply a portable activation; softmax runs over `channel_dim`."""
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "relu6":
        return F.relu6(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "softmax":
        return torch.softmax(x, dim=channel_dim)
    if name == "gelu":
        return F.gelu(x)
    raise ModelError(f"unknown activation {name!r}")


class _Conv(nn.Module):
    """Conv2D or DepthwiseConv2D on NCHW with TF padding."""

    def __init__(self, conv: nn.Conv2d, pads: _Pads) -> None:
        super().__init__()
        self.conv = conv
        self.pads = pads  # asymmetric 'same' padding done by hand; symmetric lives in `conv`

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C', H', W')
        if any(self.pads):
            x = F.pad(x, self.pads)
        return self.conv(x)  # type: ignore[no-any-return]


def _conv(layer: Conv2D | DepthwiseConv2D, shape: Shape) -> _Conv:
    h, w, c = shape
    pads = (
        _same_pads((h, w), layer.kernel_size, layer.strides)
        if layer.padding == "same"
        else (0,) * 4
    )
    left, right, top, bottom = pads
    inner: tuple[int, int] = (0, 0)
    if left == right and top == bottom:
        inner, pads = (top, left), (0, 0, 0, 0)
    if isinstance(layer, Conv2D):
        out, groups = layer.filters, 1
    else:
        out, groups = c * layer.depth_multiplier, c
    conv = nn.Conv2d(
        c, out, layer.kernel_size, stride=layer.strides, padding=inner, groups=groups,
        bias=layer.use_bias,
    )  # fmt: skip
    return _Conv(conv, pads)


class _Pool(nn.Module):
    """Max or average pooling on NCHW with TF padding (padded cells never counted)."""

    divisor: Tensor

    def __init__(self, layer: MaxPool2D | AvgPool2D, shape: Shape) -> None:
        super().__init__()
        self.is_max = isinstance(layer, MaxPool2D)
        self.window, self.step = layer.pool_size, layer.step
        hw = (shape[0], shape[1])
        same = layer.padding == "same"
        self.pads = _same_pads(hw, self.window, self.step) if same else (0, 0, 0, 0)
        # average over real cells only: the pooled count of ones over the padded plane
        ones = F.pad(torch.ones(1, 1, *hw), self.pads)
        self.register_buffer(
            "divisor", F.avg_pool2d(ones, self.window, self.step), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H', W')
        if self.is_max:
            if any(self.pads):
                x = F.pad(x, self.pads, value=float("-inf"))
            return F.max_pool2d(x, self.window, self.step)
        if not any(self.pads):
            return F.avg_pool2d(x, self.window, self.step)
        return F.avg_pool2d(F.pad(x, self.pads), self.window, self.step) / self.divisor


class _BatchNorm(nn.Module):
    """Keras/TF.js batch norm: biased batch variance; moving = m*moving + (1-m)*batch."""

    moving_mean: Tensor
    moving_variance: Tensor

    def __init__(self, channels: int, momentum: float, epsilon: float) -> None:
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:  # (B, C) or (B, C, H, W)
        if not self.training:
            return F.batch_norm(
                x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                training=False, eps=self.epsilon,
            )  # fmt: skip
        with torch.no_grad():
            dims = [0] if x.dim() == 2 else [0, 2, 3]
            var, mean = torch.var_mean(x, dim=dims, correction=0)  # (C,), (C,)
            self.moving_mean.lerp_(mean, 1.0 - self.momentum)
            self.moving_variance.lerp_(var, 1.0 - self.momentum)
        # normalises with the biased batch variance, as Keras does
        return F.batch_norm(x, None, None, self.gamma, self.beta, training=True, eps=self.epsilon)


class _GlobalAvgPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C)
        return x.mean(dim=(2, 3))


class _Flatten(nn.Module):
    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, H*W*C), channels-last order
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


# canonical (TF) layout <-> torch layout, as numpy views; applied once per tensor per call
def _dense_to(a: _Array) -> _Array:
    return a.T  # [out, in] -> [in, out]


def _conv_to(a: _Array) -> _Array:
    return a.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]


def _conv_from(a: _Array) -> _Array:
    return a.transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]


def _same(a: _Array) -> _Array:
    return a


@dataclass(frozen=True)
class _Binding:
    """Where one canonical weight lives in the torch model and how its layout converts."""

    name: str
    module: nn.Module
    attr: str
    to_canonical: _Convert
    from_canonical: _Convert

    def tensor(self) -> Tensor:
        """The live parameter or buffer (looked up each time: `.to()` replaces buffers)."""
        t: Tensor = getattr(self.module, self.attr)
        return t


def _depthwise(c: int, mult: int, kh: int, kw: int) -> tuple[_Convert, _Convert]:
    def to(a: _Array) -> _Array:  # [c*mult, 1, kh, kw] -> [kh, kw, c, mult]
        return a.reshape(c, mult, kh, kw).transpose(2, 3, 0, 1)

    def back(a: _Array) -> _Array:  # [kh, kw, c, mult] -> [c*mult, 1, kh, kw]
        return a.transpose(2, 3, 0, 1).reshape(c * mult, 1, kh, kw)

    return to, back


class TorchModel(nn.Module):
    """A `ModelSpec` as a torch module; build it with `TorchModel.from_spec`."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList()
        self.activations: list[str] = []
        bindings: dict[str, _Binding] = {}
        for layer, shape in zip(spec.layers, spec.layer_input_shapes(), strict=True):
            block: nn.Module
            found: dict[str, _Slot]
            if isinstance(layer, TiedOutput):
                embedding = self.blocks[0]
                assert isinstance(embedding, gpt_torch.Embedding)  # the spec checked it
                block, found = gpt_torch.TiedHead(embedding), {}
            else:
                block, found = self._block(layer, shape)
            self.blocks.append(block)
            self.activations.append(str(getattr(layer, "activation", "linear")))
            for suffix, (module, attr, to, back) in found.items():
                name = f"{layer.name}.{suffix}"
                bindings[name] = _Binding(name, module, attr, to, back)
        self._expected = spec.weight_shapes()
        self._bindings = [bindings[name] for name in self._expected]  # canonical order

    @staticmethod
    def _block(layer: Any, shape: Shape) -> tuple[nn.Module, dict[str, _Slot]]:
        """The torch module of one layer and where its canonical weights live, by suffix."""
        if isinstance(layer, Dense):
            lin = nn.Linear(shape[0], layer.units, bias=layer.use_bias)
            found: dict[str, _Slot] = {"kernel": (lin, "weight", _dense_to, _dense_to)}
            if layer.use_bias:
                found["bias"] = (lin, "bias", _same, _same)
            return lin, found
        if isinstance(layer, Conv2D | DepthwiseConv2D):
            block = _conv(layer, shape)
            if isinstance(layer, Conv2D):
                found = {"kernel": (block.conv, "weight", _conv_to, _conv_from)}
            else:
                to, back = _depthwise(shape[2], layer.depth_multiplier, *layer.kernel_size)
                found = {"depthwise_kernel": (block.conv, "weight", to, back)}
            if layer.use_bias:
                found["bias"] = (block.conv, "bias", _same, _same)
            return block, found
        if isinstance(layer, MaxPool2D | AvgPool2D):
            return _Pool(layer, shape), {}
        if isinstance(layer, BatchNorm):
            bn = _BatchNorm(shape[-1], layer.momentum, layer.epsilon)
            names = ("gamma", "beta", "moving_mean", "moving_variance")
            return bn, {n: (bn, n, _same, _same) for n in names}
        if isinstance(layer, GlobalAvgPool2D):
            return _GlobalAvgPool(), {}
        if isinstance(layer, Dropout):
            return nn.Dropout(layer.rate), {}
        if isinstance(layer, Flatten):
            return _Flatten(), {}
        if isinstance(layer, Activation):
            return nn.Identity(), {}
        if isinstance(layer, TokenEmbedding):
            return gpt_torch.token_embedding(layer, shape)
        if isinstance(layer, TransformerBlock):
            return gpt_torch.transformer_block(layer, shape)
        if isinstance(layer, LayerNorm):
            return gpt_torch.layer_norm(layer, shape)
        raise ModelError(f"no torch realisation for layer {layer!r}")

    @classmethod
    def from_spec(cls, spec: ModelSpec, seed: int = 0) -> TorchModel:
        """Build the model and load `init_weights(spec, seed)`: the deterministic way to start."""
        model = cls(spec)
        model.set_weights(init_weights(spec, seed))
        return model

    # -- computation ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits: the last layer's output before its activation, channels-last.

        A language model takes token ids (B, T), T up to the context, and gives (B, T, V).
        """
        if self.spec.takes_tokens:
            x = self._token_ids(x)
        elif tuple(x.shape[1:]) != self.spec.input_shape:
            raise ModelError(
                f"input batch has per-sample shape {list(x.shape[1:])}, "
                f"the model expects {list(self.spec.input_shape)}"
            )
        else:
            x = x.float()
        if x.dim() == 4:
            x = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        last = len(self.blocks) - 1
        for i, (block, act) in enumerate(zip(self.blocks, self.activations, strict=True)):
            x = block(x)
            if i < last:
                x = activate(x, act, channel_dim=1)
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # back to (B, H, W, C)
        return x

    def _token_ids(self, x: Tensor) -> Tensor:
        context = self.spec.input_shape[0]
        if x.dim() != 2 or not 1 <= x.shape[1] <= context:
            raise ModelError(
                f"input batch has shape {list(x.shape)}; the model reads (batch, tokens) "
                f"of 1 to {context} token ids"
            )
        if x.is_floating_point() or x.is_complex():
            raise ModelError(f"token ids must be integers, got dtype {x.dtype}")
        return x.long()

    def output_from_logits(self, logits: Tensor) -> Tensor:
        """Apply the last layer's activation to logits (probabilities for classifiers)."""
        return activate(logits, self.spec.final_activation)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean batch loss from `forward`'s logits; class ids for categorical, 0/1 for binary,
        next-token ids (B, T) for next_token_crossentropy."""
        if self.spec.loss == "categorical_crossentropy":
            return F.cross_entropy(logits, y.reshape(-1).long())
        if self.spec.loss == "next_token_crossentropy":  # mean over batch x positions
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).long())
        if self.spec.loss == "binary_crossentropy":
            return F.binary_cross_entropy_with_logits(
                logits.reshape(-1), y.reshape(-1).to(logits.dtype)
            )
        out = self.output_from_logits(logits)
        return F.mse_loss(out, y.to(out.dtype).reshape(out.shape))

    def predict_proba(self, x: Tensor | npt.ArrayLike) -> Tensor:
        """Model outputs (final activation applied) in inference mode, without gradients."""
        param = next(self.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = np.int64 if self.spec.takes_tokens else np.float32
        batch = x if isinstance(x, Tensor) else torch.tensor(np.asarray(x, dtype=dtype))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.output_from_logits(self(batch.to(device)))
        finally:
            self.train(was_training)

    # -- canonical weights ----------------------------------------------------------------------
    def get_weights(self) -> Weights:
        """Current weights under canonical names, in TF layouts and canonical order (a copy)."""
        with torch.no_grad():
            return Weights(
                (b.name, b.to_canonical(b.tensor().detach().cpu().numpy())) for b in self._bindings
            )

    def set_weights(self, weights: Weights) -> None:
        """Load canonical weights; nothing changes unless every name, shape and value is valid."""
        if not isinstance(weights, Weights):
            raise WeightsError(
                f"set_weights needs a Weights container, got {type(weights).__name__}"
            )
        if weights.shapes != self._expected:  # order-insensitive: tensors are matched by name
            missing = [n for n in self._expected if n not in weights]
            extra = [n for n in weights if n not in self._expected]
            if missing or extra:
                raise WeightsError(
                    f"weights do not match the model: missing {missing or 'none'}, "
                    f"unexpected {extra or 'none'}"
                )
            for name, want in self._expected.items():
                if weights[name].shape != want:
                    raise WeightsError(
                        f"weights: tensor {name!r} has shape {weights[name].shape}, "
                        f"the model expects {want}"
                    )
        for name, arr in weights.items():
            if not np.isfinite(arr).all():
                raise WeightsError(f"weights: tensor {name!r} contains NaN or infinite values")
        with torch.no_grad():
            for b in self._bindings:
                b.tensor().copy_(torch.tensor(b.from_canonical(weights[b.name])))


def build_torch_model(spec: ModelSpec, seed: int = 0) -> TorchModel:
    """The torch realisation of `spec` with its canonical initial weights for `seed`."""
    return TorchModel.from_spec(spec, seed)
