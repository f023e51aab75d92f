"""Keys, the mask stream and share envelopes, checked against independent constructions and
against what arrives malformed or tampered with."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from disco.errors import SecureAggregationError
from disco.secure import (
    add_stream,
    derive_key,
    ecdh,
    generate_private_key,
    mask_stream,
    open_shares,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    round_salt,
    seal_shares,
    share_encryption_key,
)
from disco.secure.keys import CURVE_ORDER
from disco.secure.stream import mask_chunks

SALT = round_salt("mnist", 3)


def test_round_salt_is_sha256_of_prefix_task_and_round() -> None:
    data = b"disco secure aggregation v1" + "tâche".encode() + (2**40 + 7).to_bytes(8, "big")
    assert round_salt("tâche", 2**40 + 7) == hashlib.sha256(data).digest()
    assert round_salt("mnist", 3) != round_salt("mnist", 4) != round_salt("mnist3", 4)
    with pytest.raises(SecureAggregationError, match="round number"):
        round_salt("mnist", -1)


def test_derive_key_is_rfc5869_hkdf_sha256() -> None:
    ikm = bytes(range(32))
    prk = hmac.new(SALT, ikm, hashlib.sha256).digest()  # extract, then one block of expand
    okm = hmac.new(prk, b"pairwise mask" + b"\x01", hashlib.sha256).digest()
    assert derive_key(ikm, SALT, "pairwise mask") == okm
    assert derive_key(ikm, SALT, "self mask") != okm


def test_keys_round_trip_and_ecdh_agrees_both_ways() -> None:
    a, b = generate_private_key(), generate_private_key()
    a_again = private_key_from_bytes(private_key_to_bytes(a))
    b_public = public_key_from_bytes(public_key_to_bytes(b.public_key()))

    shared = ecdh(a_again, b_public)

    assert len(public_key_to_bytes(a.public_key())) == 65
    assert len(shared) == 32
    assert shared == ecdh(b, a.public_key())
    key_ab = share_encryption_key(a, b.public_key(), SALT)
    assert key_ab == share_encryption_key(b, a.public_key(), SALT)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x04" + bytes(64), "not a point of P-256"),  # (0, 0) is off the curve
        (b"\x04" + b"\x01" * 64, "not a point of P-256"),
        (b"\x02" + bytes(64), "starting 0x04"),
        (b"\x04" + bytes(31), "65 bytes, got 32 bytes"),
        (b"", "65 bytes"),
    ],
)
def test_a_malformed_or_off_curve_public_key_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(SecureAggregationError, match=match):
        public_key_from_bytes(data)


def test_an_off_curve_point_one_bit_from_a_real_key_is_refused() -> None:
    good = bytearray(public_key_to_bytes(generate_private_key().public_key()))
    good[-1] ^= 1
    with pytest.raises(SecureAggregationError, match="not a point of P-256"):
        public_key_from_bytes(bytes(good))


@pytest.mark.parametrize("value", [0, CURVE_ORDER, 2**256 - 1])
def test_a_private_scalar_outside_the_group_is_refused(value: int) -> None:
    with pytest.raises(SecureAggregationError, match=r"\[1, n − 1\]"):
        private_key_from_bytes(value.to_bytes(32, "big"))


def test_the_mask_stream_is_aes_ctr_from_a_zero_counter_block() -> None:
    key = bytes(range(32, 64))
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    blocks = b"".join(ecb.update(i.to_bytes(16, "big")) for i in range(300))  # counter 0, 1, …

    stream = mask_stream(key, 1199)

    assert stream.astype("<u4").tobytes() == blocks[: 4 * 1199]
    chunks = list(mask_chunks(key, 1199, chunk_words=7))  # chunked or whole: the same words
    assert np.array_equal(np.concatenate(chunks), stream)
    assert mask_stream(key, 0).size == 0


def test_add_stream_adds_and_subtracts_modulo_2_to_the_32() -> None:
    key = bytes(32)
    words = np.full(10, 2**32 - 1, dtype=np.uint32)
    add_stream(words, key)
    assert np.array_equal(words, mask_stream(key, 10) - np.uint32(1))
    add_stream(words, key, subtract=True)
    assert np.all(words == 2**32 - 1)


def test_a_sealed_pair_opens_only_with_its_key_names_and_position() -> None:
    u, v = generate_private_key(), generate_private_key()
    key = share_encryption_key(u, v.public_key(), SALT)
    b_share, s_share = bytes(range(33)), bytes(range(33, 66))
    route: dict[str, Any] = {"from_position": 2, "sender": "alice", "recipient": "bob"}
    envelope = seal_shares(key, b_share, s_share, **route)
    assert len(envelope) == 82
    assert open_shares(key, envelope, **route) == (b_share, s_share)

    tampered = bytes([envelope[0] ^ 1]) + envelope[1:]
    with pytest.raises(SecureAggregationError, match="from 'alice' to 'bob' do not decrypt"):
        open_shares(key, tampered, **route)
    wrong_key = share_encryption_key(u, generate_private_key().public_key(), SALT)
    with pytest.raises(SecureAggregationError, match="from 'alice'"):
        open_shares(wrong_key, envelope, **route)
    with pytest.raises(SecureAggregationError, match="from 'alice'"):
        open_shares(key, envelope, from_position=3, sender="alice", recipient="bob")
    with pytest.raises(SecureAggregationError, match="from 'mallory'"):
        open_shares(key, envelope, from_position=2, sender="mallory", recipient="bob")
    with pytest.raises(SecureAggregationError, match="81 bytes, not 82"):
        open_shares(key, envelope[:-1], **route)
