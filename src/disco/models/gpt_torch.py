"""PyTorch realisation of the portable GPT layers (`disco.models.transformer`), nanoGPT-style.

Shapes: B batch, T positions (at most the context), D width, V vocabulary, H heads.
Each builder returns the torch module and where its canonical weights live, by suffix, as
`disco.models.torch` expects; kernels are stored as ``nn.Linear`` weights ([out, in]) and
transposed to the canonical [in, out] on the way in and out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disco.models.base import Shape
from disco.models.transformer import LayerNorm, TokenEmbedding, TransformerBlock

__all__ = ["Block", "Embedding", "TiedHead", "layer_norm", "token_embedding", "transformer_block"]

_Array = npt.NDArray[np.float32]
_Convert = Callable[[_Array], _Array]
_Slot = tuple[nn.Module, str, _Convert, _Convert]


def _t(a: _Array) -> _Array:
    return a.T  # [out, in] <-> [in, out]


def _same(a: _Array) -> _Array:
    return a


class Embedding(nn.Module):
    """Token ids (B, T) -> token vectors + position vectors (B, T, D)."""

    def __init__(self, vocab: int, context: int, width: int) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(vocab, width))  # (V, D)
        self.positions = nn.Parameter(torch.zeros(context, width))  # (T_max, D)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        return self.tokens[idx] + self.positions[:t]  # (B, T, D) + (T, D)


class Block(nn.Module):
    """Pre-LN transformer block: causal multi-head self-attention, then a GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(width, eps=1e-5)
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width, eps=1e-5)
        self.fc = nn.Linear(width, mlp_ratio * width)
        self.mlp_proj = nn.Linear(mlp_ratio * width, width)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, T, D)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, T, hd)
        y = y.transpose(1, 2).contiguous().view(b, t, d)  # heads side by side again
        return self.drop(self.attn_proj(y))  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        x = x + self.attention(self.ln1(x))
        return x + self.drop(self.mlp_proj(F.gelu(self.fc(self.ln2(x)))))  # type: ignore[no-any-return]


class TiedHead(nn.Module):
    """(B, T, D) -> logits (B, T, V) with the embedding's token matrix (not registered twice)."""

    def __init__(self, embedding: Embedding) -> None:
        super().__init__()
        self._embedding = [embedding]  # a plain list: the parameter stays the embedding's

    def forward(self, x: Tensor) -> Tensor:
        return x @ self._embedding[0].tokens.T  # (B, T, D) @ (D, V)


def token_embedding(layer: TokenEmbedding, shape: Shape) -> tuple[Embedding, dict[str, _Slot]]:
    """The embedding module of `layer` for input [T] and its weights."""
    emb = Embedding(layer.vocab_size, shape[0], layer.units)
    return emb, {
        "tokens": (emb, "tokens", _same, _same),
        "positions": (emb, "positions", _same, _same),
    }


def transformer_block(layer: TransformerBlock, shape: Shape) -> tuple[Block, dict[str, _Slot]]:
    """The block module of `layer` for input (T, D) and its weights."""
    block = Block(shape[1], layer.heads, layer.mlp_ratio, layer.dropout)
    found: dict[str, _Slot] = {}
    for prefix, ln in (("ln1", block.ln1), ("ln2", block.ln2)):
        found[f"{prefix}_gamma"] = (ln, "weight", _same, _same)
        found[f"{prefix}_beta"] = (ln, "bias", _same, _same)
    for prefix, lin in (
        ("qkv", block.qkv),
        ("attn_proj", block.attn_proj),
        ("fc", block.fc),
        ("mlp_proj", block.mlp_proj),
    ):
        found[f"{prefix}_kernel"] = (lin, "weight", _t, _t)
        found[f"{prefix}_bias"] = (lin, "bias", _same, _same)
    return block, found


def layer_norm(layer: LayerNorm, shape: Shape) -> tuple[nn.LayerNorm, dict[str, _Slot]]:
    """The LayerNorm module of `layer` over the last axis and its weights."""
    ln = nn.LayerNorm(shape[-1], eps=layer.epsilon)
    return ln, {"gamma": (ln, "weight", _same, _same), "beta": (ln, "bias", _same, _same)}
