"""disco.secure against tests/vectors/secure_aggregation.json, which the browser reads too
(web/tests/secure.test.ts): a participant in either language must derive, seal and mask the same
bytes, or the masks do not cancel."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from disco.errors import SecureAggregationError
from disco.secure import (
    decode,
    derive_key,
    ecdh,
    mask_stream,
    masked_input,
    open_shares,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    quantize,
    reconstruct,
    round_salt,
    scale_bits,
    seal_shares,
    self_mask,
    share_encryption_key,
    split,
)

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((VECTORS_DIR / "secure_aggregation.json").read_text(encoding="utf-8"))
SECTIONS = [
    "about",
    "salt",
    "hkdf",
    "ecdh",
    "stream",
    "shamir",
    "scale",
    "quantize",
    "decode",
    "share_encryption",
    "masking",
]


def words(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint32)


def floats(patterns: list[str]) -> np.ndarray:
    return np.array([int(p, 16) for p in patterns], dtype="<u4").view("<f4").astype(np.float32)


def cases(section: str) -> list[dict[str, Any]]:
    return VECTORS[section]  # type: ignore[no-any-return]


# -- the file ----------------------------------------------------------------------------------
def test_the_vectors_file_is_what_the_code_produces() -> None:
    script = VECTORS_DIR / "secure.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_file_has_every_section_and_the_cases_the_spec_asks_for() -> None:
    assert list(VECTORS) == SECTIONS
    assert "docs/secure_aggregation.md" in VECTORS["about"]
    assert {1, 3, 1000} <= {c["words"] for c in cases("stream")}
    shamir = cases("shamir")
    assert any(c["threshold"] == 1 for c in shamir)
    assert any(c["secret"] == "ff" * 32 for c in shamir)
    assert any(c["n"] == 10 and c["threshold"] == 7 for c in shamir)
    assert any(c["scale_bits"] is None for c in cases("scale"))
    draws = {d for c in cases("quantize") for d in c["draws"]}
    assert {0.0, (2**32 - 1) / 2**32} <= draws
    values = {v for c in cases("quantize") for v in c["values"]}
    assert {"00000000", "80000000", "36800000", "b6800000"} <= values  # 0, −0, exact halves
    assert len(cases("masking")[0]["participants"]) == 4


# -- keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases("salt"))
def test_round_salt(case: dict[str, Any]) -> None:
    assert round_salt(case["task"], case["round"]).hex() == case["salt"]


@pytest.mark.parametrize("case", cases("hkdf"))
def test_hkdf(case: dict[str, Any]) -> None:
    salt = round_salt(case["task"], case["round"])
    assert derive_key(bytes.fromhex(case["ikm"]), salt, case["info"]).hex() == case["okm"]


@pytest.mark.parametrize("case", cases("ecdh"))
def test_ecdh_both_ways(case: dict[str, Any]) -> None:
    a = private_key_from_bytes(bytes.fromhex(case["a_private"]))
    b = private_key_from_bytes(bytes.fromhex(case["b_private"]))
    assert private_key_to_bytes(a).hex() == case["a_private"]
    assert public_key_to_bytes(a.public_key()).hex() == case["a_public"]
    assert public_key_to_bytes(b.public_key()).hex() == case["b_public"]
    b_public = public_key_from_bytes(bytes.fromhex(case["b_public"]))
    a_public = public_key_from_bytes(bytes.fromhex(case["a_public"]))
    assert ecdh(a, b_public).hex() == case["shared"]
    assert ecdh(b, a_public).hex() == case["shared"]


# -- streams and shares ------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases("stream"), ids=lambda c: f"{c['words']} words")
def test_mask_stream(case: dict[str, Any]) -> None:
    got = mask_stream(bytes.fromhex(case["key"]), case["words"])
    assert got.tolist()[:8] == case["head"]
    assert hashlib.sha256(got.astype("<u4").tobytes()).hexdigest() == case["sha256"]


@pytest.mark.parametrize("case", cases("shamir"), ids=lambda c: f"t{c['threshold']}n{c['n']}")
def test_shamir(case: dict[str, Any]) -> None:
    secret, t = bytes.fromhex(case["secret"]), case["threshold"]
    coefficients = [int(a, 16) for a in case["coefficients"]]
    assert all(len(a) == 66 for a in case["coefficients"])
    shares = split(secret, t, case["n"], coefficients)
    assert [(s.x, s.y.hex()) for s in shares] == [(s["x"], s["y"]) for s in case["shares"]]
    by_x = {s["x"]: bytes.fromhex(s["y"]) for s in case["shares"]}
    for subset in case["subsets"]:
        assert reconstruct([(x, by_x[x]) for x in subset], t) == secret
    with pytest.raises(SecureAggregationError, match=f"takes {t} shares"):
        reconstruct([(x, by_x[x]) for x in case["too_few"]], t)


@pytest.mark.parametrize("case", cases("share_encryption"), ids=lambda c: c["from"])
def test_share_encryption(case: dict[str, Any]) -> None:
    own = private_key_from_bytes(bytes.fromhex(case["c_private"]))
    peer = public_key_from_bytes(bytes.fromhex(case["peer_public"]))
    key = share_encryption_key(own, peer, round_salt(case["task"], case["round"]))
    plain = bytes.fromhex(case["plaintext"])
    names = {
        "from_position": case["from_position"],
        "sender": case["from"],
        "recipient": case["to"],
    }
    envelope = seal_shares(key, plain[:33], plain[33:], **names)
    assert envelope.hex() == case["ciphertext"]
    assert open_shares(key, envelope, **names) == (plain[:33], plain[33:])


# -- quantisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases("scale"), ids=lambda c: f"n{c['n']}W{c['weight_cap']}")
def test_scale_bits(case: dict[str, Any]) -> None:
    if case["scale_bits"] is None:
        with pytest.raises(SecureAggregationError, match="lower the clip range"):
            scale_bits(case["n"], case["weight_cap"], case["clip"])
    else:
        assert scale_bits(case["n"], case["weight_cap"], case["clip"]) == case["scale_bits"]


@pytest.mark.parametrize(
    "case", cases("quantize"), ids=lambda c: f"w{c['weight']}b{c['scale_bits']}"
)
def test_quantize(case: dict[str, Any]) -> None:
    draws = np.array(case["draws"], dtype=np.float64)
    got = quantize(floats(case["values"]), case["weight"], case["clip"], case["scale_bits"], draws)
    assert got.dtype == np.uint32
    assert got.tolist() == case["words"]


@pytest.mark.parametrize("case", cases("decode"), ids=lambda c: f"b{c['scale_bits']}")
def test_decode(case: dict[str, Any]) -> None:
    weight, values = decode(words(case["words"]), case["scale_bits"])
    assert weight == case["weight"]
    assert values.tolist() == case["values"]


# -- masking -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases("masking"))
def test_masked_inputs_and_their_sum(case: dict[str, Any]) -> None:
    salt = round_salt(case["task"], case["round"])
    people = case["participants"]
    roster = [(p["position"], public_key_from_bytes(bytes.fromhex(p["s_public"]))) for p in people]
    total = np.zeros(len(case["sum"]), dtype=np.uint32)
    unmasked = total.copy()
    for p, want in zip(people, case["masked"], strict=True):
        s_key = private_key_from_bytes(bytes.fromhex(p["s_private"]))
        seed = bytes.fromhex(p["self_seed"])
        got = masked_input(words(p["input"]), p["position"], s_key, roster, seed, salt)
        assert got.tolist() == want
        total += got
        unmasked += words(p["input"]) + self_mask(seed, len(case["sum"]), salt)
    assert total.tolist() == case["sum"]
    assert unmasked.tolist() == case["sum"]  # the pairwise masks cancel; the self-masks remain
