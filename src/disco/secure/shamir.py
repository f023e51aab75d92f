"""Shamir secret sharing of 32-byte secrets over GF(p), p = 2^256 + 297.

A participant's two secrets of a round — its self-mask seed b_u and the private scalar of its
``s`` key — must survive its leaving, yet no one may learn them alone. Each is split into n
shares, one per position of the round's roster, so that any t shares give the secret back and
t − 1 say nothing about it (docs/secure_aggregation.md §5):

    f(x) = secret + a_1·x + … + a_{t−1}·x^(t−1)   (mod p),   share i = (i, f(i))

with a_1 … a_{t−1} drawn uniformly from [0, p) by the CSPRNG. The secret is read as a big-endian
integer; p = 2^256 + 297 is the smallest prime above 2^256, so every 32-byte string is a field
element, and a share's value travels as 33 bytes, big-endian. Reconstruction is Lagrange
interpolation at 0 from the first t of the shares given (their x distinct and non-zero). Fewer
than t shares are refused — never a guessed secret — and so is a result that is not a 32-byte
value (only wrong shares give one).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import NamedTuple

from disco.errors import SecureAggregationError

__all__ = ["PRIME", "SECRET_BYTES", "SHARE_BYTES", "Share", "reconstruct", "split"]

PRIME = 2**256 + 297
"""The field's modulus: the smallest prime above 2^256."""
SECRET_BYTES = 32
SHARE_BYTES = 33
"""A share's value f(x) < p < 2^257, big-endian."""


class Share(NamedTuple):
    """One share: the recipient's position `x` (≥ 1) and f(x) as 33 bytes, big-endian."""

    x: int
    y: bytes


def _whole(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SecureAggregationError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def split(
    secret: bytes, threshold: int, n: int, coefficients: Sequence[int] | None = None
) -> list[Share]:
    """Shares of `secret` for positions 1..n, any `threshold` of which give it back.

    `coefficients` (a_1 … a_{t−1}, each in [0, p)) fix the polynomial — the test vectors do —;
    by default they are drawn from the operating system's CSPRNG."""
    if not isinstance(secret, bytes | bytearray) or len(secret) != SECRET_BYTES:
        raise SecureAggregationError(f"a shared secret is {SECRET_BYTES} bytes")
    t = _whole("the threshold", threshold, 1)
    if _whole("the number of shares", n, 1) < t:
        raise SecureAggregationError(f"a threshold of {t} needs at least {t} shares, not {n}")
    if coefficients is None:
        coefficients = [secrets.randbelow(PRIME) for _ in range(t - 1)]
    if len(coefficients) != t - 1:
        raise SecureAggregationError(
            f"a threshold of {t} takes {t - 1} coefficients, got {len(coefficients)}"
        )
    if not all(type(a) is int and 0 <= a < PRIME for a in coefficients):
        raise SecureAggregationError("the coefficients must be integers in [0, p)")
    polynomial = [int.from_bytes(secret, "big"), *coefficients]  # f(0) first
    shares = []
    for x in range(1, n + 1):
        y = 0
        for a in reversed(polynomial):  # Horner
            y = (y * x + a) % PRIME
        shares.append(Share(x, y.to_bytes(SHARE_BYTES, "big")))
    return shares


def reconstruct(shares: Sequence[tuple[int, bytes]], threshold: int) -> bytes:
    """The 32-byte secret from `threshold` shares (the first that many given are used).

    Raises `SecureAggregationError` with fewer shares, a repeated or invalid x, a malformed
    value, or shares that do not fit one secret."""
    t = _whole("the threshold", threshold, 1)
    if len(shares) < t:
        raise SecureAggregationError(
            f"reconstructing a secret takes {t} shares, only {len(shares)} given"
        )
    seen: set[int] = set()
    for x, y in shares:
        if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < PRIME:
            raise SecureAggregationError(f"a share's x is a position ≥ 1, got {x!r}")
        if x in seen:
            raise SecureAggregationError(f"two shares have the same x ({x})")
        seen.add(x)
        if not isinstance(y, bytes | bytearray) or len(y) != SHARE_BYTES:
            raise SecureAggregationError(f"the share for x = {x} is not {SHARE_BYTES} bytes")
        if int.from_bytes(y, "big") >= PRIME:
            raise SecureAggregationError(f"the share for x = {x} is not below p")
    points = [(x, int.from_bytes(y, "big")) for x, y in shares[:t]]
    secret = 0
    for i, (xi, yi) in enumerate(points):  # f(0) = Σ y_i · Π_{j≠i} x_j / (x_j − x_i)
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                numerator = numerator * xj % PRIME
                denominator = denominator * (xj - xi) % PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise SecureAggregationError("the shares do not belong to one secret (some are wrong)")
    return secret.to_bytes(SECRET_BYTES, "big")
