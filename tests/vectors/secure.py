"""Generate tests/vectors/secure_aggregation.json: secure aggregation's primitives, byte for byte.

    python tests/vectors/secure.py           rewrite the file from what the code produces
    python tests/vectors/secure.py --check   exit 1 if the committed file differs

Python (`disco.secure`) and the browser (web/src/core/secure/) must agree on every byte a
participant derives, seals or masks, or masks do not cancel. The file pins each primitive of
docs/secure_aggregation.md: the round salt (§4), HKDF (§4), ECDH (§4), the mask stream (§8),
Shamir sharing (§5), the scale rule and quantisation (§3), decoding (§3.4), share encryption (§7)
and masked inputs (§8). It is read by tests/secure/test_secure_vectors.py and
web/tests/secure.test.ts.

Every fixed input is derived here, so the file can be rebuilt exactly:

- ``digest(label)`` = SHA-256(utf8(label)): seeds, stream keys, secrets, HKDF inputs;
- ``scalar(label)`` = int(digest(label), big-endian) mod (n − 1) + 1, n P-256's order: private keys
  (a few cases take the extremes 1 and n − 1 instead);
- ``coefficient(label)`` = int(digest(label), big-endian) mod p, p = 2^256 + 297: Shamir
  coefficients (a few cases take 0, 1, p − 1 instead, to reach 33-byte values);
- ``draw(label, i)`` = int(first 4 bytes of digest(f"{label} {i}"), big-endian) / 2^32: the
  stochastic rounding's draws (and 0, 1/2 and (2^32 − 1)/2^32 where a case needs them);
- values: float32 bit patterns chosen by hand, or ``float32((2·draw − 1) · spread)``.

Hex strings are lowercase without prefix; float32 values are their bit patterns (8 hex digits);
draws and decoded values are float64 numbers written exactly (k / 2^32, m / 2^b).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump, write_or_check

from disco.errors import SecureAggregationError
from disco.secure import (
    PRIME,
    derive_key,
    ecdh,
    mask_stream,
    masked_input,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_to_bytes,
    quantize,
    round_salt,
    scale_bits,
    seal_shares,
    share_encryption_key,
    split,
)
from disco.secure.keys import CURVE_ORDER

PATH = Path(__file__).with_name("secure_aggregation.json")


# -- deterministic inputs ----------------------------------------------------------------------
def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode("utf-8")).digest()


def scalar(label: str) -> bytes:
    value = int.from_bytes(digest(label), "big") % (CURVE_ORDER - 1) + 1
    return value.to_bytes(32, "big")


def coefficient(label: str) -> int:
    return int.from_bytes(digest(label), "big") % PRIME


def draw(label: str, i: int) -> float:
    return int.from_bytes(digest(f"{label} {i}")[:4], "big") / 2**32


def public(private_scalar: bytes) -> bytes:
    return public_key_to_bytes(private_key_from_bytes(private_scalar).public_key())


def f32_bits(values: np.ndarray) -> list[str]:
    return [f"{int(u):08x}" for u in np.asarray(values, "<f4").view("<u4")]


def from_bits(*patterns: int) -> np.ndarray:
    return np.array(patterns, dtype="<u4").view("<f4").astype(np.float32)


def spread(label: str, count: int, width: float) -> np.ndarray:
    return np.array([(2 * draw(label, i) - 1) * width for i in range(count)], dtype=np.float32)


# -- sections ----------------------------------------------------------------------------------
def salts() -> list[dict[str, Any]]:
    cases = [("mnist", 3), ("mnist", 0), ("cifar10", 2**32 + 5), ("tâche-ü", 1), ("", 0)]
    return [{"task": t, "round": r, "salt": round_salt(t, r).hex()} for t, r in cases]


def ecdh_pairs() -> list[tuple[bytes, bytes]]:
    return [
        (scalar("ecdh a 1"), scalar("ecdh b 1")),
        ((1).to_bytes(32, "big"), scalar("ecdh b 2")),  # a's public key is the base point
        ((CURVE_ORDER - 1).to_bytes(32, "big"), scalar("ecdh b 3")),  # the largest scalar
    ]


def shared_secret(a: bytes, b: bytes) -> bytes:
    return ecdh(private_key_from_bytes(a), private_key_from_bytes(b).public_key())


def ecdh_cases() -> list[dict[str, Any]]:
    out = []
    for a, b in ecdh_pairs():
        shared = shared_secret(a, b)
        assert shared == shared_secret(b, a)
        out.append(
            {
                "a_private": a.hex(),
                "a_public": public(a).hex(),
                "b_private": b.hex(),
                "b_public": public(b).hex(),
                "shared": shared.hex(),
            }
        )
    return out


def hkdf_cases() -> list[dict[str, Any]]:
    (a1, b1), (a2, b2), _ = ecdh_pairs()
    cases = [
        (shared_secret(a1, b1), "mnist", 3, "pairwise mask"),
        (digest("self seed"), "mnist", 3, "self mask"),
        (shared_secret(a2, b2), "mnist", 3, "share encryption"),
        (shared_secret(a1, b1), "cifar10", 2**32 + 5, "pairwise mask"),
        (digest("self seed"), "tâche-ü", 1, "self mask"),
        (digest("short ikm")[:16], "mnist", 3, "share encryption"),
    ]
    return [
        {
            "ikm": ikm.hex(),
            "task": task,
            "round": r,
            "info": info,
            "okm": derive_key(ikm, round_salt(task, r), info).hex(),
        }
        for ikm, task, r, info in cases
    ]


def stream_cases() -> list[dict[str, Any]]:
    cases = [(digest("stream 1"), 1), (digest("stream 3"), 3), (digest("stream 4"), 4)]
    cases += [(digest("stream 5"), 5), (bytes(32), 8), (digest("stream 1000"), 1000)]
    out = []
    for key, length in cases:
        words = mask_stream(key, length)
        out.append(
            {
                "key": key.hex(),
                "words": length,
                "head": [int(w) for w in words[:8]],
                "sha256": hashlib.sha256(words.astype("<u4").tobytes()).hexdigest(),
            }
        )
    return out


SHAMIR = [  # secret, threshold, n, coefficients, subsets, too_few
    (
        digest("shamir A"),
        3,
        5,
        [coefficient("shamir A 1"), coefficient("shamir A 2")],
        [[1, 2, 3], [2, 4, 5], [5, 3, 1], [1, 2, 3, 4, 5]],
        [1, 4],
    ),
    (digest("shamir B"), 1, 4, [], [[1], [4], [1, 2, 3, 4]], []),
    (b"\xff" * 32, 2, 3, [1], [[1, 2], [3, 1], [1, 2, 3]], [2]),  # shares ≥ 2^256: 33 bytes
    (b"\xff" * 32, 3, 4, [PRIME - 1, 298], [[1, 2, 3], [4, 2, 1], [1, 2, 3, 4]], [3, 4]),
    (bytes(32), 2, 2, [0], [[1, 2], [2, 1]], [1]),  # all shares zero
    (
        digest("shamir E"),
        7,
        10,
        [coefficient(f"shamir E {i}") for i in range(1, 7)],
        [
            [1, 2, 3, 4, 5, 6, 7],
            [4, 5, 6, 7, 8, 9, 10],
            [2, 3, 5, 7, 8, 9, 10],
            list(range(10, 0, -1)),
        ],
        [1, 2, 3, 4, 5, 6],
    ),
]


def shamir_cases() -> list[dict[str, Any]]:
    out = []
    for secret, t, n, coefficients, subsets, too_few in SHAMIR:
        shares = split(secret, t, n, coefficients)
        out.append(
            {
                "secret": secret.hex(),
                "threshold": t,
                "n": n,
                "coefficients": [a.to_bytes(33, "big").hex() for a in coefficients],
                "shares": [{"x": s.x, "y": s.y.hex()} for s in shares],
                "subsets": subsets,
                "too_few": too_few,
            }
        )
    return out


SCALE = [  # n, weight cap, clip
    (10, 1024, 1.0),  # 17
    (100_000, 1024, 1.0),  # refused
    (1, 1, 1.0),  # 30
    (1, 1, (2**31 - 2) / 2**30),  # exactly on the limit at b = 30
    (5, 1024, 0.1),  # 0.1 · 5120 rounds in float64
    (3, 1, 0.3),
    (1000, 1024, 8.0),  # b = 8, the least allowed
    (1000, 1024, 8.5),  # b = 7: refused
    (2**20, 2**12, 2**-20),  # b = 18, but the weights' sum would not fit: refused
    (1, 1, 2**-40),  # b = 70
]


def scale_cases() -> list[dict[str, Any]]:
    out = []
    for n, cap, clip in SCALE:
        try:
            bits: int | None = scale_bits(n, cap, clip)
        except SecureAggregationError:
            bits = None
        out.append({"n": n, "weight_cap": cap, "clip": clip, "scale_bits": bits})
    return out


MAX_DRAW = (2**32 - 1) / 2**32
HALF = 0x36800000  # 2^-18: with w = 3 and b = 17, v = 1.5 exactly
EDGES = [  # (float32 bit pattern, draw) for w = 3, c = 1, b = 17
    (0x00000000, 0.0),  # 0
    (0x80000000, MAX_DRAW),  # −0
    (0x3F000000, 0.25),  # 0.5: v an integer, the draw never matters
    (0xBF000000, 0.75),  # −0.5
    (0x3FC00000, 0.0),  # 1.5, clamped to 1
    (0xC0000000, MAX_DRAW),  # −2, clamped to −1
    (0x7F7FFFFF, 0.0),  # the largest float32, clamped
    (0xFF7FFFFF, MAX_DRAW),
    (0x3F800000, 0.0),  # 1
    (0xBF800000, MAX_DRAW),  # −1
    (0x3F7FFFFF, 0.5),  # 1 − 2^-24
    (0x3EAAAAAB, 0.5),  # 1/3
    (0x00000001, 0.0),  # the smallest subnormal: v just above 0, rounds up on draw 0
    (0x80000001, 0.0),
    (0x00000001, MAX_DRAW),
    (0x80000001, MAX_DRAW),
    (0x2E800000, 0.0),  # 2^-34
    (0xAE800000, MAX_DRAW),
    (HALF, 0.5),  # v = 1.5: up only if r < 0.5
    (HALF, 0.5 - 2**-32),
    (HALF | 0x80000000, 0.5),  # v = −1.5
    (HALF | 0x80000000, 0.5 - 2**-32),
    (HALF, 0.0),
    (HALF | 0x80000000, MAX_DRAW),
    (0x358637BD, 0.0),  # 1e-6
    (0xB58637BD, 0.0),
    (0x358637BD, MAX_DRAW),
    (0xB58637BD, MAX_DRAW),
]
QUANTIZE: list[tuple[float, int, int, np.ndarray, list[float]]] = [  # clip, bits, w, values, draws
    (1.0, 17, 3, from_bits(*(b for b, _ in EDGES)), [d for _, d in EDGES]),
    (
        0.1,
        21,
        1024,
        spread("quantize B", 16, 0.2),
        [draw("quantize B draws", i) for i in range(16)],
    ),
    (2.5, 8, 1, spread("quantize C", 12, 3.0), [draw("quantize C draws", i) for i in range(12)]),
    (
        1.0,
        30,
        1,
        from_bits(0x3F800000, 0xBF800000, 0x3F7FFFFF, 0xBF7FFFFF, 0x30800000, 0xB0800000),
        [MAX_DRAW, MAX_DRAW, 0.5, 0.5, 0.0, 0.0],
    ),
    (1.0, 17, 7, np.zeros(0, np.float32), []),  # no values: the weight word alone
]


def quantize_cases() -> list[dict[str, Any]]:
    out = []
    for clip, bits, w, values, draws in QUANTIZE:
        assert len(values) == len(draws) and all(d * 2**32 == int(d * 2**32) for d in draws)
        words = quantize(values, w, clip, bits, np.array(draws, dtype=np.float64))
        out.append(
            {
                "clip": clip,
                "scale_bits": bits,
                "weight": w,
                "values": f32_bits(values),
                "draws": draws,
                "words": [int(x) for x in words],
            }
        )
    return out


def decode_cases() -> list[dict[str, Any]]:
    sums = [
        (17, quantize(*_first_quantize())),
        (8, np.array([10, 0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 256, 0xFFFFFF00], np.uint32)),
        (30, np.array([1, 2**30, 2**32 - 2**30, 3, 2**32 - 3], np.uint32)),
        (17, np.array([5], np.uint32)),
    ]
    out = []
    for bits, words in sums:
        signed = [int(x) - 2**32 if x >= 2**31 else int(x) for x in words[1:]]
        out.append(
            {
                "scale_bits": bits,
                "words": [int(x) for x in words],
                "weight": int(words[0]),
                "values": [s / 2**bits for s in signed],
            }
        )
    return out


def _first_quantize() -> tuple[np.ndarray, int, float, int, np.ndarray]:
    clip, bits, w, values, draws = QUANTIZE[0]
    return values, w, clip, bits, np.array(draws, dtype=np.float64)


ENCRYPTION = [  # sender (id, position), recipient id, task, round
    (("p2", 2), "p5", "mnist", 3),
    (("p5", 5), "p2", "mnist", 3),  # the other direction: same key, another nonce
    (("zoé", 1), "名前", "tâche-ü", 0),
]


def share_encryption_cases() -> list[dict[str, Any]]:
    out = []
    for (sender, position), recipient, task, r in ENCRYPTION:
        c_private, peer = scalar(f"c {sender}"), scalar(f"c {recipient}")
        b_share = split(digest(f"b {sender}"), 2, 5, [coefficient(f"b {sender} 1")])[4]
        s_share = split(scalar(f"s {sender}"), 2, 5, [coefficient(f"s {sender} 1")])[4]
        plaintext = b_share.y + s_share.y
        peer_public = private_key_from_bytes(peer).public_key()
        key = share_encryption_key(
            private_key_from_bytes(c_private), peer_public, round_salt(task, r)
        )
        envelope = seal_shares(
            key, b_share.y, s_share.y, from_position=position, sender=sender, recipient=recipient
        )
        out.append(
            {
                "c_private": c_private.hex(),
                "peer_public": public(peer).hex(),
                "task": task,
                "round": r,
                "from_position": position,
                "from": sender,
                "to": recipient,
                "plaintext": plaintext.hex(),
                "ciphertext": envelope.hex(),
            }
        )
    return out


def masking_cases() -> list[dict[str, Any]]:
    task, r, ids = "mnist", 3, ["p1", "p2", "p3", "p4"]
    salt, bits = round_salt(task, r), scale_bits(len(ids), 1024, 1.0)
    s_keys = [scalar(f"mask s {i}") for i in ids]
    roster = [
        (pos, private_key_from_bytes(k).public_key()) for pos, k in enumerate(s_keys, start=1)
    ]
    people, masked = [], []
    for pos, (pid, s_key) in enumerate(zip(ids, s_keys, strict=True), start=1):
        values = spread(f"mask values {pid}", 6, 1.2)
        draws = np.array([draw(f"mask draws {pid}", i) for i in range(6)], dtype=np.float64)
        words = quantize(values, 100 * pos, 1.0, bits, draws)
        seed = digest(f"mask b {pid}")
        private = private_key_from_bytes(s_key)
        assert private_key_to_bytes(private) == s_key
        masked.append(masked_input(words, pos, private, roster, seed, salt))
        people.append(
            {
                "id": pid,
                "position": pos,
                "s_private": s_key.hex(),
                "s_public": public(s_key).hex(),
                "self_seed": seed.hex(),
                "input": [int(x) for x in words],
            }
        )
    total = np.sum(masked, axis=0, dtype=np.uint32)
    inputs = np.sum([p["input"] for p in people], axis=0, dtype=np.uint64) % 2**32
    assert total.tolist() != inputs.tolist()  # the self-masks are still in
    return [
        {
            "task": task,
            "round": r,
            "participants": people,
            "masked": [[int(x) for x in m] for m in masked],
            "sum": [int(x) for x in total],
        }
    ]


def build() -> dict[str, Any]:
    return {
        "about": (
            "Secure aggregation's primitives as Python (disco.secure) and the browser "
            "(web/src/core/secure) must both compute them — round salt, HKDF, ECDH, mask stream, "
            "Shamir shares, scale rule, quantisation, decoding, share encryption, masked inputs "
            "— as documented in docs/secure_aggregation.md; written by tests/vectors/secure.py."
        ),
        "salt": salts(),
        "hkdf": hkdf_cases(),
        "ecdh": ecdh_cases(),
        "stream": stream_cases(),
        "shamir": shamir_cases(),
        "scale": scale_cases(),
        "quantize": quantize_cases(),
        "decode": decode_cases(),
        "share_encryption": share_encryption_cases(),
        "masking": masking_cases(),
    }


def render() -> str:
    """The file's exact text."""
    doc = build()
    text = dump(doc) + "\n"
    assert json.loads(text) == doc
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the vectors file, or with --check compare it with what the code produces."""
    return write_or_check(PATH, render, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
