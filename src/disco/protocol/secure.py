"""The messages of secure aggregation (capability ``secure_aggregation``; docs/protocol.md §19).

A secure round has four phases (docs/secure_aggregation.md §10); in each, a participant sends one
message and the server answers the round's members with one:

| phase | participant → server | server → participant |
|---|---|---|
| keys | `SecureKeys` | `SecureSetup` (the roster) |
| shares | `SecureShares` | `SecureInbox` (the envelopes addressed to it) |
| masked input | `SecureInput` | `SecureUnmask` (survivors and dropped) |
| unmasking | `SecureReveal` | `RoundResult`, as in every federated round |

`SecureAbort` ends a round that has too few members left; the next round starts. Keys, envelopes,
commitments, shares and masked words travel as msgpack binary.

In a decentralized session (§19.1) every peer aggregates: the masked inputs go peer to peer
(`PeerMasked`, never through the server), and once the threshold of survivors revealed their
shares the server relays them to every member (`SecureReveals`) instead of unmasking anything.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from disco.protocol.messages import MAX_SAFE_INT, _Msg
from disco.protocol.peers import MAX_ROUND_PEERS, Digest, PeerId, PeerIds, _distinct

__all__ = [
    "KEYS_S",
    "SECURE_TYPES",
    "SHARES_S",
    "UNMASK_S",
    "PeerMasked",
    "SecureAbort",
    "SecureCommitment",
    "SecureEnvelope",
    "SecureInbox",
    "SecureInput",
    "SecureKeys",
    "SecureMember",
    "SecureReveal",
    "SecureRevealed",
    "SecureReveals",
    "SecureSetup",
    "SecureShare",
    "SecureShares",
    "SecureUnmask",
]

PUBLIC_KEY = Field(min_length=65, max_length=65, description="P-256 point, uncompressed SEC1")
ENVELOPE = Field(min_length=82, max_length=82, description="AES-256-GCM of two 33-byte shares")
MAX_WORDS = 2**31 // 4
"""Most words a masked input may carry (a frame stays under 2 GiB; servers limit frames lower)."""
KEYS_S = 30.0
"""How long the keys phase waits for the connected participants once enough have sent keys."""
SHARES_S = 30.0
"""How long the shares phase waits for the roster's members."""
UNMASK_S = 30.0
"""How long the unmasking phase waits for the survivors' shares."""


class SecureKeys(_Msg):
    """Phase 1: this participant's two fresh public keys for round `round`."""

    type: Literal["secure_keys"] = "secure_keys"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    c_public: bytes = PUBLIC_KEY
    s_public: bytes = PUBLIC_KEY


class SecureMember(_Msg):
    """One member of the round's roster."""

    id: str = PeerId
    position: int = Field(ge=1, le=MAX_ROUND_PEERS)
    c_public: bytes = PUBLIC_KEY
    s_public: bytes = PUBLIC_KEY


class SecureSetup(_Msg):
    """The roster of round `round` and its quantisation (docs/secure_aggregation.md §3, §6)."""

    type: Literal["secure_setup"] = "secure_setup"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    members: list[SecureMember] = Field(min_length=1, max_length=MAX_ROUND_PEERS)
    threshold: int = Field(ge=1, le=MAX_ROUND_PEERS)
    clip: float = Field(gt=0, le=1e6)
    weight_cap: int = Field(ge=1, le=65_536)
    bits: int = Field(ge=0, le=64, description="the scale is 2^bits")
    length: int = Field(ge=1, le=MAX_WORDS, description="words of a masked input")


class SecureEnvelope(_Msg):
    """An envelope of shares; `peer` is its recipient (in `SecureShares`) or its sender (in
    `SecureInbox`)."""

    peer: str = PeerId
    data: bytes = ENVELOPE


class SecureShares(_Msg):
    """Phase 2: a commitment to this member's self-mask seed and an envelope for every other."""

    type: Literal["secure_shares"] = "secure_shares"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    commitment: bytes = Field(min_length=32, max_length=32)
    envelopes: list[SecureEnvelope] = Field(max_length=MAX_ROUND_PEERS)

    @field_validator("envelopes")
    @classmethod
    def _one_each(cls, value: list[SecureEnvelope]) -> list[SecureEnvelope]:
        _distinct([e.peer for e in value])
        return value


class SecureInbox(_Msg):
    """The members that shared (`senders`, each masks with exactly these) and the envelopes
    addressed to this member."""

    type: Literal["secure_inbox"] = "secure_inbox"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    senders: list[str] = PeerIds
    envelopes: list[SecureEnvelope] = Field(max_length=MAX_ROUND_PEERS)

    _check = field_validator("senders")(_distinct)


class SecureInput(_Msg):
    """Phase 3: this member's masked input, `length` uint32 words, little-endian."""

    type: Literal["secure_input"] = "secure_input"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    words: bytes = Field(min_length=4, max_length=4 * MAX_WORDS)


class SecureUnmask(_Msg):
    """Phase 4: reveal the shares of `survivors`' seeds and of `dropped`'s keys."""

    type: Literal["secure_unmask"] = "secure_unmask"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    survivors: list[str] = PeerIds
    dropped: list[str] = PeerIds

    _check = field_validator("survivors", "dropped")(_distinct)


class SecureShare(_Msg):
    """This member's share of `of`'s self-mask seed (``self``) or ``s`` key (``key``)."""

    of: str = PeerId
    kind: Literal["self", "key"]
    share: bytes = Field(min_length=33, max_length=33)


class SecureReveal(_Msg):
    """Phase 4's answer: one share per survivor (``self``) and per dropped member (``key``)."""

    type: Literal["secure_reveal"] = "secure_reveal"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    shares: list[SecureShare] = Field(max_length=MAX_ROUND_PEERS)


class SecureCommitment(_Msg):
    """A member's commitment to its self-mask seed, as it sent it in `SecureShares`."""

    peer: str = PeerId
    commitment: bytes = Field(min_length=32, max_length=32)


class SecureRevealed(_Msg):
    """One survivor's `SecureReveal` shares, as the server relays them."""

    peer: str = PeerId
    shares: list[SecureShare] = Field(max_length=MAX_ROUND_PEERS)


class SecureReveals(_Msg):
    """Decentralized sessions: the split of round `round`, the survivors' commitments and the
    shares of exactly `threshold` survivors — each peer unmasks the sum itself."""

    type: Literal["secure_reveals"] = "secure_reveals"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    survivors: list[str] = PeerIds
    dropped: list[str] = PeerIds
    commitments: list[SecureCommitment] = Field(max_length=MAX_ROUND_PEERS)
    reveals: list[SecureRevealed] = Field(max_length=MAX_ROUND_PEERS)

    _check = field_validator("survivors", "dropped")(_distinct)

    @field_validator("commitments", "reveals")
    @classmethod
    def _one_each(cls, value: list[Any]) -> list[Any]:
        _distinct([e.peer for e in value])
        return value


class PeerMasked(_Msg):
    """Decentralized sessions, peer to peer: the sender's masked input of round `round`
    (`length` uint32 words, little-endian) and the SHA-256 of those bytes (lowercase hex)."""

    type: Literal["peer_masked"] = "peer_masked"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    words: bytes = Field(min_length=4, max_length=4 * MAX_WORDS)
    digest: str = Digest


class SecureAbort(_Msg):
    """Round `round` ended without a result: too few members were left (`reason` says where)."""

    type: Literal["secure_abort"] = "secure_abort"
    round: int = Field(ge=0, le=MAX_SAFE_INT)
    reason: str = Field(max_length=1000)


SECURE_TYPES = frozenset(
    {
        "secure_keys",
        "secure_setup",
        "secure_shares",
        "secure_inbox",
        "secure_input",
        "secure_unmask",
        "secure_reveal",
        "secure_abort",
        "secure_reveals",
        "peer_masked",
    }
)
"""Message types that belong to capability ``secure_aggregation``."""
