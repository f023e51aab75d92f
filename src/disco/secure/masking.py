"""Double masking: what a participant sends, and what the aggregator removes from the sum.

Participant u at position u of the round's roster sends its word vector y_u under two kinds of
mask (docs/secure_aggregation.md §1, §8), all modulo 2^32:

    m_u = y_u + stream(self-mask key of b_u) + Σ_{v > u} stream(s_uv) − Σ_{v < u} stream(s_uv)

The pairwise masks cancel in the sum over everyone: u adds stream(s_uv) and v subtracts it. What
is left to the aggregator is the self-masks, and, for each participant d that dropped out after
sending its shares but before its masked input, the pairwise masks the survivors put in for d:

    Σ_{survivors v < d} stream(s_vd) − Σ_{survivors v > d} stream(s_vd)

— exactly minus the pairwise mask d would have added with them. From the survivors' shares the
aggregator learns b_v of every survivor (and removes `self_mask`) and the ``s`` private scalar of
every dropped participant (and removes `pairwise_mask_of_dropped`), never both for one
participant. The sum is then Σ y_v over the survivors, exactly.

Streams are added straight into the result a chunk at a time (`disco.secure.stream`), so a
participant holds its vector and one chunk, however many others there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from disco.errors import SecureAggregationError
from disco.secure.keys import (
    PrivateKey,
    PublicKey,
    pairwise_mask_key,
    private_key_from_bytes,
    self_mask_key,
)
from disco.secure.stream import Words, add_stream

__all__ = [
    "Roster",
    "masked_input",
    "pairwise_mask",
    "pairwise_mask_of_dropped",
    "self_mask",
]

Roster = Sequence[tuple[int, PublicKey]]
"""(position, ``s`` public key) of the round's participants; an entry at one's own position is
skipped."""


def _position(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SecureAggregationError(f"a roster position is an integer ≥ 1, got {value!r}")
    return value


def _add_pairwise(
    words: Words,
    position: int,
    private: PrivateKey,
    roster: Roster,
    salt: bytes,
    *,
    negate: bool = False,
) -> Words:
    """Add +stream(s_uv) for v > u and −stream(s_uv) for v < u (the other way with `negate`)."""
    own = _position(position)
    seen: set[int] = set()
    for peer, public in roster:
        if _position(peer) in seen:
            raise SecureAggregationError(f"position {peer} appears twice in the roster")
        seen.add(peer)
        if peer == own:
            continue
        key = pairwise_mask_key(private, public, salt)
        add_stream(words, key, subtract=(peer < own) != negate)
    return words


def _length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise SecureAggregationError(f"a mask's length is a whole number of words, got {length!r}")
    return length


def self_mask(seed: bytes, length: int, salt: bytes) -> Words:
    """stream(HKDF(b_u, salt, "self mask"), L): u's self-mask, from its 32-byte seed b_u."""
    return add_stream(np.zeros(_length(length), dtype=np.uint32), self_mask_key(seed, salt))


def pairwise_mask(
    position: int, private: PrivateKey, roster: Roster, length: int, salt: bytes
) -> Words:
    """Σ_{v > u} stream(s_uv) − Σ_{v < u} stream(s_uv) for u at `position` with ``s`` key
    `private`, over the `roster`."""
    words = np.zeros(_length(length), dtype=np.uint32)
    return _add_pairwise(words, position, private, roster, salt)


def masked_input(
    input_words: Words,
    position: int,
    private: PrivateKey,
    roster: Roster,
    self_seed: bytes,
    salt: bytes,
) -> Words:
    """m_u: `input_words` (y_u) plus u's self-mask and its pairwise masks with the roster (a new
    vector; the input is left alone)."""
    if (
        not isinstance(input_words, np.ndarray)
        or input_words.dtype != np.uint32
        or input_words.ndim != 1
    ):
        raise SecureAggregationError("a masked input is made from a one-dimensional uint32 vector")
    words = input_words.copy()
    add_stream(words, self_mask_key(self_seed, salt))
    return _add_pairwise(words, position, private, roster, salt)


def pairwise_mask_of_dropped(
    dropped_scalar: bytes,
    survivors: Roster,
    dropped_position: int,
    length: int,
    salt: bytes,
) -> Words:
    """What to subtract from the survivors' sum so that the pairwise masks they share with the
    dropped participant (its ``s`` private scalar reconstructed, 32 bytes) cancel:
    Σ_{v < d} stream(s_vd) − Σ_{v > d} stream(s_vd) over the survivors v."""
    private = private_key_from_bytes(dropped_scalar)
    words = np.zeros(_length(length), dtype=np.uint32)
    return _add_pairwise(words, dropped_position, private, survivors, salt, negate=True)
