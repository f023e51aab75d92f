"""Initial weights of a portable model: deterministic, the same for every engine."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from disco.errors import ModelError
from disco.models.base import GPT_INIT_STD, Shape
from disco.models.spec import ModelSpec
from disco.models.transformer import TransformerBlock
from disco.weights import Weights

__all__ = ["init_weights"]


def _fans(shape: Shape) -> tuple[int, int]:
    """Keras/TF.js fan-in and fan-out of a channels-last kernel."""
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def init_weights(spec: ModelSpec, seed: int = 0) -> Weights:
    """Deterministic initial weights, each tensor by its `WeightInfo.init`.

    glorot_uniform kernels, zero biases, identity normalisation; GPT layers as GPT-2: normal
    with std 0.02, residual projections 0.02 / sqrt(2 · blocks). Each random tensor is drawn from
    its own numpy PCG64 stream keyed by (`seed`, CRC-32 of its name), so adding a layer leaves
    the other layers' initial values unchanged.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
    blocks = sum(isinstance(layer, TransformerBlock) for layer in spec.layers)
    stds = {"normal": GPT_INIT_STD, "normal_residual": GPT_INIT_STD / math.sqrt(2 * max(blocks, 1))}
    arrays: list[tuple[str, np.ndarray[Any, np.dtype[np.float32]]]] = []
    for name, info in spec.weight_infos():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if info.init == "glorot_uniform":
            fan_in, fan_out = _fans(info.shape)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-limit, limit, size=info.shape).astype(np.float32)
        elif info.init in stds:
            value = rng.normal(0.0, stds[info.init], size=info.shape).astype(np.float32)
        elif info.init == "ones":
            value = np.ones(info.shape, dtype=np.float32)
        else:
            value = np.zeros(info.shape, dtype=np.float32)
        arrays.append((name, value))
    return Weights(arrays)
