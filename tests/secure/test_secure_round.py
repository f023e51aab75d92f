"""One secure round end to end, participants and aggregator in one process, with dropouts at
every phase (docs/secure_aggregation.md §10): the survivors' exact sum, or a clean abort."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from disco.errors import SecureAggregationError
from disco.secure import decode, quantize
from disco.secure.aggregator import RoundAborted, SecureSum
from disco.secure.participant import SecureParticipant
from disco.secure.roster import RoundSetup, threshold_for

TASK, ROUND, VALUES, CLIP, CAP = "mnist", 3, 257, 1.0, 1024


@dataclass
class Outcome:
    words: np.ndarray | None  # the survivors' sum, or None if the round aborted
    aborted: str = ""
    survivors: tuple[str, ...] = ()
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    revealed: list[tuple[str, str, str]] = field(default_factory=list)  # (by, of, kind)
    setup: RoundSetup | None = None


def run_round(
    n: int,
    threshold: int | None = None,
    *,
    silent_after_keys: tuple[int, ...] = (),
    silent_after_shares: tuple[int, ...] = (),
    silent_after_masked: tuple[int, ...] = (),
    seed: int = 0,
) -> Outcome:
    """n participants p0..p{n-1}; those listed stop answering after the named phase."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    people = {i: SecureParticipant(TASK, ROUND, i, threshold=threshold) for i in ids}
    agg = SecureSum(TASK, ROUND, values=VALUES, clip=CLIP, weight_cap=CAP, threshold=threshold)
    out = Outcome(words=None)
    try:
        for i in ids:
            agg.add_keys(i, *people[i].keys())
        setup = out.setup = agg.setup()
        for k, i in enumerate(ids):
            if k not in silent_after_keys:
                shares = people[i].share(setup)
                agg.add_shares(i, shares.commitment, shares.envelopes)
        senders = agg.close_shares()
        for k, i in enumerate(ids):
            if i in senders and k not in silent_after_keys + silent_after_shares:
                people[i].receive(agg.inbox(i))
                update = rng.normal(0, 0.3, VALUES).astype(np.float32)
                words = quantize(update, int(rng.integers(1, 50)), CLIP, setup.bits)
                out.inputs[i] = words
                masked = people[i].mask(words, senders)
                assert not np.array_equal(masked, words)
                agg.add_masked(i, masked)
        survivors, dropped = agg.close_masked()
        out.survivors = survivors
        for k, i in enumerate(ids):
            if i in survivors and k not in silent_after_masked:
                shares = people[i].reveal(survivors, dropped)
                out.revealed += [(i, of, kind) for of, kind, _ in shares]
                agg.add_reveal(i, shares)
        out.words = agg.result()
    except RoundAborted as exc:
        out.aborted = str(exc)
    return out


def _sum(words: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(words[0])
    for w in words:
        total += w
    return total


def test_every_participant_takes_part_the_sum_is_exact() -> None:
    out = run_round(5)
    assert out.words is not None and out.survivors == tuple(f"p{i}" for i in range(5))
    assert np.array_equal(out.words, _sum(list(out.inputs.values())))
    assert out.setup is not None and out.setup.threshold == threshold_for(5) == 3
    weight, values = decode(out.words, out.setup.bits)
    assert weight == sum(int(w[0]) for w in out.inputs.values())
    exact = sum(decode(w, out.setup.bits)[1] for w in out.inputs.values())
    assert np.allclose(values, exact)


@pytest.mark.parametrize(
    "phase", ["silent_after_keys", "silent_after_shares", "silent_after_masked"]
)
def test_one_dropout_at_any_phase_leaves_the_survivors_exact_sum(phase: str) -> None:
    out = run_round(6, 4, **{phase: (2,)})  # type: ignore[arg-type]
    assert out.words is not None, out.aborted
    counted = [w for i, w in out.inputs.items() if i in out.survivors]
    assert np.array_equal(out.words, _sum(counted))
    if phase == "silent_after_masked":
        assert "p2" in out.survivors  # its input counts; it just did not help unmask
    else:
        assert "p2" not in out.survivors


def test_two_dropouts_in_different_phases_with_n_6_t_4() -> None:
    out = run_round(6, 4, silent_after_keys=(0,), silent_after_shares=(3,))
    assert out.words is not None, out.aborted
    assert out.survivors == ("p1", "p2", "p4", "p5")
    assert np.array_equal(out.words, _sum([out.inputs[i] for i in out.survivors]))
    # p3 shared then dropped: its key was rebuilt, its self-mask seed never asked for
    assert {(of, kind) for _, of, kind in out.revealed if of == "p3"} == {("p3", "key")}


@pytest.mark.parametrize(
    "phase", ["silent_after_keys", "silent_after_shares", "silent_after_masked"]
)
def test_three_dropouts_of_six_abort_and_reveal_nothing_usable(phase: str) -> None:
    out = run_round(6, 4, **{phase: (0, 2, 4)})  # type: ignore[arg-type]
    assert out.words is None and out.aborted
    if phase == "silent_after_masked":
        # three survivors answered: fewer than t, so no secret can be rebuilt from them
        assert len({by for by, _, _ in out.revealed}) == 3
    else:
        assert out.revealed == []  # unmasking was never asked for


def test_a_wrong_share_is_caught_not_used() -> None:
    n, t = 5, 3
    people = {f"p{i}": SecureParticipant(TASK, ROUND, f"p{i}") for i in range(n)}
    agg = SecureSum(TASK, ROUND, values=4, clip=CLIP, weight_cap=CAP)
    for i, p in people.items():
        agg.add_keys(i, *p.keys())
    setup = agg.setup()
    assert setup.threshold == t
    for i, p in people.items():
        shares = p.share(setup)
        agg.add_shares(i, shares.commitment, shares.envelopes)
    senders = agg.close_shares()
    for i, p in people.items():
        p.receive(agg.inbox(i))
        agg.add_masked(i, p.mask(quantize(np.zeros(4, np.float32), 1, CLIP, setup.bits), senders))
    survivors, dropped = agg.close_masked()
    for i, p in people.items():
        shares = p.reveal(survivors, dropped)
        if i == "p0":  # the first revealer's share of p3's seed is one bit off
            shares = [
                (of, kind, bytes([*s[:-1], s[-1] ^ 1]) if of == "p3" else s)
                for of, kind, s in shares
            ]
        agg.add_reveal(i, shares)
    with pytest.raises(RoundAborted, match=r"p3.*commitment"):
        agg.result()


def test_a_participant_refuses_to_reveal_more_than_the_protocol_allows() -> None:
    people = {f"p{i}": SecureParticipant(TASK, ROUND, f"p{i}") for i in range(4)}
    agg = SecureSum(TASK, ROUND, values=2, clip=CLIP, weight_cap=CAP)
    for i, p in people.items():
        agg.add_keys(i, *p.keys())
    setup = agg.setup()
    for i, p in people.items():
        shares = p.share(setup)
        agg.add_shares(i, shares.commitment, shares.envelopes)
    senders = agg.close_shares()
    p0 = people["p0"]
    p0.receive(agg.inbox("p0"))
    zeros = quantize(np.zeros(2, np.float32), 1, CLIP, setup.bits)
    with pytest.raises(SecureAggregationError, match="no shares were received"):
        people["p1"].mask(zeros, senders)  # p1 has not opened its inbox
    p0.mask(zeros, senders)
    with pytest.raises(SecureAggregationError, match="survivors and as dropped"):
        p0.reveal(["p0", "p1", "p2"], ["p2", "p3"])
    with pytest.raises(SecureAggregationError, match="exactly the members that shared"):
        p0.reveal(["p0", "p1", "p2"], [])
    with pytest.raises(SecureAggregationError, match="cannot unmask"):
        p0.reveal(["p0", "p1"], ["p2", "p3"])  # threshold 3
    p0.reveal(["p0", "p1", "p2"], ["p3"])
    with pytest.raises(SecureAggregationError, match="another split"):
        p0.reveal(["p0", "p1", "p3"], ["p2"])  # p2's key after its seed could unmask p2


def test_the_aggregator_refuses_bad_input_and_changes_nothing() -> None:
    people = {f"p{i}": SecureParticipant(TASK, ROUND, f"p{i}") for i in range(3)}
    agg = SecureSum(TASK, ROUND, values=2, clip=CLIP, weight_cap=CAP)
    for i, p in people.items():
        agg.add_keys(i, *p.keys())
    with pytest.raises(SecureAggregationError, match="already sent its keys"):
        agg.add_keys("p0", *people["p0"].keys())
    setup = agg.setup()
    with pytest.raises(SecureAggregationError, match="shares phase, not keys"):
        agg.add_keys("p9", *SecureParticipant(TASK, ROUND, "p9").keys())
    shares = people["p0"].share(setup)
    with pytest.raises(SecureAggregationError, match="one envelope to each"):
        agg.add_shares("p0", shares.commitment, {"p1": shares.envelopes["p1"]})
    with pytest.raises(SecureAggregationError, match="not a member"):
        agg.add_shares("p9", shares.commitment, shares.envelopes)
    for i, p in people.items():
        s = shares if i == "p0" else p.share(setup)
        agg.add_shares(i, s.commitment, s.envelopes)
    senders = agg.close_shares()
    people["p0"].receive(agg.inbox("p0"))
    masked = people["p0"].mask(quantize(np.ones(2, np.float32), 2, CLIP, setup.bits), senders)
    with pytest.raises(SecureAggregationError, match="3 words"):
        agg.add_masked("p0", masked[:2])
    agg.add_masked("p0", masked)
    with pytest.raises(SecureAggregationError, match="already sent its masked input"):
        agg.add_masked("p0", masked)
    with pytest.raises(RoundAborted, match="only 1 masked inputs"):
        agg.close_masked()


def test_a_roster_below_a_majority_threshold_is_refused_by_participants() -> None:
    people = {f"p{i}": SecureParticipant(TASK, ROUND, f"p{i}") for i in range(5)}
    agg = SecureSum(TASK, ROUND, values=2, clip=CLIP, weight_cap=CAP)
    for i, p in people.items():
        agg.add_keys(i, *p.keys())
    setup = agg.setup()
    weak = RoundSetup(**{**setup.__dict__, "threshold": 2})
    with pytest.raises(SecureAggregationError, match="threshold from 3 to 5"):
        people["p0"].share(weak)
    assert threshold_for(6, 4) == 4 and threshold_for(6, 2) == 4 and threshold_for(7) == 4


def test_a_copied_key_leaves_out_everyone_who_sent_it() -> None:
    """Sending an honest member's public key under another id must not push that member out
    alone: both are left out, and the round goes on without them."""
    people = [SecureParticipant(TASK, ROUND, f"p{i}") for i in range(5)]
    agg = SecureSum(TASK, ROUND, values=2, clip=CLIP, weight_cap=CAP)
    keys = [p.keys() for p in people]
    agg.add_keys("a-copycat", keys[4][0], keys[3][1])  # p3's s key, under an id sorting first
    for i in range(4):
        agg.add_keys(f"p{i}", *keys[i])
    setup = agg.setup()
    assert setup.ids == ["p0", "p1", "p2"]


def test_keys_can_be_replaced_before_the_roster_and_only_those_present_are_taken() -> None:
    people = {f"p{i}": SecureParticipant(TASK, ROUND, f"p{i}") for i in range(5)}
    agg = SecureSum(TASK, ROUND, values=2, clip=CLIP, weight_cap=CAP)
    for i, p in people.items():
        agg.add_keys(i, *p.keys())
    again = SecureParticipant(TASK, ROUND, "p0")  # p0 reconnected with fresh keys
    with pytest.raises(SecureAggregationError, match="already sent its keys"):
        agg.add_keys("p0", *again.keys())
    agg.add_keys("p0", *again.keys(), replace=True)
    setup = agg.setup(present={"p0", "p1", "p2", "p4"})  # p3 left
    assert setup.ids == ["p0", "p1", "p2", "p4"]
    assert setup.member("p0").c_public == again.keys()[0]


def test_a_round_larger_than_the_ring_holds_takes_the_first_to_send_their_keys() -> None:
    # weight cap 2^16, clip 2^5: n · 2^21 · 2^8 + n must stay below 2^31, so 3 fit (b = 8), 4 not
    people = [SecureParticipant(TASK, ROUND, f"p{i}") for i in range(5)]
    agg = SecureSum(TASK, ROUND, values=2, clip=2.0**5, weight_cap=2**16)
    for i in (4, 0, 3, 1, 2):  # arrival order
        agg.add_keys(f"p{i}", *people[i].keys())
    setup = agg.setup()
    assert setup.ids == ["p0", "p3", "p4"] and setup.bits == 8
