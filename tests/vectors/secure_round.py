"""Generate tests/vectors/secure_round.json: one whole secure round, every message of every phase.

    python tests/vectors/secure_round.py           rewrite the file from what the code produces
    python tests/vectors/secure_round.py --check   exit 1 if the committed file differs

tests/vectors/secure_aggregation.json pins the primitives; this file pins how they make a round
(docs/secure_aggregation.md §6, §10), so that a Python aggregator (`disco.secure.SecureSum`) and
browser participants (web/src/core/secure/participant.ts), or browser aggregators and Python
participants, can take part in the same round. It is read by
tests/secure/test_secure_round_vectors.py and web/tests/secure-round.test.ts.

The round: task "mnist", round 3, five members p0..p4 (positions 1..5), the task's threshold 3,
6 values (7 words with the weight), clip 1.0, weight cap 1024.

- p2 sends its keys and its shares, then nothing: it is dropped, and the survivors reveal their
  shares of its ``s`` scalar;
- p4 sends its masked input but does not reveal: p0, p1 and p3 (three, the threshold) unmask.

Each participant's random choices are fixed so the file can be rebuilt exactly — its ``c`` and
``s`` private scalars, its self-mask seed b_u and the Shamir coefficients of both secrets:

- ``digest(label)`` = SHA-256(utf8(label)): self-mask seeds;
- ``scalar(label)`` = int(digest(label), big-endian) mod (n − 1) + 1, n P-256's order: private keys;
- ``coefficient(label)`` = int(digest(label), big-endian) mod p, p = 2^256 + 297;
- ``draw(label, i)`` = int(first 4 bytes of digest(f"{label} {i}"), big-endian) / 2^32: the
  stochastic rounding of each member's update (its words are given; only they matter here).

The participants are built here from the primitives exactly as `SecureParticipant` does it (the
class draws its randomness itself and has no way to be given it); the test checks that the class,
its randomness replaced with these values, sends the same bytes. Their messages are then fed to a
`SecureSum`, whose replies (roster, inboxes, survivors and dropped, the sum) are the file's.

Layout: ``members`` holds each member's fixed secrets and input words (what a participant keeps);
the other sections are the messages, in phase order: ``keys`` (phase 1) and the ``setup`` the
aggregator answers; ``shares`` (phase 2: commitment and one envelope per other member), the
``senders`` and each member's ``inbox``; ``masked`` (phase 3) and the ``survivors``/``dropped``
split; ``reveals`` (phase 4); ``sum``, Σ input over the survivors modulo 2^32; ``model``, the
round's model (one 2 × 3 float32 tensor, by bits), ``total_weight`` (Σ w decoded from the sum)
and ``mean``, the model every aggregator ends the round with (docs/protocol.md §19.1:
G + Σ w·x / Σ w in float64, then float32). A peer of a decentralized round unmasks ``sum`` from
``masked`` and ``reveals`` alone. Hex strings are lowercase without prefix; word vectors are
lists of uint32 integers.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump, write_or_check

from disco.secure import (
    open_shares,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    quantize,
    round_salt,
    scale_bits,
    seal_shares,
    share_encryption_key,
    split,
)
from disco.secure.aggregator import SecureSum
from disco.secure.masking import masked_input
from disco.secure.mean import secure_mean
from disco.secure.participant import RevealedShare
from disco.secure.roster import RoundSetup, check_roster, commitment, positions
from disco.weights import Weights
from secure import coefficient, digest, draw, scalar

PATH = Path(__file__).with_name("secure_round.json")

TASK, ROUND, TASK_THRESHOLD = "mnist", 3, 3
IDS = ("p0", "p1", "p2", "p3", "p4")
VALUES, CLIP, CAP = 6, 1.0, 1024
DROPPED = "p2"  # shares, then sends no masked input
SILENT = "p4"  # sends its masked input, then does not reveal


# -- deterministic inputs: derived from labels as in secure.py -----------------------------------


@dataclass(frozen=True)
class Fixed:
    """What one member draws at random in a round, fixed here."""

    id: str
    c_private: bytes
    s_private: bytes
    seed: bytes  # b_u
    self_coefficients: list[int]  # a_1..a_{t−1} of the polynomial sharing b_u
    key_coefficients: list[int]  # … and of the one sharing the s scalar
    input: np.ndarray  # y_u, the quantised update (1 + VALUES words)


def fixed_members(threshold: int, bits: int) -> list[Fixed]:
    out = []
    for k, pid in enumerate(IDS):
        values = np.array(
            [(2 * draw(f"round values {pid}", i) - 1) * 1.3 for i in range(VALUES)], np.float32
        )
        draws = np.array([draw(f"round draws {pid}", i) for i in range(VALUES)], np.float64)
        out.append(
            Fixed(
                id=pid,
                c_private=scalar(f"round c {pid}"),
                s_private=scalar(f"round s {pid}"),
                seed=digest(f"round b {pid}"),
                self_coefficients=[coefficient(f"round b {pid} {j}") for j in range(1, threshold)],
                key_coefficients=[coefficient(f"round s {pid} {j}") for j in range(1, threshold)],
                input=quantize(values, 17 * k + 5, CLIP, bits, draws),
            )
        )
    return out


# -- one participant, from the primitives, as SecureParticipant does it -------------------------
class Participant:
    """`disco.secure.participant.SecureParticipant` with its randomness given (`Fixed`); its
    refusals are the class's, tested in tests/secure/test_secure_round.py, and left out here."""

    def __init__(self, fixed: Fixed) -> None:
        self.fixed = fixed
        self.salt = round_salt(TASK, ROUND)
        self.c = private_key_from_bytes(fixed.c_private)
        self.s = private_key_from_bytes(fixed.s_private)
        assert private_key_to_bytes(self.s) == fixed.s_private
        self.held: dict[str, tuple[bytes, bytes]] = {}
        self.setup: RoundSetup | None = None

    def keys(self) -> tuple[bytes, bytes]:
        return public_key_to_bytes(self.c.public_key()), public_key_to_bytes(self.s.public_key())

    def share(self, setup: RoundSetup) -> tuple[bytes, dict[str, bytes]]:
        check_roster(setup, task_threshold=TASK_THRESHOLD)
        me = setup.member(self.fixed.id)
        assert (me.c_public, me.s_public) == self.keys()
        self.setup = setup
        n, t = len(setup.members), setup.threshold
        b_shares = split(self.fixed.seed, t, n, self.fixed.self_coefficients)
        s_shares = split(self.fixed.s_private, t, n, self.fixed.key_coefficients)
        envelopes = {}
        for member in setup.members:
            b, s = b_shares[member.position - 1].y, s_shares[member.position - 1].y
            if member.id == me.id:
                self.held[me.id] = (b, s)
                continue
            key = share_encryption_key(self.c, public_key_from_bytes(member.c_public), self.salt)
            envelopes[member.id] = seal_shares(
                key, b, s, from_position=me.position, sender=me.id, recipient=member.id
            )
        return commitment(self.fixed.seed, self.salt), envelopes

    def receive(self, inbox: dict[str, bytes]) -> None:
        assert self.setup is not None
        for sender, envelope in inbox.items():
            member = self.setup.member(sender)
            key = share_encryption_key(self.c, public_key_from_bytes(member.c_public), self.salt)
            self.held[sender] = open_shares(
                key, envelope, from_position=member.position, sender=sender, recipient=self.fixed.id
            )

    def mask(self, senders: tuple[str, ...]) -> np.ndarray:
        assert self.setup is not None and set(senders) <= set(self.held)
        me = self.setup.member(self.fixed.id)
        roster = positions(self.setup, sorted(senders))
        return masked_input(
            self.fixed.input, me.position, self.s, roster, self.fixed.seed, self.salt
        )

    def reveal(self, survivors: tuple[str, ...], dropped: tuple[str, ...]) -> list[RevealedShare]:
        return [(v, "self", self.held[v][0]) for v in survivors] + [
            (d, "key", self.held[d][1]) for d in dropped
        ]


# -- the round ---------------------------------------------------------------------------------
def words(vector: np.ndarray) -> list[int]:
    return [int(x) for x in vector]


def setup_json(setup: RoundSetup) -> dict[str, Any]:
    return {
        "task_id": setup.task_id,
        "round": setup.round,
        "members": [
            {
                "id": m.id,
                "position": m.position,
                "c_public": m.c_public.hex(),
                "s_public": m.s_public.hex(),
            }
            for m in setup.members
        ],
        "threshold": setup.threshold,
        "clip": setup.clip,
        "weight_cap": setup.weight_cap,
        "bits": setup.bits,
        "length": setup.length,
    }


def build() -> dict[str, Any]:
    n = len(IDS)
    threshold = max(n // 2 + 1, TASK_THRESHOLD)
    fixed = fixed_members(threshold, scale_bits(n, CAP, CLIP))
    people = {f.id: Participant(f) for f in fixed}
    agg = SecureSum(TASK, ROUND, values=VALUES, clip=CLIP, weight_cap=CAP, threshold=TASK_THRESHOLD)

    # 1. keys
    keys = []
    for pid in IDS:
        c_public, s_public = people[pid].keys()
        keys.append({"id": pid, "c_public": c_public.hex(), "s_public": s_public.hex()})
        agg.add_keys(pid, c_public, s_public)
    setup = agg.setup()
    assert setup.threshold == threshold and setup.ids == list(IDS)

    # 2. shares
    shares = []
    for pid in IDS:
        commit, envelopes = people[pid].share(setup)
        shares.append(
            {
                "from": pid,
                "commitment": commit.hex(),
                "envelopes": {to: e.hex() for to, e in envelopes.items()},
            }
        )
        agg.add_shares(pid, commit, envelopes)
    senders = agg.close_shares()
    inboxes = []
    for pid in senders:
        inbox = agg.inbox(pid)
        inboxes.append({"to": pid, "envelopes": {s: e.hex() for s, e in inbox.items()}})
        people[pid].receive(inbox)

    # 3. masked inputs: p2 sends none
    masked = []
    for pid in senders:
        if pid != DROPPED:
            vector = people[pid].mask(senders)
            assert not np.array_equal(vector, people[pid].fixed.input)
            masked.append({"from": pid, "words": words(vector)})
            agg.add_masked(pid, vector)
    survivors, dropped = agg.close_masked()
    assert dropped == (DROPPED,) and SILENT in survivors

    # 4. unmasking: p4 does not answer
    reveals = []
    for pid in survivors:
        if pid != SILENT:
            revealed = people[pid].reveal(survivors, dropped)
            reveals.append(
                {
                    "from": pid,
                    "shares": [
                        {"of": of, "kind": kind, "share": s.hex()} for of, kind, s in revealed
                    ],
                }
            )
            agg.add_reveal(pid, revealed)
    assert agg.revealed == threshold
    total = agg.result()
    expected = np.sum([people[v].fixed.input for v in survivors], axis=0, dtype=np.uint64) % 2**32
    assert total.tolist() == expected.tolist()

    # a peer of a decentralized round unmasks the same sum from the masked inputs it holds and
    # the relayed reveals (docs/protocol.md §19.1), and every aggregator ends with the same model
    commitments = {s["from"]: bytes.fromhex(s["commitment"]) for s in shares}
    peer = SecureSum.following(setup, senders, {v: commitments[v] for v in survivors})
    for m in masked:
        peer.add_masked(m["from"], np.array(m["words"], dtype=np.uint32))
    assert peer.close_masked() == (survivors, dropped)
    for r in reveals:
        relayed = [(x["of"], x["kind"], bytes.fromhex(x["share"])) for x in r["shares"]]
        peer.add_reveal(r["from"], relayed)  # type: ignore[arg-type]
    assert peer.result().tolist() == total.tolist()
    model = Weights([("w", from_bits_grid())])
    mean, weight = secure_mean(model, total, setup.bits, len(survivors), CAP)

    return {
        "about": (
            "One secure round of five members, threshold 3, p2 dropped after sharing and p4 "
            "silent at unmasking: every message of every phase as Python (disco.secure) and the "
            "browser (web/src/core/secure) exchange them, per docs/secure_aggregation.md §6 and "
            "§10; written by tests/vectors/secure_round.py."
        ),
        "task": TASK,
        "round": ROUND,
        "task_threshold": TASK_THRESHOLD,
        "values": VALUES,
        "clip": CLIP,
        "weight_cap": CAP,
        "salt": round_salt(TASK, ROUND).hex(),
        "members": [
            {
                "id": f.id,
                "c_private": f.c_private.hex(),
                "s_private": f.s_private.hex(),
                "self_seed": f.seed.hex(),
                "self_coefficients": [a.to_bytes(33, "big").hex() for a in f.self_coefficients],
                "key_coefficients": [a.to_bytes(33, "big").hex() for a in f.key_coefficients],
                "input": words(f.input),
            }
            for f in fixed
        ],
        "keys": keys,
        "setup": setup_json(setup),
        "shares": shares,
        "senders": list(senders),
        "inboxes": inboxes,
        "masked": masked,
        "survivors": list(survivors),
        "dropped": list(dropped),
        "reveals": reveals,
        "sum": words(total),
        "model": {"shape": list(model["w"].shape), "bits": f32_hex(model["w"])},
        "total_weight": weight,
        "mean": {"shape": list(mean["w"].shape), "bits": f32_hex(mean["w"])},
    }


def from_bits_grid() -> np.ndarray:
    """The round's model: 6 float32 values in a 2 × 3 tensor, spread over a few magnitudes."""
    values = [(2 * draw("round model", i) - 1) * 10.0 ** (i - 3) for i in range(VALUES)]
    return np.array(values, dtype=np.float32).reshape(2, 3)


def f32_hex(array: np.ndarray) -> list[str]:
    """Each float32 value's IEEE-754 bits, as 8 lowercase hex digits (C order)."""
    return [f"{int(x):08x}" for x in array.astype("<f4").reshape(-1).view("<u4")]


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
