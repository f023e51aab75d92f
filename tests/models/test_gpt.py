"""The GPT in the portable format: validation, canonical weights, GPT-2 initialisation, and its
PyTorch realisation against an independent numpy forward pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from disco.errors import ModelError
from disco.models import ModelSpec, build_torch_model, get_architecture, gpt, init_weights
from disco.models.transformer import LayerNorm, TiedOutput, TokenEmbedding, TransformerBlock
from disco.weights import Weights

A = npt.NDArray[np.float64]
VOCAB, CONTEXT, WIDTH, HEADS = 13, 7, 8, 2


def tiny(layers: int = 2, dropout: float = 0.0) -> ModelSpec:
    return gpt(VOCAB, CONTEXT, d_model=WIDTH, layers=layers, heads=HEADS, dropout=dropout)


def doc(layers: list[dict[str, Any]], loss: str = "next_token_crossentropy") -> dict[str, Any]:
    return {"input_shape": [CONTEXT], "layers": layers, "loss": loss}


EMB = {"type": "token_embedding", "vocab_size": VOCAB, "units": WIDTH}
BLOCK = {"type": "transformer_block", "heads": HEADS}
HEAD = {"type": "tied_output"}


# -- the format -----------------------------------------------------------------------------------
def test_the_shakespeare_size_has_about_a_million_parameters() -> None:
    spec = get_architecture("gpt", vocab_size=2048, context=64)

    assert spec.num_parameters == 1_063_680
    assert spec.input_shape == (64,)
    assert spec.output_shape == (64, 2048)
    assert spec.takes_tokens and spec.final_activation == "softmax"
    assert spec.num_classes == 2048


def test_weights_have_canonical_names_in_layer_order() -> None:
    names = list(tiny(layers=1).weight_shapes())

    assert names == [
        "token_embedding_1.tokens", "token_embedding_1.positions",
        *(f"transformer_block_1.{s}" for s in (
            "ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "attn_proj_kernel",
            "attn_proj_bias", "ln2_gamma", "ln2_beta", "fc_kernel", "fc_bias",
            "mlp_proj_kernel", "mlp_proj_bias",
        )),
        "layer_norm_1.gamma", "layer_norm_1.beta",
    ]  # fmt: skip
    assert tiny(layers=1).weight_shapes()["transformer_block_1.qkv_kernel"] == (WIDTH, 3 * WIDTH)


def test_json_round_trip_keeps_the_gpt() -> None:
    spec = tiny(dropout=0.1)

    assert ModelSpec.parse(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc([BLOCK, EMB, {"type": "layer_norm"}, HEAD]), "token_embedding must be the first"),
        (doc([EMB, HEAD, {"type": "layer_norm"}]), "tied_output must be the last layer"),
        (doc([EMB, BLOCK, HEAD], "categorical_crossentropy"), "goes with models that read token"),
        (
            {"input_shape": [4], "layers": [{"type": "dense", "units": 3}],
             "loss": "next_token_crossentropy"},
            "goes with models that read token ids",
        ),
        (
            {"input_shape": [4], "layers": [{"type": "layer_norm"}, HEAD], "loss": "mse"},
            "tied_output reuses the token matrix",
        ),
        (doc([EMB, {"type": "transformer_block", "heads": 3}, HEAD]), "split evenly into 3 heads"),
        (
            {"input_shape": [4], "layers": [{"type": "layer_norm"}], "loss": "mse"},
            "layer_norm needs a (positions, features) input",
        ),
        (
            {"input_shape": [4, 4, 1], "layers": [EMB, HEAD], "loss": "next_token_crossentropy"},
            "token_embedding reads a sequence of token ids",
        ),
        (doc([EMB, {"type": "transformer_block", "heads": 2, "dropout": 1.0}, HEAD]), "dropout"),
    ],
)  # fmt: skip
def test_misplaced_gpt_layers_get_a_clear_model_error(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelError, match="invalid model") as info:
        ModelSpec.parse(document)
    assert message in str(info.value)


# -- initialisation -------------------------------------------------------------------------------
def test_init_is_gpt2_style_and_deterministic_per_name() -> None:
    spec = gpt(512, 32, d_model=64, layers=3, heads=4)
    w = init_weights(spec, seed=3)

    assert w == init_weights(spec, seed=3)
    assert np.std(w["token_embedding_1.tokens"]) == pytest.approx(0.02, rel=0.05)
    assert np.std(w["transformer_block_2.qkv_kernel"]) == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 3)
    assert np.std(w["transformer_block_3.mlp_proj_kernel"]) == pytest.approx(residual, rel=0.05)
    assert np.all(w["transformer_block_1.ln2_gamma"] == 1)
    assert np.all(w["transformer_block_1.fc_bias"] == 0)
    assert np.all(w["layer_norm_1.beta"] == 0)
    # another block count rescales the residual projections only
    other = init_weights(gpt(512, 32, d_model=64, layers=2, heads=4), seed=3)
    assert np.array_equal(
        other["transformer_block_1.qkv_kernel"], w["transformer_block_1.qkv_kernel"]
    )
    scaled = w["transformer_block_1.attn_proj_kernel"] * math.sqrt(6 / 4)
    np.testing.assert_allclose(other["transformer_block_1.attn_proj_kernel"], scaled, rtol=1e-6)


# -- PyTorch against numpy ------------------------------------------------------------------------
def np_layer_norm(x: A, gamma: A, beta: A, eps: float = 1e-5) -> A:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_gelu(x: A) -> A:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def np_gpt(spec: ModelSpec, w: dict[str, A], ids: npt.NDArray[np.int64]) -> A:
    """Logits (B, T, V) of `spec`, written from the format's definition alone."""
    emb = w["token_embedding_1.tokens"]
    t = ids.shape[1]
    x = emb[ids] + w["token_embedding_1.positions"][:t]
    for layer in spec.layers:
        if isinstance(layer, TransformerBlock):
            p = {k.split(".")[1]: v for k, v in w.items() if k.startswith(f"{layer.name}.")}
            b, d, h = x.shape[0], x.shape[2], layer.heads
            hd = d // h
            a = np_layer_norm(x, p["ln1_gamma"], p["ln1_beta"]) @ p["qkv_kernel"] + p["qkv_bias"]
            q, k, v = (a[..., i * d : (i + 1) * d].reshape(b, t, h, hd) for i in range(3))
            scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
            scores = np.where(np.tril(np.ones((t, t))) == 1, scores, -np.inf)
            att = np.exp(scores - scores.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            y = np.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
            x = x + y @ p["attn_proj_kernel"] + p["attn_proj_bias"]
            m = np_gelu(
                np_layer_norm(x, p["ln2_gamma"], p["ln2_beta"]) @ p["fc_kernel"] + p["fc_bias"]
            )
            x = x + m @ p["mlp_proj_kernel"] + p["mlp_proj_bias"]
        elif isinstance(layer, LayerNorm):
            x = np_layer_norm(x, w[f"{layer.name}.gamma"], w[f"{layer.name}.beta"], layer.epsilon)
        elif isinstance(layer, TiedOutput):
            x = x @ emb.T
        else:
            assert isinstance(layer, TokenEmbedding)
    return x


def perturbed(spec: ModelSpec, seed: int) -> dict[str, A]:
    """Initial weights with every vector moved off its constant, so that all of them matter."""
    rng = np.random.default_rng(seed)
    return {
        n: v.astype(np.float64) + (rng.normal(0, 0.2, v.shape) if v.ndim == 1 else 0)
        for n, v in init_weights(spec, seed).items()
    }


def test_torch_gpt_matches_a_numpy_forward_pass() -> None:
    spec = tiny()
    w = perturbed(spec, 1)
    model = build_torch_model(spec)
    model.set_weights(Weights((n, v.astype(np.float32)) for n, v in w.items()))
    ids = np.random.default_rng(2).integers(0, VOCAB, (3, CONTEXT))

    got = model(torch.from_numpy(ids)).detach().double().numpy()

    np.testing.assert_allclose(got, np_gpt(spec, w, ids), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == spec.num_parameters  # tied: counted once


def test_torch_gpt_is_causal_and_reads_shorter_prompts() -> None:
    model = build_torch_model(tiny(), seed=4)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    changed = ids.clone()
    changed[0, 4] = 9

    a, b = model(ids), model(changed)
    short = model(ids[:, :3])

    assert torch.equal(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    torch.testing.assert_close(short, a[:, :3], rtol=1e-5, atol=1e-6)


def test_torch_gpt_refuses_bad_token_input() -> None:
    model = build_torch_model(tiny())

    with pytest.raises(ModelError, match="1 to 7 token ids"):
        model(torch.zeros(1, CONTEXT + 1, dtype=torch.long))
    with pytest.raises(ModelError, match="token ids must be integers"):
        model(torch.zeros(1, CONTEXT))


def test_tied_embedding_gets_gradient_from_both_ends() -> None:
    model = build_torch_model(tiny(), seed=1)
    ids = torch.tensor([[1, 2, 3]])
    logits = model(ids)

    model.loss(logits, torch.tensor([[2, 3, 4]])).backward()  # type: ignore[no-untyped-call]
    grad = model.blocks[0].tokens.grad

    assert grad is not None
    assert grad[12].abs().sum() > 0  # never an input: its gradient comes from the output end
    probs = model.predict_proba(ids.numpy())
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 3))
