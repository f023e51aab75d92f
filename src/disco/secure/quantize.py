"""Fixed point in Z_2^32: a weighted float32 update as 32-bit words whose sum decodes exactly.

Masks only cancel in a ring, so before masking a participant turns its update x (float32 values)
and its weight w (an integer in [1, W]) into words (docs/secure_aggregation.md §3):

    y = [ w, q(w·x_1), q(w·x_2), … ]

Each value is clamped to [−c, c], weighted and scaled by 2^b, v = w · clamp(x, −c, c) · 2^b in
float64, and rounded stochastically with a uniform draw r in [0, 1):

    f = floor(v);   q = f + (1 if r < v − f else 0);   word = q mod 2^32

so that E[q] = v: rounding adds noise but no bias. The scale is the largest b with

    n · W · c · 2^b + n ≤ 2^31 − 1          (float64, left to right)

for n participants, so n words each within W·c·2^b + 1 of zero sum without wrapping past the
signed range; the weights' word needs n · W + n ≤ 2^31 − 1 likewise. A round where b < 8 (a step
coarser than 1/256) is refused: lower the clip range or the weight cap, or take fewer
participants per round.

The aggregator decodes the sum S of everyone's words as Σw = S_0 and Σ w·x ≈ signed(S_i) / 2^b,
signed(a) = a − 2^32 for a ≥ 2^31. Each q is within 1 of its v, so the weighted mean is within
n / (2^b · Σw) ≤ 1 / 2^b of the exact weighted mean of the clamped values.

Draws come from the operating system's CSPRNG (r = k / 2^32 for a random uint32 k); the test
vectors pass them explicitly so Python and the browser are checked on the same ones.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import numpy.typing as npt

from disco.errors import SecureAggregationError
from disco.secure.stream import Words

__all__ = ["MIN_SCALE_BITS", "WORD_LIMIT", "decode", "quantize", "random_draws", "scale_bits"]

MIN_SCALE_BITS = 8
"""A round needs at least 8 fraction bits (a step of 1/256 or finer), or it is refused."""
WORD_LIMIT = 2**31 - 1
"""No sum of a round's words may pass this in absolute value."""

_MAX_BITS = 1023  # 2^b stays a finite float64


def _whole(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise SecureAggregationError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return int(value)


def _clip(clip: float) -> float:
    if isinstance(clip, bool) or not isinstance(clip, int | float | np.floating):
        raise SecureAggregationError(f"the clip range must be a number, got {clip!r}")
    if not math.isfinite(clip) or clip <= 0:
        raise SecureAggregationError(f"the clip range must be finite and > 0, got {clip!r}")
    return float(clip)


def scale_bits(n: int, weight_cap: int, clip: float) -> int:
    """b for a round of `n` participants, weight cap W and clip range c: the largest integer
    with n·W·c·2^b + n ≤ 2^31 − 1 (evaluated in float64, left to right).

    Raises `SecureAggregationError` when b < 8 or the weights' sum n·W + n does not fit."""
    n = _whole("the number of participants", n, 1)
    cap = _whole("the weight cap", weight_cap, 1)
    c = _clip(clip)
    advice = "lower the clip range or the weight cap, or take fewer participants per round"
    if n * cap + n > WORD_LIMIT:
        raise SecureAggregationError(
            f"n × W = {n} × {cap}: the weights of a round would not fit a 32-bit word; {advice}"
        )
    base = float(n * cap) * c  # exact n·W, then one rounding, as in every language

    def fits(b: int) -> bool:
        return base * 2.0**b + n <= WORD_LIMIT

    if not fits(MIN_SCALE_BITS):
        raise SecureAggregationError(
            f"n × W × c = {n} × {cap} × {c:g} is too large for the 32-bit ring: fewer than "
            f"{MIN_SCALE_BITS} bits of precision would be left; {advice}"
        )
    b = MIN_SCALE_BITS
    while b < _MAX_BITS and fits(b + 1):
        b += 1
    return b


def random_draws(size: int) -> npt.NDArray[np.float64]:
    """`size` uniform draws in [0, 1) from the operating system's CSPRNG: k / 2^32, k a uint32."""
    words = np.frombuffer(secrets.token_bytes(4 * size), dtype="<u4")
    return words.astype(np.float64) / 2.0**32


def quantize(
    values: npt.NDArray[np.float32],
    weight: int,
    clip: float,
    bits: int,
    draws: npt.NDArray[np.float64] | None = None,
) -> Words:
    """The words [w, q(w·x_1), …] of float32 `values` (any shape, read in C order) with integer
    `weight`, clip range `clip` and scale 2^`bits`.

    `draws` (one per value, in [0, 1)) fix the stochastic rounding; by default they come from the
    CSPRNG. Raises `SecureAggregationError` on non-finite values, a weight below 1, or a weight
    so large that one word could pass 2^31 − 1."""
    if not isinstance(values, np.ndarray) or values.dtype != np.float32:
        raise SecureAggregationError("quantize takes a float32 numpy array of values")
    x = values.reshape(-1).astype(np.float64)
    w = _whole("the weight", weight, 1)
    c = _clip(clip)
    b = _whole("the scale bits", bits, 0)
    if b > _MAX_BITS:
        raise SecureAggregationError(f"the scale bits must be at most {_MAX_BITS}, got {b}")
    scale = 2.0**b
    if w + 1 > WORD_LIMIT or w * c * scale + 1 > WORD_LIMIT:
        raise SecureAggregationError(
            f"weight {w} × clip {c:g} × 2^{b} overflows a 32-bit word: use a lower weight cap "
            "or take the scale from scale_bits"
        )
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise SecureAggregationError(
            f"{bad.size} value(s) are NaN or infinite (the first at index {int(bad[0])}): "
            "a secure update must be finite"
        )
    if draws is None:
        r = random_draws(x.size)
    else:
        r = np.asarray(draws).reshape(-1)
        if r.dtype != np.float64 or r.size != x.size:
            raise SecureAggregationError(f"draws must be {x.size} float64 numbers, one per value")
        if not np.all((r >= 0.0) & (r < 1.0)):
            raise SecureAggregationError("draws must lie in [0, 1)")
    v = w * np.clip(x, -c, c) * scale  # float64: w · clamp(x) · 2^b
    f = np.floor(v)
    q = (f + (r < v - f)).astype(np.int64)
    words = np.empty(1 + x.size, dtype=np.uint32)
    words[0] = w
    words[1:] = q % 2**32
    return words


def decode(words: Words, bits: int) -> tuple[int, npt.NDArray[np.float64]]:
    """(Σw, Σ w·x) from a sum of word vectors: the weight word as an integer and each other word
    as signed(S_i) / 2^`bits`. The weighted mean is the second divided by the first."""
    if not isinstance(words, np.ndarray) or words.dtype != np.uint32 or words.ndim != 1:
        raise SecureAggregationError("decode takes a one-dimensional uint32 word vector")
    if words.size < 1:
        raise SecureAggregationError("a word vector starts with the weight word; this is empty")
    b = _whole("the scale bits", bits, 0)
    signed = np.ascontiguousarray(words[1:]).view(np.int32).astype(np.float64)
    return int(words[0]), signed / 2.0**b
