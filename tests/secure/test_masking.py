"""Double masking end to end: the masks cancel in the sum, a dropped participant's masks are
removed from its shares, and a masked vector on its own looks uniformly random."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from disco.errors import SecureAggregationError
from disco.secure import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    masked_input,
    open_shares,
    pairwise_mask,
    pairwise_mask_of_dropped,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    reconstruct,
    round_salt,
    seal_shares,
    self_mask,
    share_encryption_key,
    split,
)

SALT = round_salt("mnist", 3)
CHI2_15_AT_1E_6 = 56.49  # chi-square, 15 degrees of freedom: P(X > 56.49) = 1e-6


@dataclass
class Participant:
    id: str
    position: int
    input: np.ndarray
    c: PrivateKey = field(default_factory=generate_private_key)
    s: PrivateKey = field(default_factory=generate_private_key)
    seed: bytes = field(default_factory=lambda: np.random.default_rng().bytes(32))
    inbox: dict[str, bytes] = field(default_factory=dict)  # envelopes by sender id


def people(n: int, length: int, seed: int) -> list[Participant]:
    rng = np.random.default_rng(seed)
    return [
        Participant(f"p{i}", i, rng.integers(0, 2**32, length, dtype=np.uint32))
        for i in range(1, n + 1)
    ]


def roster(participants: list[Participant]) -> list[tuple[int, PublicKey]]:
    # the public keys as they travel: 65 bytes each way
    return [
        (p.position, public_key_from_bytes(public_key_to_bytes(p.s.public_key())))
        for p in participants
    ]


def masked(p: Participant, everyone: list[Participant]) -> np.ndarray:
    return masked_input(p.input, p.position, p.s, roster(everyone), p.seed, SALT)


def total(vectors: list[np.ndarray]) -> np.ndarray:
    out = np.zeros_like(vectors[0])
    for v in vectors:
        out += v  # uint32: modulo 2^32
    return out


def test_pairwise_masks_cancel_in_the_sum_of_five() -> None:
    everyone = people(5, 1000, seed=1)

    sent = [masked(p, everyone) for p in everyone]

    assert all(not np.array_equal(m, p.input) for m, p in zip(sent, everyone, strict=True))
    self_masks = [self_mask(p.seed, 1000, SALT) for p in everyone]
    assert np.array_equal(total(sent) - total(self_masks), total([p.input for p in everyone]))
    pairwise = [pairwise_mask(p.position, p.s, roster(everyone), 1000, SALT) for p in everyone]
    assert not np.any(total(pairwise))


def test_a_participant_that_drops_after_its_shares_is_unmasked_from_t_survivors() -> None:
    everyone, t, length = people(5, 257, seed=2), 3, 257
    dropped = everyone[2]  # p3: sends its shares, never its masked input
    # round 1: each participant shares b_u and its s scalar, one sealed pair per other participant
    for u in everyone:
        b_shares = split(u.seed, t, len(everyone))
        s_shares = split(private_key_to_bytes(u.s), t, len(everyone))
        for v in everyone:
            if v is not u:
                key = share_encryption_key(u.c, v.c.public_key(), SALT)
                v.inbox[u.id] = seal_shares(
                    key,
                    b_shares[v.position - 1].y,
                    s_shares[v.position - 1].y,
                    from_position=u.position,
                    sender=u.id,
                    recipient=v.id,
                )
        u.inbox[u.id + " own"] = b_shares[u.position - 1].y + s_shares[u.position - 1].y
    survivors = [p for p in everyone if p is not dropped]
    # round 2: the survivors' masked inputs; the aggregator sums them
    s_total = total([masked(p, everyone) for p in survivors])

    def shares_of(
        owner: Participant, which: int, holders: list[Participant]
    ) -> list[tuple[int, bytes]]:
        out = []
        for h in holders:
            if h is owner:
                pair = (h.inbox[h.id + " own"][:33], h.inbox[h.id + " own"][33:])
            else:
                key = share_encryption_key(h.c, owner.c.public_key(), SALT)
                pair = open_shares(
                    key,
                    h.inbox[owner.id],
                    from_position=owner.position,
                    sender=owner.id,
                    recipient=h.id,
                )
            out.append((h.position, pair[which]))
        return out

    # round 3: t survivors hand over the dropped one's s share and each survivor's b share
    helpers = [survivors[3], survivors[0], survivors[2]]
    s_scalar = reconstruct(shares_of(dropped, 1, helpers), t)
    assert s_scalar == private_key_to_bytes(dropped.s)
    s_total -= pairwise_mask_of_dropped(s_scalar, roster(survivors), dropped.position, length, SALT)
    for p in survivors:
        seed = reconstruct(shares_of(p, 0, helpers), t)
        s_total -= self_mask(seed, length, SALT)

    assert np.array_equal(s_total, total([p.input for p in survivors]))


def test_removing_the_wrong_participants_masks_does_not_unmask() -> None:
    everyone = people(4, 64, seed=3)
    survivors = everyone[1:]
    s_total = total([masked(p, everyone) for p in survivors])
    s_total -= total([self_mask(p.seed, 64, SALT) for p in survivors])
    wrong = private_key_to_bytes(everyone[1].s)  # a survivor's key, not the dropped one's

    s_total -= pairwise_mask_of_dropped(wrong, roster(survivors), 1, 64, SALT)

    assert not np.array_equal(s_total, total([p.input for p in survivors]))


def test_a_masked_vector_is_uniform_and_hides_the_input() -> None:
    everyone = people(3, 1 << 16, seed=4)
    everyone[0].input = np.zeros(1 << 16, dtype=np.uint32)  # as far from uniform as it gets
    everyone[0].seed = bytes(range(32))

    sent = masked(everyone[0], everyone)

    counts = np.bincount(sent >> 28, minlength=16)  # the top 4 bits: 16 bins
    expected = sent.size / 16
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < CHI2_15_AT_1E_6, counts
    low = np.bincount(sent & 0xF, minlength=16)  # and the low 4 bits
    assert float(np.sum((low - expected) ** 2 / expected)) < CHI2_15_AT_1E_6, low
    assert np.count_nonzero(sent == everyone[0].input) < 10


def test_a_repeated_position_in_the_roster_is_refused() -> None:
    a, b = generate_private_key(), generate_private_key()
    twice = [(1, a.public_key()), (2, b.public_key()), (2, b.public_key())]
    with pytest.raises(SecureAggregationError, match="position 2 appears twice"):
        masked_input(np.zeros(4, np.uint32), 1, a, twice, bytes(32), SALT)


def test_a_masked_input_is_made_from_a_uint32_vector() -> None:
    a = generate_private_key()
    with pytest.raises(SecureAggregationError, match="uint32"):
        masked_input(np.zeros(4, np.int64), 1, a, [], bytes(32), SALT)
