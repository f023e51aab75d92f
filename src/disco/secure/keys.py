"""Keys of secure aggregation: P-256 key pairs, ECDH, the round salt and the keys HKDF derives.

Every participant makes two fresh P-256 key pairs each round (docs/secure_aggregation.md §4):
``c`` to encrypt the Shamir shares it sends the others, ``s`` to agree a pairwise mask with each
of them. Only the public halves leave it, as uncompressed SEC1 points (65 bytes:
0x04 ‖ x ‖ y); a private key travels only as Shamir shares of its scalar (32 bytes, big-endian).

Two participants agree a secret without talking to each other: ECDH of one's private key and the
other's public key is the x-coordinate of the product point (32 bytes), the same both ways. No
raw ECDH output or seed is used directly as a key: HKDF-SHA256 (RFC 5869) turns it into one,
salted with the round (so no key serves two rounds or two tasks) and labelled with its use:

    salt = SHA-256(utf8("disco secure aggregation v1") ‖ utf8(task id) ‖ u64be(round))
    pairwise mask key s_uv = HKDF(ECDH(s_u, s_v^pub), salt, "pairwise mask")
    self-mask key         = HKDF(b_u, salt, "self mask")          (b_u: 32 random bytes)
    share encryption key  = HKDF(ECDH(c_u, c_v^pub), salt, "share encryption")

Keys are `cryptography`'s objects; `*_from_bytes` check what arrives (a malformed or off-curve
public key, a scalar outside [1, n − 1]) and raise `SecureAggregationError` saying so.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from disco.errors import SecureAggregationError

__all__ = [
    "CURVE_ORDER",
    "PAIRWISE_MASK",
    "PRIVATE_KEY_BYTES",
    "PUBLIC_KEY_BYTES",
    "SALT_PREFIX",
    "SECRET_BYTES",
    "SELF_MASK",
    "SHARE_ENCRYPTION",
    "PrivateKey",
    "PublicKey",
    "derive_key",
    "ecdh",
    "generate_private_key",
    "pairwise_mask_key",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "round_salt",
    "self_mask_key",
    "share_encryption_key",
]

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""n, the order of P-256's base point: private scalars lie in [1, n − 1]."""
PRIVATE_KEY_BYTES = 32
PUBLIC_KEY_BYTES = 65
SECRET_BYTES = 32
"""ECDH secrets, seeds, salts and derived keys are all 32 bytes."""

SALT_PREFIX = "disco secure aggregation v1"
PAIRWISE_MASK = "pairwise mask"
SELF_MASK = "self mask"
SHARE_ENCRYPTION = "share encryption"

_CURVE = ec.SECP256R1()


def _check_bytes(what: str, value: bytes, size: int) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes | bytearray) else repr(value)
        raise SecureAggregationError(f"{what} is {size} bytes, got {got}")
    return bytes(value)


# -- key pairs --------------------------------------------------------------------------------
def generate_private_key() -> PrivateKey:
    """A fresh P-256 private key (its public half is ``.public_key()``)."""
    return ec.generate_private_key(_CURVE)


def private_key_to_bytes(key: PrivateKey) -> bytes:
    """The private scalar as 32 bytes, big-endian (what is Shamir-shared)."""
    return key.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big")


def private_key_from_bytes(scalar: bytes) -> PrivateKey:
    """The private key of a 32-byte big-endian scalar in [1, n − 1]."""
    value = int.from_bytes(_check_bytes("a private scalar", scalar, PRIVATE_KEY_BYTES), "big")
    if not 1 <= value < CURVE_ORDER:
        raise SecureAggregationError(
            "a private scalar must lie in [1, n − 1] for P-256's order n; this one does not "
            "(a wrong or inconsistent set of shares reconstructs such a value)"
        )
    return ec.derive_private_key(value, _CURVE)


def public_key_to_bytes(key: PublicKey) -> bytes:
    """The public key as an uncompressed SEC1 point: 0x04 ‖ x ‖ y, 65 bytes."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def public_key_from_bytes(data: bytes) -> PublicKey:
    """The P-256 public key of a 65-byte uncompressed SEC1 point, checked to lie on the curve."""
    point = _check_bytes("a public key (uncompressed SEC1 point)", data, PUBLIC_KEY_BYTES)
    if point[0] != 0x04:
        raise SecureAggregationError(
            f"a public key must be an uncompressed SEC1 point starting 0x04, not 0x{point[0]:02x}"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except ValueError as exc:
        raise SecureAggregationError(f"a public key is not a point of P-256: {exc}") from exc


def ecdh(private: PrivateKey, public: PublicKey) -> bytes:
    """The ECDH secret of our private key and a peer's public key: the product point's
    x-coordinate, 32 bytes; the peer computes the same from its private key and our public one."""
    try:
        return private.exchange(ec.ECDH(), public)
    except ValueError as exc:  # a key of another curve
        raise SecureAggregationError(f"ECDH refused the keys: {exc}") from exc


# -- derived keys -----------------------------------------------------------------------------
def round_salt(task_id: str, round: int) -> bytes:
    """The round's HKDF salt: SHA-256(utf8(prefix) ‖ utf8(task id) ‖ u64be(round))."""
    if isinstance(round, bool) or not isinstance(round, int) or not 0 <= round < 2**64:
        raise SecureAggregationError(f"a round number is an integer in [0, 2^64), got {round!r}")
    data = SALT_PREFIX.encode() + task_id.encode("utf-8") + round.to_bytes(8, "big")
    return hashlib.sha256(data).digest()


def derive_key(ikm: bytes, salt: bytes, info: str) -> bytes:
    """HKDF-SHA256 of `ikm` with the round's `salt` and the UTF-8 of `info`: 32 bytes."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=SECRET_BYTES,
        salt=_check_bytes("a round salt", salt, SECRET_BYTES),
        info=info.encode("utf-8"),
    )
    return hkdf.derive(bytes(ikm))


def pairwise_mask_key(own: PrivateKey, peer: PublicKey, salt: bytes) -> bytes:
    """s_uv: the mask key u and v share, from u's ``s`` private key and v's ``s`` public key."""
    return derive_key(ecdh(own, peer), salt, PAIRWISE_MASK)


def self_mask_key(seed: bytes, salt: bytes) -> bytes:
    """The key of u's self-mask, from its 32-byte seed b_u."""
    return derive_key(_check_bytes("a self-mask seed", seed, SECRET_BYTES), salt, SELF_MASK)


def share_encryption_key(own: PrivateKey, peer: PublicKey, salt: bytes) -> bytes:
    """The AES-256-GCM key between u and v, from u's ``c`` private key and v's ``c`` public key."""
    return derive_key(ecdh(own, peer), salt, SHARE_ENCRYPTION)
