"""A participant's side of one secure round: keys, shares, masked input, reveal.

The four phases of docs/secure_aggregation.md §10, as a participant lives them. Each method is one
phase's answer to what the coordinator sent; the class keeps what the round needs and refuses,
with `SecureAggregationError`, anything that would reveal more than the protocol allows:

1. `keys()`: two fresh P-256 public keys (``c`` encrypts shares to it, ``s`` agrees masks);
2. `share(setup)`: once the roster is fixed, a fresh self-mask seed b_u, and for every other
   member an envelope holding its Shamir shares of b_u and of the ``s`` private scalar, plus a
   commitment to b_u;
3. `receive(envelopes)` then `mask(words, senders)`: the shares addressed to it are opened and
   kept; the masked input carries pairwise masks with exactly the members that sent shares;
4. `reveal(survivors, dropped)`: for each survivor its share of b_v, for each dropped member its
   share of the ``s`` scalar — never both for one member, never for a different split of the
   same round, and only if the survivors are enough to unmask (at least t).

Nothing here does I/O: the federated client and the peers carry the messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from disco.errors import SecureAggregationError
from disco.secure.envelope import open_shares, seal_shares
from disco.secure.keys import (
    generate_private_key,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    round_salt,
    share_encryption_key,
)
from disco.secure.masking import masked_input
from disco.secure.roster import RoundSetup, check_roster, commitment, positions
from disco.secure.shamir import split
from disco.secure.stream import Words

__all__ = ["RevealedShare", "SecureParticipant", "SharesOut"]

ShareKind = Literal["self", "key"]
RevealedShare = tuple[str, ShareKind, bytes]
"""(member id, "self" for its b share or "key" for its ``s`` scalar share, the 33-byte share)."""


class SharesOut:
    """Phase 2's output: the commitment to b_u and one envelope per other member."""

    def __init__(self, commitment: bytes, envelopes: dict[str, bytes]) -> None:
        self.commitment = commitment
        self.envelopes = envelopes


class SecureParticipant:
    """One participant `me` in round `round` of task `task_id`."""

    def __init__(self, task_id: str, round: int, me: str, *, threshold: int | None = None) -> None:
        self.task_id, self.round, self.me = task_id, round, me
        self._task_threshold = threshold
        self._salt = round_salt(task_id, round)
        self._c = generate_private_key()
        self._s = generate_private_key()
        self._setup: RoundSetup | None = None
        self._seed: bytes | None = None
        self._held: dict[str, tuple[bytes, bytes]] = {}  # member → (share of b, share of s)
        self._senders: tuple[str, ...] | None = None
        self._revealed: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    # -- 1. keys ------------------------------------------------------------------------------
    def keys(self) -> tuple[bytes, bytes]:
        """(c public key, s public key), 65 bytes each."""
        return (
            public_key_to_bytes(self._c.public_key()),
            public_key_to_bytes(self._s.public_key()),
        )

    # -- 2. shares ----------------------------------------------------------------------------
    def share(self, setup: RoundSetup) -> SharesOut:
        """Check the roster, draw b_u and seal this member's shares for every other member."""
        if self._setup is not None:
            raise SecureAggregationError("this participant already shared for this round")
        if (setup.task_id, setup.round) != (self.task_id, self.round):
            raise SecureAggregationError(
                f"a roster for {setup.task_id!r} round {setup.round} reached the secure round of "
                f"{self.task_id!r} round {self.round}"
            )
        check_roster(setup, task_threshold=self._task_threshold)
        me = setup.member(self.me)
        if (me.c_public, me.s_public) != self.keys():
            raise SecureAggregationError("the roster does not carry this participant's keys")
        self._setup = setup
        self._seed = secrets.token_bytes(32)
        n, t = len(setup.members), setup.threshold
        b_shares = split(self._seed, t, n)
        s_shares = split(private_key_to_bytes(self._s), t, n)
        envelopes: dict[str, bytes] = {}
        for member in setup.members:
            b, s = b_shares[member.position - 1].y, s_shares[member.position - 1].y
            if member.id == self.me:
                self._held[self.me] = (b, s)  # its own shares count toward t as well
                continue
            key = share_encryption_key(self._c, public_key_from_bytes(member.c_public), self._salt)
            envelopes[member.id] = seal_shares(
                key, b, s, from_position=me.position, sender=self.me, recipient=member.id
            )
        return SharesOut(commitment(self._seed, self._salt), envelopes)

    # -- 3. masked input ----------------------------------------------------------------------
    def receive(self, envelopes: Mapping[str, bytes]) -> None:
        """Open the envelopes addressed to this participant (sender id → envelope); if one does
        not open, none is kept."""
        setup = self._shared()
        opened: dict[str, tuple[bytes, bytes]] = {}
        for sender, envelope in envelopes.items():
            if sender == self.me or sender in self._held:
                raise SecureAggregationError(f"shares from {sender!r} arrived twice")
            member = setup.member(sender)
            key = share_encryption_key(self._c, public_key_from_bytes(member.c_public), self._salt)
            opened[sender] = open_shares(
                key, envelope, from_position=member.position, sender=sender, recipient=self.me
            )
        self._held.update(opened)  # all or nothing

    def mask(self, words: Words, senders: Sequence[str]) -> Words:
        """The masked input of `words` (this participant's quantised update, `setup.length`
        words), with pairwise masks for exactly the members that sent their shares."""
        setup = self._shared()
        chosen = tuple(sorted(set(senders)))
        if len(chosen) != len(senders):
            raise SecureAggregationError("the members that shared are listed twice")
        if self.me not in chosen:
            raise SecureAggregationError("this participant's own shares are missing from the list")
        lacking = [m for m in chosen if m not in self._held]
        if lacking:
            raise SecureAggregationError(f"no shares were received from {lacking}")
        if len(chosen) < setup.threshold:
            raise SecureAggregationError(
                f"only {len(chosen)} members shared, fewer than the threshold {setup.threshold}"
            )
        if words.dtype != np.uint32 or words.shape != (setup.length,):
            raise SecureAggregationError(
                f"a masked input is {setup.length} uint32 words, got {words.dtype} {words.shape}"
            )
        if self._senders is not None:
            raise SecureAggregationError("this participant already sent its masked input")
        self._senders = chosen
        assert self._seed is not None
        me = setup.member(self.me)
        return masked_input(
            words, me.position, self._s, positions(setup, chosen), self._seed, self._salt
        )

    # -- 4. unmasking -------------------------------------------------------------------------
    def reveal(self, survivors: Sequence[str], dropped: Sequence[str]) -> list[RevealedShare]:
        """Its shares of b_v for every survivor v and of the ``s`` scalar of every dropped
        member d. Refused unless the survivors and the dropped split exactly the members whose
        shares went into its masked input, the survivors (itself among them) reach the
        threshold, and no other split was asked for before."""
        setup = self._shared()
        if self._senders is None:
            raise SecureAggregationError("no masked input was sent: there is nothing to unmask")
        alive, gone = tuple(sorted(set(survivors))), tuple(sorted(set(dropped)))
        if len(alive) != len(survivors) or len(gone) != len(dropped):
            raise SecureAggregationError("a member is listed twice among survivors or dropped")
        if set(alive) & set(gone):
            raise SecureAggregationError(
                f"{sorted(set(alive) & set(gone))} are listed as survivors and as dropped: "
                "revealing both secrets of one member would expose its update"
            )
        if set(alive) | set(gone) != set(self._senders):
            raise SecureAggregationError(
                "survivors and dropped must be exactly the members that shared"
            )
        if self.me not in alive:
            raise SecureAggregationError("this participant is listed as dropped")
        if len(alive) < setup.threshold:
            raise SecureAggregationError(
                f"{len(alive)} survivors cannot unmask (threshold {setup.threshold})"
            )
        if self._revealed is not None and self._revealed != (alive, gone):
            raise SecureAggregationError("another split of this round was asked for before")
        self._revealed = (alive, gone)
        return [(v, "self", self._held[v][0]) for v in alive] + [
            (d, "key", self._held[d][1]) for d in gone
        ]

    def _shared(self) -> RoundSetup:
        if self._setup is None:
            raise SecureAggregationError("the round's roster has not been shared yet")
        return self._setup
