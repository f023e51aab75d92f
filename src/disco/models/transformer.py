"""The portable format's sequence layers: the pieces of a GPT (docs/models.md, "GPT").

A model whose first layer is ``token_embedding`` reads **token ids**: its ``input_shape`` is
``[T]`` (the context) and a sample is T integer ids, not T float features. Every later layer
sees ``(T, D)`` — a D-vector per position — until ``tied_output`` turns it into ``(T, V)``
logits over the vocabulary with the embedding's own token matrix (no weights of its own).

Canonical weights (TF layouts: kernels ``[in, out]``), in order within each layer:

- ``token_embedding``: ``tokens`` [V, D], ``positions`` [T, D];
- ``transformer_block`` (pre-LayerNorm): ``ln1_gamma``, ``ln1_beta`` [D]; ``qkv_kernel``
  [D, 3D] (columns: queries, keys, values, each split into heads of D/heads consecutive
  columns), ``qkv_bias`` [3D]; ``attn_proj_kernel`` [D, D], ``attn_proj_bias`` [D];
  ``ln2_gamma``, ``ln2_beta`` [D]; ``fc_kernel`` [D, rD], ``fc_bias`` [rD];
  ``mlp_proj_kernel`` [rD, D], ``mlp_proj_bias`` [D] (r: ``mlp_ratio``);
- ``layer_norm``: ``gamma``, ``beta`` [D].
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from disco.models.base import Initializer, LayerBase, Shape, WeightInfo

__all__ = ["LayerNorm", "TiedOutput", "TokenEmbedding", "TransformerBlock"]


def _sequence(layer: str, shape: Shape) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(
            f"{layer} needs a (positions, features) input, got shape {list(shape)}; "
            "a GPT starts with a token_embedding layer"
        )
    return shape[0], shape[1]


class TokenEmbedding(LayerBase):
    """Token ids [T] -> token vector + learned position vector, (T, D). Must come first."""

    type: Literal["token_embedding"] = "token_embedding"
    vocab_size: PositiveInt
    units: PositiveInt  # D, the model width

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(
                f"token_embedding reads a sequence of token ids, input_shape [context], "
                f"got {list(shape)}"
            )
        return (shape[0], self.units)

    def weights(self, shape: Shape) -> list[WeightInfo]:
        return [
            WeightInfo(
                suffix="tokens", shape=(self.vocab_size, self.units), trainable=True, init="normal"
            ),
            WeightInfo(
                suffix="positions", shape=(shape[0], self.units), trainable=True, init="normal"
            ),
        ]


class TransformerBlock(LayerBase):
    """Pre-LN block: x + attn(ln1(x)), then x + mlp(ln2(x)); causal multi-head self-attention.

    The MLP is dense D -> mlp_ratio·D, exact GELU, dense back to D. ``dropout`` applies to the
    attention probabilities and to both residual branches while training. LayerNorm epsilon 1e-5.
    """

    type: Literal["transformer_block"] = "transformer_block"
    heads: PositiveInt
    mlp_ratio: PositiveInt = 4
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    def output_shape(self, shape: Shape) -> Shape:
        _, d = _sequence("transformer_block", shape)
        if d % self.heads:
            raise ValueError(
                f"transformer_block: its input width {d} must split evenly into {self.heads} heads"
            )
        return shape

    def weights(self, shape: Shape) -> list[WeightInfo]:
        d = shape[1]
        h = self.mlp_ratio * d

        def w(suffix: str, dims: Shape, init: Initializer) -> WeightInfo:
            return WeightInfo(suffix=suffix, shape=dims, trainable=True, init=init)

        return [
            w("ln1_gamma", (d,), "ones"),
            w("ln1_beta", (d,), "zeros"),
            w("qkv_kernel", (d, 3 * d), "normal"),
            w("qkv_bias", (3 * d,), "zeros"),
            w("attn_proj_kernel", (d, d), "normal_residual"),
            w("attn_proj_bias", (d,), "zeros"),
            w("ln2_gamma", (d,), "ones"),
            w("ln2_beta", (d,), "zeros"),
            w("fc_kernel", (d, h), "normal"),
            w("fc_bias", (h,), "zeros"),
            w("mlp_proj_kernel", (h, d), "normal_residual"),
            w("mlp_proj_bias", (d,), "zeros"),
        ]


class LayerNorm(LayerBase):
    """Normalise each position's features: (x - mean) / sqrt(var + epsilon) * gamma + beta."""

    type: Literal["layer_norm"] = "layer_norm"
    epsilon: float = Field(default=1e-5, gt=0.0)

    def output_shape(self, shape: Shape) -> Shape:
        _sequence("layer_norm", shape)
        return shape

    def weights(self, shape: Shape) -> list[WeightInfo]:
        c = (shape[-1],)
        return [
            WeightInfo(suffix="gamma", shape=c, trainable=True, init="ones"),
            WeightInfo(suffix="beta", shape=c, trainable=True, init="zeros"),
        ]


class TiedOutput(LayerBase):
    """Logits over the vocabulary, (T, D) -> (T, V): x @ tokensᵀ of the model's token_embedding.

    It has no weights of its own (the embedding's matrix serves both ends) and must be the last
    layer; its outputs are logits, turned into probabilities by a softmax over the vocabulary.
    """

    type: Literal["tied_output"] = "tied_output"

    def output_shape(self, shape: Shape) -> Shape:
        _sequence("tied_output", shape)
        return shape  # the vocabulary size is the embedding's: ModelSpec fills it in
