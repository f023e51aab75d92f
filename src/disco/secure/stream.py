"""The mask stream: a 32-byte key stretched into as many pseudorandom 32-bit words as a vector has.

Secure aggregation hides a participant's word vector under masks of the same length
(docs/secure_aggregation.md §8). A mask is the keystream of AES-256-CTR under the mask's key with
an all-zero 16-byte initial counter block — the encryption of 4·L zero bytes — read as L
little-endian uint32 words. The browser computes the same bytes with WebCrypto (``AES-CTR``,
``counter`` = 16 zero bytes, ``length`` = 64); the 64-bit counter cannot wrap below 2^68 bytes.

Word vectors are as long as a model (millions of words), and a participant adds one stream per
other participant, so streams are produced a chunk at a time (`mask_chunks`) and added or
subtracted straight into the vector they mask (`add_stream`): a full-length stream is never held
unless asked for (`mask_stream`). All arithmetic is modulo 2^32 in numpy uint32, where
wrap-around is silent and intended.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from disco.errors import SecureAggregationError

__all__ = ["KEY_BYTES", "Words", "add_stream", "mask_chunks", "mask_stream"]

Words = npt.NDArray[np.uint32]
"""A vector of 32-bit words (native uint32; little-endian when written as bytes)."""

KEY_BYTES = 32
"""Mask keys are AES-256 keys."""

_CHUNK_WORDS = 1 << 18  # 1 MiB of keystream per step
_WORD_LE = np.dtype("<u4")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
        raise SecureAggregationError(f"a mask key is {KEY_BYTES} bytes, got {size}")


def _check_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise SecureAggregationError(f"a mask's length is a whole number of words, got {length!r}")


def mask_chunks(key: bytes, length: int, chunk_words: int = _CHUNK_WORDS) -> Iterator[Words]:
    """The mask stream of `key` for `length` words, in consecutive chunks of `chunk_words` words
    (the last one shorter); their concatenation is `mask_stream(key, length)`."""
    _check_key(key)
    _check_length(length)
    if chunk_words < 1:
        raise SecureAggregationError(f"chunk_words must be at least 1, got {chunk_words}")
    encryptor = Cipher(algorithms.AES(bytes(key)), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(4 * min(chunk_words, length))
    for start in range(0, length, chunk_words):
        size = min(chunk_words, length - start)
        keystream = encryptor.update(zeros[: 4 * size])
        yield np.frombuffer(keystream, dtype=_WORD_LE).astype(np.uint32, copy=False)


def mask_stream(key: bytes, length: int) -> Words:
    """The whole mask stream of `key`: `length` uint32 words (a new, writable array)."""
    _check_length(length)
    return add_stream(np.zeros(length, dtype=np.uint32), key)


def add_stream(words: Words, key: bytes, *, subtract: bool = False) -> Words:
    """Add (or with `subtract`, take away) the mask stream of `key` to `words` in place, modulo
    2^32, a chunk at a time; returns `words`."""
    if not isinstance(words, np.ndarray) or words.dtype != np.uint32 or words.ndim != 1:
        raise SecureAggregationError("masks apply to a one-dimensional uint32 word vector")
    if not words.flags.writeable:
        raise SecureAggregationError("the word vector to mask is read-only")
    start = 0
    for chunk in mask_chunks(key, words.size):
        part = words[start : start + chunk.size]
        if subtract:
            np.subtract(part, chunk, out=part)
        else:
            np.add(part, chunk, out=part)
        start += chunk.size
    return words
