"""One whole secure round against tests/vectors/secure_round.json, which the browser reads too
(web/tests/secure-round.test.ts): a Python aggregator fed the round's messages answers the same
roster, inboxes, split and sum, and a Python participant given the file's randomness sends the
same bytes — so either language can aggregate for participants of the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import disco.secure.participant as participant_module
from disco.errors import SecureAggregationError
from disco.secure import private_key_from_bytes, split
from disco.secure.aggregator import RoundAborted, SecureSum
from disco.secure.mean import secure_mean
from disco.secure.participant import RevealedShare, SecureParticipant
from disco.secure.roster import Member, RoundSetup
from disco.weights import Weights

VECTORS_DIR = Path(__file__).parents[1] / "vectors"
ROUND = json.loads((VECTORS_DIR / "secure_round.json").read_text(encoding="utf-8"))
SECTIONS = [
    "about",
    "task",
    "round",
    "task_threshold",
    "values",
    "clip",
    "weight_cap",
    "salt",
    "members",
    "keys",
    "setup",
    "shares",
    "senders",
    "inboxes",
    "masked",
    "survivors",
    "dropped",
    "reveals",
    "sum",
    "model",
    "total_weight",
    "mean",
]


def hexes(mapping: dict[str, str]) -> dict[str, bytes]:
    return {k: bytes.fromhex(v) for k, v in mapping.items()}


def vector(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint32)


def revealed(entry: dict[str, Any]) -> list[RevealedShare]:
    return [(s["of"], s["kind"], bytes.fromhex(s["share"])) for s in entry["shares"]]


def setup_of(doc: dict[str, Any]) -> RoundSetup:
    return RoundSetup(
        task_id=doc["task_id"],
        round=doc["round"],
        members=tuple(
            Member(
                m["id"], m["position"], bytes.fromhex(m["c_public"]), bytes.fromhex(m["s_public"])
            )
            for m in doc["members"]
        ),
        threshold=doc["threshold"],
        clip=doc["clip"],
        weight_cap=doc["weight_cap"],
        bits=doc["bits"],
        length=doc["length"],
    )


def aggregator() -> SecureSum:
    return SecureSum(
        ROUND["task"],
        ROUND["round"],
        values=ROUND["values"],
        clip=ROUND["clip"],
        weight_cap=ROUND["weight_cap"],
        threshold=ROUND["task_threshold"],
    )


def through_masked(agg: SecureSum) -> None:
    """Feed `agg` the round's messages up to the survivors/dropped split."""
    for k in ROUND["keys"]:
        agg.add_keys(k["id"], bytes.fromhex(k["c_public"]), bytes.fromhex(k["s_public"]))
    agg.setup()
    for s in ROUND["shares"]:
        agg.add_shares(s["from"], bytes.fromhex(s["commitment"]), hexes(s["envelopes"]))
    agg.close_shares()
    for m in ROUND["masked"]:
        agg.add_masked(m["from"], vector(m["words"]))
    agg.close_masked()


# -- the file ----------------------------------------------------------------------------------
def test_the_vectors_file_is_what_the_code_produces() -> None:
    script = VECTORS_DIR / "secure_round.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_file_is_the_round_the_docstring_describes() -> None:
    assert list(ROUND) == SECTIONS
    assert "docs/secure_aggregation.md" in ROUND["about"]
    ids = [m["id"] for m in ROUND["members"]]
    assert ids == ["p0", "p1", "p2", "p3", "p4"] and ROUND["setup"]["threshold"] == 3
    assert ROUND["senders"] == ids
    assert [m["from"] for m in ROUND["masked"]] == ["p0", "p1", "p3", "p4"]
    assert ROUND["survivors"] == ["p0", "p1", "p3", "p4"] and ROUND["dropped"] == ["p2"]
    assert [r["from"] for r in ROUND["reveals"]] == ["p0", "p1", "p3"]
    inputs = [vector(m["input"]) for m in ROUND["members"] if m["id"] in ROUND["survivors"]]
    assert ROUND["sum"] == (np.sum(inputs, axis=0, dtype=np.uint64) % 2**32).tolist()


# -- a Python aggregator, the file's messages ----------------------------------------------------
def test_the_aggregator_fed_the_messages_answers_what_the_file_holds() -> None:
    agg = aggregator()
    for k in ROUND["keys"]:
        agg.add_keys(k["id"], bytes.fromhex(k["c_public"]), bytes.fromhex(k["s_public"]))
    assert agg.setup() == setup_of(ROUND["setup"])
    for s in ROUND["shares"]:
        agg.add_shares(s["from"], bytes.fromhex(s["commitment"]), hexes(s["envelopes"]))
    assert list(agg.close_shares()) == ROUND["senders"]
    for box in ROUND["inboxes"]:
        assert agg.inbox(box["to"]) == hexes(box["envelopes"])
    for m in ROUND["masked"]:
        agg.add_masked(m["from"], vector(m["words"]))
    survivors, dropped = agg.close_masked()
    assert (list(survivors), list(dropped)) == (ROUND["survivors"], ROUND["dropped"])
    for r in ROUND["reveals"]:
        agg.add_reveal(r["from"], revealed(r))
    assert agg.result().tolist() == ROUND["sum"]


def test_two_reveals_of_the_file_are_too_few_and_a_changed_one_is_caught() -> None:
    agg = aggregator()
    through_masked(agg)
    for r in ROUND["reveals"][:2]:
        agg.add_reveal(r["from"], revealed(r))
    with pytest.raises(RoundAborted, match="only 2 survivors revealed"):
        agg.result()
    last = ROUND["reveals"][2]
    agg.add_reveal(
        last["from"],
        [
            (of, kind, bytes([*s[:-1], s[-1] ^ 1]) if kind == "key" else s)
            for of, kind, s in revealed(last)
        ],
    )
    with pytest.raises(SecureAggregationError, match=r"key of .p2. .*its public key"):
        agg.result()


# -- a Python participant, the file's randomness -------------------------------------------------
@pytest.mark.parametrize("member", [m["id"] for m in ROUND["members"]])
def test_a_participant_given_the_files_randomness_sends_the_same_bytes(
    member: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = next(m for m in ROUND["members"] if m["id"] == member)
    seed, s_private = bytes.fromhex(fixed["self_seed"]), bytes.fromhex(fixed["s_private"])
    coefficients = {
        seed: [int(a, 16) for a in fixed["self_coefficients"]],
        s_private: [int(a, 16) for a in fixed["key_coefficients"]],
    }
    # SecureParticipant draws b_u with secrets.token_bytes and the coefficients inside split:
    # both replaced, in its module only, and its two keys swapped for the file's.
    monkeypatch.setattr(participant_module, "secrets", SimpleNamespace(token_bytes=lambda n: seed))
    monkeypatch.setattr(
        participant_module,
        "split",
        lambda secret, t, n: split(secret, t, n, coefficients[bytes(secret)]),
    )
    me = SecureParticipant(ROUND["task"], ROUND["round"], member, threshold=ROUND["task_threshold"])
    me._c = private_key_from_bytes(bytes.fromhex(fixed["c_private"]))
    me._s = private_key_from_bytes(s_private)

    keys = next(k for k in ROUND["keys"] if k["id"] == member)
    assert [k.hex() for k in me.keys()] == [keys["c_public"], keys["s_public"]]
    shares = me.share(setup_of(ROUND["setup"]))
    sent = next(s for s in ROUND["shares"] if s["from"] == member)
    assert shares.commitment.hex() == sent["commitment"]
    assert {to: e.hex() for to, e in shares.envelopes.items()} == sent["envelopes"]

    inbox = next(b for b in ROUND["inboxes"] if b["to"] == member)
    me.receive(hexes(inbox["envelopes"]))
    if member in ROUND["dropped"]:
        return
    masked = me.mask(vector(fixed["input"]), ROUND["senders"])
    assert masked.tolist() == next(m["words"] for m in ROUND["masked"] if m["from"] == member)
    shares_out = me.reveal(ROUND["survivors"], ROUND["dropped"])
    answer = next((r for r in ROUND["reveals"] if r["from"] == member), None)
    if answer is not None:  # p4 stays silent, but would have answered as the others
        assert shares_out == revealed(answer)
    else:
        assert [(of, kind) for of, kind, _ in shares_out] == [
            (of, kind) for of, kind, _ in revealed(ROUND["reveals"][0])
        ]


# -- a peer of a decentralized round: the same sum from the masked inputs and the relayed reveals --
def f32(section: dict[str, Any]) -> Weights:
    bits = np.array([int(b, 16) for b in section["bits"]], dtype="<u4")
    return Weights([("w", bits.view("<f4").reshape(section["shape"]))])


def follower(survivors: list[str] | None = None) -> SecureSum:
    commitments = {s["from"]: bytes.fromhex(s["commitment"]) for s in ROUND["shares"]}
    chosen = ROUND["survivors"] if survivors is None else survivors
    setup = setup_of(ROUND["setup"])
    return SecureSum.following(setup, ROUND["senders"], {v: commitments[v] for v in chosen})


def test_a_peer_unmasks_the_sum_and_ends_with_the_files_model() -> None:
    peer = follower()
    assert peer.phase == "masked"
    for m in ROUND["masked"]:
        peer.add_masked(m["from"], vector(m["words"]))
    assert peer.close_masked() == (tuple(ROUND["survivors"]), tuple(ROUND["dropped"]))
    for r in ROUND["reveals"]:
        peer.add_reveal(r["from"], revealed(r))
    total = peer.result()
    assert total.tolist() == ROUND["sum"]
    setup = setup_of(ROUND["setup"])
    mean, weight = secure_mean(
        f32(ROUND["model"]), total, setup.bits, len(ROUND["survivors"]), ROUND["weight_cap"]
    )
    assert weight == ROUND["total_weight"]
    expected = f32(ROUND["mean"])
    assert mean["w"].view("<u4").tolist() == expected["w"].view("<u4").tolist()


def test_a_peer_without_a_commitment_or_a_share_unmasks_nothing() -> None:
    peer = follower(survivors=ROUND["survivors"][1:])  # p0's commitment was not relayed
    for m in ROUND["masked"]:
        peer.add_masked(m["from"], vector(m["words"]))
    peer.close_masked()
    for r in ROUND["reveals"]:
        peer.add_reveal(r["from"], revealed(r))
    with pytest.raises(RoundAborted, match="does not match its commitment"):
        peer.result()
    peer = follower()
    for m in ROUND["masked"]:
        peer.add_masked(m["from"], vector(m["words"]))
    peer.close_masked()
    for r in ROUND["reveals"][:2]:
        peer.add_reveal(r["from"], revealed(r))
    with pytest.raises(RoundAborted, match="only 2 survivors revealed"):
        peer.result()


def test_a_follower_takes_only_members_that_shared() -> None:
    setup = setup_of(ROUND["setup"])
    with pytest.raises(SecureAggregationError, match="distinct members of the roster"):
        SecureSum.following(setup, ["p0", "p0", "p1"], {})
    with pytest.raises(SecureAggregationError, match="distinct members of the roster"):
        SecureSum.following(setup, ["p0", "stranger"], {})
    with pytest.raises(SecureAggregationError, match="only from members that shared"):
        SecureSum.following(setup, ["p0", "p1", "p3"], {"p4": bytes(32)})
    with pytest.raises(SecureAggregationError, match="a commitment is 32 bytes"):
        SecureSum.following(setup, ["p0", "p1", "p3"], {"p0": bytes(31)})
