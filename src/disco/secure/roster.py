"""The round's roster: who takes part in a secure round, at which position, with which keys.

The coordinator (the server) fixes the roster once the keys phase ends (docs/secure_aggregation.md
§6): the members in order of participant id, positions 1..n, each with its two public keys, the
threshold t and the round's quantisation (clip range, weight cap, scale bits). Every participant
and the aggregator check it the same way (`check_roster`), so a roster that one would refuse is
refused by all.

The threshold: any t of the round's members can unmask; up to n − t may drop out. It is never
below a strict majority of the roster (`threshold_for`): with t ≤ n/2, two disjoint groups of
survivors could each be asked for a different secret of the same participant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from disco.errors import SecureAggregationError
from disco.secure.keys import PUBLIC_KEY_BYTES, PublicKey, public_key_from_bytes
from disco.secure.quantize import scale_bits

__all__ = [
    "COMMITMENT_BYTES",
    "MIN_MEMBERS",
    "Member",
    "RoundSetup",
    "check_roster",
    "commitment",
    "positions",
    "threshold_for",
]

MIN_MEMBERS = 3
"""The fewest members of a secure round: with two, each could subtract its own update from the
sum and read the other's."""
COMMITMENT_BYTES = 32


@dataclass(frozen=True)
class Member:
    """One member of the roster: its participant id, 1-based position and public keys."""

    id: str
    position: int
    c_public: bytes  # encrypts the shares sent to it (65 bytes, uncompressed SEC1)
    s_public: bytes  # agrees its pairwise masks (65 bytes)


@dataclass(frozen=True)
class RoundSetup:
    """What every member of a secure round must agree on before it shares anything."""

    task_id: str
    round: int
    members: tuple[Member, ...]
    threshold: int
    clip: float
    weight_cap: int
    bits: int  # the scale is 2^bits (docs §3.1)
    length: int  # words of a masked input: 1 (the weight) + the model's values

    def member(self, participant: str) -> Member:
        for m in self.members:
            if m.id == participant:
                return m
        raise SecureAggregationError(f"{participant!r} is not a member of round {self.round}")

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.members]


def threshold_for(n: int, task_threshold: int | None = None) -> int:
    """The threshold of a round of `n` members: the task's, but never below ⌊n/2⌋ + 1. It may
    come out above n (a task asking for more than the round has): `check_roster` refuses that."""
    majority = n // 2 + 1
    return max(majority, task_threshold or 0)


def commitment(seed: bytes, salt: bytes) -> bytes:
    """SHA-256(salt ‖ b_u): sent with the shares, so that the aggregator can tell a self-mask
    seed rebuilt from wrong shares instead of unmasking with it."""
    return hashlib.sha256(salt + seed).digest()


def check_roster(setup: RoundSetup, *, task_threshold: int | None = None) -> dict[str, PublicKey]:
    """Check a round's setup as every member and the aggregator must; return each member's
    ``s`` public key by id. Raises `SecureAggregationError` saying what is wrong."""
    members = setup.members
    n = len(members)
    if n < MIN_MEMBERS:
        raise SecureAggregationError(
            f"a secure round needs at least {MIN_MEMBERS} members, this one has {n}"
        )
    ids = [m.id for m in members]
    if ids != sorted(ids) or len(set(ids)) != n:
        raise SecureAggregationError("the roster must list distinct members in order of id")
    if [m.position for m in members] != list(range(1, n + 1)):
        raise SecureAggregationError("the roster's positions must be 1..n in order of id")
    least = threshold_for(n, task_threshold)
    if not least <= setup.threshold <= n:
        raise SecureAggregationError(
            f"a round of {n} members needs a threshold from {least} to {n}, not {setup.threshold}"
        )
    if setup.bits != scale_bits(n, setup.weight_cap, setup.clip):
        raise SecureAggregationError(
            f"the round's scale 2^{setup.bits} is not the one {n} members, weight cap "
            f"{setup.weight_cap} and clip {setup.clip:g} give"
        )
    if setup.length < 1:
        raise SecureAggregationError("a masked input has at least the weight word")
    keys: dict[str, PublicKey] = {}
    seen: set[bytes] = set()
    for m in members:
        for key in (m.c_public, m.s_public):
            if len(key) != PUBLIC_KEY_BYTES or key in seen:
                raise SecureAggregationError(
                    f"{m.id!r} has a malformed or reused public key: every key is fresh"
                )
            seen.add(key)
            public_key_from_bytes(key)  # on the curve
        keys[m.id] = public_key_from_bytes(m.s_public)
    return keys


def positions(setup: RoundSetup, ids: Sequence[str]) -> list[tuple[int, PublicKey]]:
    """(position, ``s`` public key) of the members `ids`, for the masking functions."""
    return [
        (setup.member(i).position, public_key_from_bytes(setup.member(i).s_public)) for i in ids
    ]
