"""Shamir sharing over GF(2^256 + 297): any t shares give the secret, fewer give nothing."""

from __future__ import annotations

import itertools
import secrets

import pytest

from disco.errors import SecureAggregationError
from disco.secure import PRIME, SHARE_BYTES, reconstruct, split


def test_the_modulus_is_the_smallest_prime_above_2_to_the_256() -> None:
    def probably_prime(m: int) -> bool:  # Miller–Rabin with fixed bases
        d, r = m - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
            x = pow(a, d, m)
            if x in (1, m - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, m)
                if x == m - 1:
                    break
            else:
                return False
        return True

    assert PRIME == 2**256 + 297
    assert probably_prime(PRIME)
    assert not any(probably_prime(2**256 + k) for k in range(1, 297, 2))


def test_every_t_subset_gives_the_secret_back() -> None:
    secret = secrets.token_bytes(32)
    shares = split(secret, 3, 6)

    assert [s.x for s in shares] == [1, 2, 3, 4, 5, 6]
    assert all(len(s.y) == SHARE_BYTES for s in shares)
    for subset in itertools.combinations(shares, 3):
        assert reconstruct(list(subset), 3) == secret
    assert reconstruct(shares[::-1], 3) == secret  # more than t: the first t are used


def test_fewer_than_t_shares_are_refused_and_a_wrong_one_gives_another_secret() -> None:
    secret = secrets.token_bytes(32)
    shares = split(secret, 4, 5)

    with pytest.raises(SecureAggregationError, match="takes 4 shares, only 3 given"):
        reconstruct(shares[:3], 4)
    forged = (5, secrets.randbelow(PRIME).to_bytes(SHARE_BYTES, "big"))
    try:
        assert reconstruct([*shares[:3], forged], 4) != secret
    except SecureAggregationError as exc:  # or a value that is not 32 bytes (probability ~2^-248)
        assert "do not belong to one secret" in str(exc)


def test_t_minus_1_shares_fit_every_secret_equally() -> None:
    # with t − 1 = 1 share of a t = 2 sharing, every secret has a polynomial through that share
    secret, other = bytes(32), b"\x01" * 32
    share = split(secret, 2, 3, [12345])[0]
    slope = (int.from_bytes(share.y, "big") - int.from_bytes(other, "big")) % PRIME
    assert split(other, 2, 3, [slope])[0] == share


def test_a_threshold_of_one_shares_the_secret_itself() -> None:
    secret = secrets.token_bytes(32)
    assert {s.y for s in split(secret, 1, 3)} == {b"\x00" + secret}


@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ([(1, bytes(33)), (1, bytes(33))], "same x"),
        ([(0, bytes(33)), (1, bytes(33))], "position ≥ 1"),
        ([(1, bytes(32)), (2, bytes(33))], "not 33 bytes"),
        ([(1, PRIME.to_bytes(33, "big")), (2, bytes(33))], "not below p"),
    ],
)
def test_malformed_shares_are_refused(shares: list[tuple[int, bytes]], match: str) -> None:
    with pytest.raises(SecureAggregationError, match=match):
        reconstruct(shares, 2)


def test_bad_splits_are_refused() -> None:
    with pytest.raises(SecureAggregationError, match="at least 3 shares"):
        split(bytes(32), 3, 2)
    with pytest.raises(SecureAggregationError, match="takes 1 coefficients"):
        split(bytes(32), 2, 3, [1, 2])
    with pytest.raises(SecureAggregationError, match=r"in \[0, p\)"):
        split(bytes(32), 2, 3, [PRIME])
    with pytest.raises(SecureAggregationError, match="32 bytes"):
        split(bytes(31), 2, 3)
