"""The aggregator's side of one secure round: it learns the sum, and only the sum.

`SecureSum` follows the four phases of docs/secure_aggregation.md §10 for whoever aggregates (the
server of a federated task, every peer of a decentralized one):

1. keys: `add_keys` from each participant, then `setup()` fixes the roster (members by id,
   positions, threshold, scale);
2. shares: `add_shares` from each member (a commitment to its self-mask seed and one envelope per
   other member); `close_shares()` fixes the members that shared and `inbox(member)` hands each
   the envelopes addressed to it;
3. masked inputs: `add_masked` folds each masked vector into a running sum modulo 2^32 (memory:
   one vector, whatever the number of members); `close_masked()` splits the members that shared
   into survivors and dropped;
4. unmasking: `add_reveal` from survivors; once t have answered, `result()` rebuilds each
   survivor's self-mask seed (checked against its commitment) and each dropped member's ``s``
   scalar (checked against its public key), removes their masks and returns Σ y over the
   survivors, exactly.

Fewer than t members at any phase raise `RoundAborted`: nothing more is asked for and nothing
is revealed. Input from a non-member, twice, of the wrong size or at the wrong phase is refused
with `SecureAggregationError` and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence

import numpy as np

from disco.errors import SecureAggregationError
from disco.secure.envelope import ENVELOPE_BYTES
from disco.secure.keys import (
    PUBLIC_KEY_BYTES,
    private_key_from_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    round_salt,
)
from disco.secure.masking import pairwise_mask_of_dropped, self_mask
from disco.secure.participant import RevealedShare
from disco.secure.quantize import scale_bits
from disco.secure.roster import (
    COMMITMENT_BYTES,
    MIN_MEMBERS,
    Member,
    RoundSetup,
    check_roster,
    commitment,
    positions,
    threshold_for,
)
from disco.secure.shamir import SHARE_BYTES, reconstruct
from disco.secure.stream import Words

__all__ = ["RoundAborted", "SecureSum"]


_NO_SETUP = RoundSetup("", 0, (), 0, 1.0, 1, 0, 1)


class RoundAborted(SecureAggregationError):
    """Too few members are left to go on: the round ends with nothing revealed."""


class SecureSum:
    """One secure round of `task_id` as its aggregator sees it."""

    def __init__(
        self,
        task_id: str,
        round: int,
        *,
        values: int,
        clip: float,
        weight_cap: int,
        threshold: int | None = None,
    ) -> None:
        self.task_id, self.round = task_id, round
        self._salt = round_salt(task_id, round)
        self._values, self._clip, self._cap = values, clip, weight_cap
        self._task_threshold = threshold
        self._keys: dict[str, tuple[bytes, bytes]] = {}
        self._setup: RoundSetup | None = None
        self._commitments: dict[str, bytes] = {}
        self._envelopes: dict[str, dict[str, bytes]] = {}  # sender → recipient → envelope
        self._senders: tuple[str, ...] | None = None
        self._sum: Words | None = None
        self._masked: set[str] = set()
        self._split: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._reveals: dict[str, dict[tuple[str, str], bytes]] = {}

    @classmethod
    def following(
        cls, setup: RoundSetup, senders: Sequence[str], commitments: Mapping[str, bytes]
    ) -> SecureSum:
        """A peer's aggregator in a decentralized round (docs/protocol.md §19.1): the roster, the
        members that shared and their commitments come from the coordinator, and the round
        starts at its masked-inputs phase. The peer adds the survivors' masked inputs (its own
        among them), closes the phase, adds the relayed reveals and takes `result()`; every
        check of the phases it runs is the federated server's."""
        chosen = tuple(sorted(set(senders)))
        if len(chosen) != len(senders) or not set(chosen) <= set(setup.ids):
            raise SecureAggregationError("the senders must be distinct members of the roster")
        if any(len(c) != COMMITMENT_BYTES for c in commitments.values()):
            raise SecureAggregationError(f"a commitment is {COMMITMENT_BYTES} bytes")
        if not set(commitments) <= set(chosen):
            raise SecureAggregationError("commitments may come only from members that shared")
        round = cls(
            setup.task_id,
            setup.round,
            values=setup.length - 1,
            clip=setup.clip,
            weight_cap=setup.weight_cap,
        )
        round._setup, round._senders = setup, chosen
        round._commitments = {m: bytes(c) for m, c in commitments.items()}
        return round

    @property
    def phase(self) -> str:
        """ "keys", "shares", "masked", "unmasking"."""
        if self._setup is None:
            return "keys"
        if self._senders is None:
            return "shares"
        return "masked" if self._split is None else "unmasking"

    # -- what the round holds (for the session's phase logic) -----------------------------------
    @property
    def keys(self) -> list[str]:
        """The participants that sent keys."""
        return list(self._keys)

    @property
    def setup_ids(self) -> list[str]:
        """The roster's members (empty before `setup`)."""
        return [] if self._setup is None else self._setup.ids

    @property
    def threshold(self) -> int:
        return 0 if self._setup is None else self._setup.threshold

    @property
    def bits(self) -> int:
        return 0 if self._setup is None else self._setup.bits

    @property
    def shared(self) -> list[str]:
        """The members whose shares arrived."""
        return list(self._envelopes)

    @property
    def senders(self) -> tuple[str, ...]:
        """The members that shared, once the shares phase is closed."""
        return self._senders or ()

    @property
    def split(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(survivors, dropped), once the masked inputs are closed."""
        return self._split or ((), ())

    @property
    def revealers(self) -> set[str]:
        """The survivors whose shares arrived."""
        return set(self._reveals)

    # -- 1. keys ------------------------------------------------------------------------------
    def add_keys(
        self, participant: str, c_public: bytes, s_public: bytes, *, replace: bool = False
    ) -> None:
        """Take a participant's keys; with `replace`, newer keys of the same participant (it
        reconnected before the roster was fixed) take the place of its earlier ones."""
        self._expect("keys")
        if participant in self._keys and not replace:
            raise SecureAggregationError(f"{participant!r} already sent its keys")
        if len(c_public) != PUBLIC_KEY_BYTES or len(s_public) != PUBLIC_KEY_BYTES:
            raise SecureAggregationError(f"public keys are {PUBLIC_KEY_BYTES} bytes each")
        self._keys[participant] = (bytes(c_public), bytes(s_public))

    def setup(self, present: Container[str] | None = None) -> RoundSetup:
        """Fix the roster from the keys received (a malformed key leaves its sender out; a key
        sent by more than one participant, or as both keys, leaves out all who sent it).
        `RoundAborted` if fewer than 3 members, or than the task's threshold, remain. With
        `present`, only the participants in it are taken (those still connected). When more sent
        keys than the 32-bit ring holds with the weight cap and clip range (§3.1), the first to
        send theirs are taken."""
        self._expect("keys")
        usable: dict[str, tuple[bytes, bytes]] = {}
        uses = Counter(key for pair in self._keys.values() for key in pair)
        for participant in self._keys:  # in the order the keys came
            if present is not None and participant not in present:
                continue
            c, s = self._keys[participant]
            if uses[c] > 1 or uses[s] > 1:  # a copied key leaves out everyone who sent it
                continue
            try:
                for key in (c, s):
                    if public_key_to_bytes(public_key_from_bytes(key)) != key:
                        raise SecureAggregationError("not canonical")
            except SecureAggregationError:
                continue
            usable[participant] = (c, s)
        n = len(usable)
        least = max(MIN_MEMBERS, self._task_threshold or 0)
        if n < least:
            raise RoundAborted(
                f"only {n} participants sent usable keys; a secure round needs at least {least}"
            )
        while n > least and not _fits(n, self._cap, self._clip):
            n -= 1  # the ring holds fewer: the first to send their keys take part
        if not _fits(n, self._cap, self._clip):
            raise RoundAborted(
                f"a round of {n} does not fit the 32-bit ring with weight cap {self._cap} and "
                f"clip {self._clip:g}"
            )
        kept = sorted(list(usable.items())[:n])
        members = tuple(Member(p, i + 1, c, s) for i, (p, (c, s)) in enumerate(kept))
        setup = RoundSetup(
            task_id=self.task_id,
            round=self.round,
            members=members,
            threshold=threshold_for(n, self._task_threshold),
            clip=self._clip,
            weight_cap=self._cap,
            bits=scale_bits(n, self._cap, self._clip),
            length=1 + self._values,
        )
        check_roster(setup, task_threshold=self._task_threshold)
        self._setup = setup
        return setup

    # -- 2. shares ----------------------------------------------------------------------------
    def add_shares(self, member: str, commitment: bytes, envelopes: Mapping[str, bytes]) -> None:
        setup = self._expect("shares")
        setup.member(member)
        if member in self._envelopes:
            raise SecureAggregationError(f"{member!r} already sent its shares")
        others = set(setup.ids) - {member}
        if set(envelopes) != others:
            raise SecureAggregationError(
                f"{member!r} must send one envelope to each of the {len(others)} other members"
            )
        if any(len(e) != ENVELOPE_BYTES for e in envelopes.values()):
            raise SecureAggregationError(f"an envelope of shares is {ENVELOPE_BYTES} bytes")
        if len(commitment) != COMMITMENT_BYTES:
            raise SecureAggregationError(f"a commitment is {COMMITMENT_BYTES} bytes")
        self._commitments[member] = bytes(commitment)
        self._envelopes[member] = {to: bytes(e) for to, e in envelopes.items()}

    def close_shares(self) -> tuple[str, ...]:
        """The members that shared (each masks with exactly these); `RoundAborted` below t."""
        setup = self._expect("shares")
        senders = tuple(sorted(self._envelopes))
        if len(senders) < setup.threshold:
            raise RoundAborted(
                f"only {len(senders)} members sent their shares; unmasking needs {setup.threshold}"
            )
        self._senders = senders
        return senders

    def inbox(self, member: str) -> dict[str, bytes]:
        """The envelopes addressed to `member` from the members that shared."""
        if self._senders is None:
            raise SecureAggregationError("the shares phase is not over")
        if self._setup is None or member not in self._setup.ids:
            raise SecureAggregationError(f"{member!r} is not a member of round {self.round}")
        return {s: self._envelopes[s][member] for s in self._senders if s != member}

    # -- 3. masked inputs ---------------------------------------------------------------------
    def add_masked(self, member: str, words: Words) -> None:
        setup = self._expect("masked")
        assert self._senders is not None
        if member not in self._senders:
            raise SecureAggregationError(f"{member!r} did not share: its input cannot be unmasked")
        if member in self._masked:
            raise SecureAggregationError(f"{member!r} already sent its masked input")
        if not isinstance(words, np.ndarray) or words.dtype != np.uint32:
            raise SecureAggregationError("a masked input is a vector of uint32 words")
        if words.shape != (setup.length,):
            raise SecureAggregationError(
                f"a masked input of this round is {setup.length} words, got {words.size}"
            )
        if self._sum is None:
            self._sum = words.copy()
        else:
            np.add(self._sum, words, out=self._sum)  # wraps modulo 2^32
        self._masked.add(member)

    def close_masked(
        self, survivors: Sequence[str] | None = None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(survivors, dropped): who sent a masked input and who shared but did not. The
        coordinator of a decentralized round, which holds no masked input, names the
        `survivors` itself (members that shared)."""
        setup = self._expect("masked")
        assert self._senders is not None
        if survivors is None:
            survivors = tuple(sorted(self._masked))
        else:
            named = tuple(sorted(set(survivors)))
            if len(named) != len(survivors) or not set(named) <= set(self._senders):
                raise SecureAggregationError("survivors must be distinct members that shared")
            if self._masked:
                raise SecureAggregationError("this aggregator holds masked inputs: it names none")
            survivors, self._masked = named, set(named)
        if len(survivors) < setup.threshold:
            raise RoundAborted(
                f"only {len(survivors)} masked inputs arrived; unmasking needs "
                f"{setup.threshold} survivors"
            )
        dropped = tuple(m for m in self._senders if m not in self._masked)
        self._split = (survivors, dropped)
        return self._split

    # -- 4. unmasking -------------------------------------------------------------------------
    def add_reveal(self, member: str, shares: Sequence[RevealedShare]) -> None:
        self._expect("unmasking")
        assert self._split is not None
        survivors, dropped = self._split
        if member not in survivors:
            raise SecureAggregationError(f"{member!r} is not a survivor of this round")
        if member in self._reveals:
            raise SecureAggregationError(f"{member!r} already revealed its shares")
        expected = {(v, "self") for v in survivors} | {(d, "key") for d in dropped}
        given: dict[tuple[str, str], bytes] = {(of, kind): share for of, kind, share in shares}
        if len(given) != len(shares) or set(given) != expected:
            raise SecureAggregationError(
                f"{member!r} must reveal exactly a self share for each survivor and a key "
                "share for each dropped member"
            )
        if any(len(s) != SHARE_BYTES for s in given.values()):
            raise SecureAggregationError(f"a share is {SHARE_BYTES} bytes")
        self._reveals[member] = given

    def commitments(self, members: Sequence[str]) -> dict[str, bytes]:
        """The commitments of these members (those that shared), to relay to peers."""
        return {m: self._commitments[m] for m in members}

    @property
    def reveals(self) -> list[tuple[str, list[RevealedShare]]]:
        """Each survivor's revealed shares, in the order they arrived."""
        return [
            (member, [(of, kind, share) for (of, kind), share in given.items()])  # type: ignore[misc]
            for member, given in self._reveals.items()
        ]

    @property
    def revealed(self) -> int:
        """How many survivors have revealed their shares."""
        return len(self._reveals)

    def result(self) -> Words:
        """Σ y_u over the survivors (modulo 2^32). `RoundAborted` while fewer than t survivors
        revealed, or if a rebuilt secret does not match its commitment or public key (wrong
        shares: nothing is unmasked)."""
        setup = self._expect("unmasking")
        assert self._split is not None and self._sum is not None
        if len(self._reveals) < setup.threshold:
            raise RoundAborted(
                f"only {len(self._reveals)} survivors revealed their shares; unmasking needs "
                f"{setup.threshold}"
            )
        survivors, dropped = self._split
        revealers = sorted(self._reveals, key=lambda m: setup.member(m).position)
        total = self._sum.copy()
        for v in survivors:
            seed = self._rebuild(setup, revealers, v, "self")
            if commitment(seed, self._salt) != self._commitments.get(v):
                raise RoundAborted(
                    f"the self-mask seed of {v!r} rebuilt from the shares does not match its "
                    "commitment: some shares are wrong, nothing is unmasked"
                )
            np.subtract(total, self_mask(seed, setup.length, self._salt), out=total)
        for d in dropped:
            scalar = self._rebuild(setup, revealers, d, "key")
            try:
                key = private_key_from_bytes(scalar)
            except SecureAggregationError as exc:
                raise RoundAborted(f"the key of {d!r} rebuilt from shares is not valid") from exc
            if public_key_to_bytes(key.public_key()) != setup.member(d).s_public:
                raise RoundAborted(
                    f"the key of {d!r} rebuilt from the shares does not match its public key: "
                    "some shares are wrong, nothing is unmasked"
                )
            position = setup.member(d).position
            others = positions(setup, survivors)
            mask = pairwise_mask_of_dropped(scalar, others, position, setup.length, self._salt)
            np.subtract(total, mask, out=total)
        return total

    def _rebuild(self, setup: RoundSetup, revealers: list[str], of: str, kind: str) -> bytes:
        shares = [(setup.member(r).position, self._reveals[r][(of, kind)]) for r in revealers]
        try:
            return reconstruct(shares, setup.threshold)
        except SecureAggregationError as exc:
            raise RoundAborted(
                f"the shares of {of!r} do not rebuild a secret ({exc}): some shares are wrong, "
                "nothing is unmasked"
            ) from exc

    def _expect(self, phase: str) -> RoundSetup:
        """The round's setup, once it is in `phase` (the keys phase has none yet: a placeholder
        that is never read)."""
        if self.phase != phase:
            raise SecureAggregationError(
                f"round {self.round} is in its {self.phase} phase, not {phase}"
            )
        return self._setup or _NO_SETUP


def _fits(n: int, weight_cap: int, clip: float) -> bool:
    """Whether a round of `n` members fits the ring (docs/secure_aggregation.md §3.1)."""
    try:
        scale_bits(n, weight_cap, clip)
    except SecureAggregationError:
        return False
    return True
