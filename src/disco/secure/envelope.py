"""The envelope of a participant's shares to another: AES-256-GCM under their agreed key.

Before a round's masked inputs, u sends each other participant v — through the aggregator, who
must not read them — v's share of u's self-mask seed and v's share of u's ``s`` private scalar
(docs/secure_aggregation.md §7). The pair is 66 bytes (33 ‖ 33) and is sealed with AES-256-GCM:

- key: HKDF(ECDH(c_u, c_v^pub), salt, "share encryption") — `keys.share_encryption_key`; u and v
  derive the same one;
- nonce (12 bytes): u32be(u's position) ‖ 8 zero bytes — each key seals one message each way per
  round, and the two directions differ in the sender's position;
- additional data: utf8("from ") ‖ utf8(u's id) ‖ utf8(" to ") ‖ utf8(v's id), so an envelope
  cannot be passed off as one between other participants;
- result: 82 bytes, the ciphertext followed by the 16-byte tag.

An envelope that does not open — a wrong key, or bytes changed on the way — is an error naming its
sender, and its shares are not used.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from disco.errors import SecureAggregationError
from disco.secure.shamir import SHARE_BYTES

__all__ = [
    "ENVELOPE_BYTES",
    "SHARE_PAIR_BYTES",
    "TAG_BYTES",
    "additional_data",
    "nonce",
    "open_shares",
    "seal_shares",
]

SHARE_PAIR_BYTES = 2 * SHARE_BYTES
"""The plaintext: the share of b_u, then the share of s_u's private scalar (66 bytes)."""
TAG_BYTES = 16
ENVELOPE_BYTES = SHARE_PAIR_BYTES + TAG_BYTES
"""What travels: 82 bytes."""

_KEY_BYTES = 32


def nonce(from_position: int) -> bytes:
    """The 12-byte nonce of the sender at `from_position`: u32be(position) ‖ 8 zero bytes."""
    if isinstance(from_position, bool) or not isinstance(from_position, int):
        raise SecureAggregationError(f"a position is an integer, got {from_position!r}")
    if not 1 <= from_position < 2**32:
        raise SecureAggregationError(f"a position lies in [1, 2^32), got {from_position}")
    return from_position.to_bytes(4, "big") + bytes(8)


def additional_data(sender: str, recipient: str) -> bytes:
    """utf8("from ") ‖ utf8(sender) ‖ utf8(" to ") ‖ utf8(recipient)."""
    return f"from {sender} to {recipient}".encode()


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, bytes | bytearray) or len(key) != _KEY_BYTES:
        raise SecureAggregationError(f"a share encryption key is {_KEY_BYTES} bytes")
    return AESGCM(bytes(key))


def seal_shares(
    key: bytes,
    b_share: bytes,
    s_share: bytes,
    *,
    from_position: int,
    sender: str,
    recipient: str,
) -> bytes:
    """The 82-byte envelope of `sender`'s (at `from_position`) two shares for `recipient`."""
    for name, share in (("b_u", b_share), ("s_u", s_share)):
        if not isinstance(share, bytes | bytearray) or len(share) != SHARE_BYTES:
            raise SecureAggregationError(f"the share of {name} is not {SHARE_BYTES} bytes")
    return _cipher(key).encrypt(
        nonce(from_position), bytes(b_share) + bytes(s_share), additional_data(sender, recipient)
    )


def open_shares(
    key: bytes, envelope: bytes, *, from_position: int, sender: str, recipient: str
) -> tuple[bytes, bytes]:
    """The (share of b_u, share of s_u) in `sender`'s envelope to `recipient`.

    Raises `SecureAggregationError` naming the sender when the envelope does not open."""
    if not isinstance(envelope, bytes | bytearray) or len(envelope) != ENVELOPE_BYTES:
        size = len(envelope) if isinstance(envelope, bytes | bytearray) else type(envelope)
        raise SecureAggregationError(
            f"the shares from {sender!r} are {size} bytes, not {ENVELOPE_BYTES}: not used"
        )
    try:
        plain = _cipher(key).decrypt(
            nonce(from_position), bytes(envelope), additional_data(sender, recipient)
        )
    except InvalidTag:
        raise SecureAggregationError(
            f"the shares from {sender!r} to {recipient!r} do not decrypt (wrong key, or changed "
            "on the way): they are not used"
        ) from None
    return plain[:SHARE_BYTES], plain[SHARE_BYTES:]
