"""A peer's round under secure aggregation (docs/protocol.md §19.1): every peer unmasks the sum.

The same four phases as a federated participant's (docs/secure_aggregation.md §10), with the
masked inputs sent peer to peer and the sum unmasked by every peer:

1. with the plan, fresh keys go to the server (`SecureKeys`; `secure_keys`, called by the round
   before it gets its model); training starts and the channels open, as in every round;
2. after `Exchange`, the roster (`SecureSetup`) is answered at once with this peer's shares, even
   while it trains (`SecureShares`);
3. with its envelopes (`SecureInbox`) and its training done, its update goes through the pipeline
   (checks, privacy) and is quantised as a federated participant's is; the masked words go to
   every other sender over its channel (`PeerMasked`), and it reports whose it holds, as usual;
4. asked to unmask (`SecureUnmask`), it reveals its shares; with `SecureReveals` it sums the
   survivors' masked inputs (its own among them), removes the masks (`SecureSum.following`), and
   ends the round with G + Σ w·x / Σ w (`disco.secure.mean`), which every peer computes alike. It
   reports the new model's digest.

A roster without it, a refusal by the server or by the engine make it sit the round out (it
reveals nothing more). Shares that do not rebuild a secret, or a sum out of bounds, make every
peer keep the round's model; so does lacking a survivor's masked input (this peer alone: the
others agree on the new model and it is told to resync). After `SecureAbort` it keeps the round's
model and reports that it holds it. Every wait is bounded by the phase's deadline plus `SLACK_S`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from disco.client.secure import quantized_update, setup_of
from disco.errors import SecureAggregationError, SessionError
from disco.protocol import (
    DigestReport,
    ErrorMessage,
    PeerMasked,
    RoundPlan,
    SecureAbort,
    SecureEnvelope,
    SecureInbox,
    SecureKeys,
    SecureReveal,
    SecureReveals,
    SecureSetup,
    SecureShare,
    SecureShares,
    SecureUnmask,
)
from disco.protocol.secure import SHARES_S, UNMASK_S
from disco.secure.aggregator import SecureSum
from disco.secure.mean import secure_mean
from disco.secure.participant import SecureParticipant
from disco.secure.roster import MIN_MEMBERS, RoundSetup
from disco.training import EpochMetrics
from disco.weights import Weights

if TYPE_CHECKING:
    from disco.decentralized.rounds import PeerRounds, RoundTiming

__all__ = ["SecureMessage", "secure_keys", "secure_peer_round"]

log = logging.getLogger("disco.client.peers")

SecureMessage = SecureSetup | SecureInbox | SecureUnmask | SecureReveals | SecureAbort
"""What the server sends a peer during a secure round."""


class _SitOut(Exception):
    """This peer takes no further part in the round (the reason is the message)."""


async def secure_keys(peer: PeerRounds, plan: RoundPlan) -> SecureParticipant:
    """A fresh participant for the planned round, its keys sent to the server."""
    settings = peer.task.training.secure_aggregation
    assert settings is not None and peer.client_id is not None
    me = SecureParticipant(peer.task.id, plan.round, peer.client_id, threshold=settings.threshold)
    peer._secure.setdefault(plan.round, {})  # the round's messages (and refusals) are kept
    c_public, s_public = me.keys()
    await peer._send(SecureKeys(round=plan.round, c_public=c_public, s_public=s_public))
    return me


async def secure_peer_round(
    peer: PeerRounds,
    plan: RoundPlan,
    me: SecureParticipant,
    base: Weights,
    training: asyncio.Future[tuple[Weights, list[EpochMetrics]]],
    history: list[EpochMetrics],
    timing: RoundTiming,
) -> int:
    """Take part in the planned secure round from the barrier on (training runs); 1 if this
    peer ended it with the unmasked sum, 0 otherwise. Whatever the ending, it holds a model for
    round r + 1 afterwards: the new one, or the round's own (`base`), which the next plan's digest
    tells it whether to use or to replace."""
    r = plan.round
    peer._exchange.models[r + 1] = base  # until the round gives a new one
    try:
        if SecureAbort in peer._secure.get(r, {}):
            raise _Aborted(peer._secure[r][SecureAbort])
        if peer.client_id not in peer._exchanges[r].peers:
            raise _SitOut("left out (channels to the peers did not open in time)")
        new = await _phases(peer, plan, me, base, training, timing)
    except _Aborted as exc:  # every member keeps the round's model, and says it holds it
        log.warning("round %d: %s; the next round starts from the same model", r, exc)
        history.extend(await _epochs(training))
        peer.weights = base
        await peer._send(DigestReport(round=r, digest=base.digest()))
        return 0
    except _SitOut as exc:
        log.warning("round %d: %s; this round goes on without you", r, exc)
        history.extend(await _epochs(training))
        return 0
    except SecureAggregationError as exc:  # the engine refused: reveal nothing more
        log.warning("round %d: secure aggregation refused the round (%s); sitting it out", r, exc)
        history.extend(await _epochs(training))
        return 0
    history.extend(await _epochs(training))
    combined, model = new
    peer.weights = model
    peer._exchange.models[r + 1] = model
    digest = model.digest()
    await peer._send(DigestReport(round=r, digest=digest))
    timing.digest = digest
    return 1 if combined else 0


async def _phases(
    peer: PeerRounds,
    plan: RoundPlan,
    me: SecureParticipant,
    base: Weights,
    training: asyncio.Future[tuple[Weights, list[EpochMetrics]]],
    timing: RoundTiming,
) -> tuple[bool, Weights]:
    """The round's phases; (whether the sum was unmasked, the model it ends with)."""
    r = plan.round
    setup_message = await _next(peer, r, (SecureSetup,), SHARES_S, "the round's roster")
    assert isinstance(setup_message, SecureSetup)
    setup = setup_of(peer.task.id, setup_message)
    settings = peer.task.training.secure_aggregation
    assert settings is not None and peer.client_id is not None
    if peer.client_id not in setup.ids:
        raise _SitOut("the roster does not list this peer (its keys came late or were unusable)")
    if (setup.clip, setup.weight_cap) != (settings.clip, settings.weight_cap):
        raise SecureAggregationError("the roster's clip range and weight cap are not the task's")
    if setup.length != 1 + base.size:
        raise SecureAggregationError(f"the roster's inputs are {setup.length} words, not 1 + model")
    out = me.share(setup)
    envelopes = [SecureEnvelope(peer=p, data=d) for p, d in out.envelopes.items()]
    await peer._send(SecureShares(round=r, commitment=out.commitment, envelopes=envelopes))
    log.info("round %d: secure round of %d peers; shares sent", r, len(setup.members))

    inbox = await _next(peer, r, (SecureInbox,), SHARES_S, "the shares of the others")
    assert isinstance(inbox, SecureInbox)
    me.receive({e.peer: e.data for e in inbox.envelopes})
    trained, _ = await training  # never cut short
    t_exchange = time.perf_counter()
    box = peer._secure.get(r, {})
    if SecureAbort in box:
        raise _Aborted(box[SecureAbort])
    own: PeerMasked | None = None
    if SecureReveals not in box:  # with the reveals here, it was dropped: its input serves no one
        words = quantized_update(
            base, trained, len(peer.train_data), peer.task.training.privacy, peer._rng, setup
        )
        masked = me.mask(words, inbox.senders).astype("<u4").tobytes()
        own = PeerMasked(round=r, words=masked, digest=hashlib.sha256(masked).hexdigest())
        others = [s for s in inbox.senders if s != peer.client_id]
        log.info("round %d: sending the masked update to %d peer(s)", r, len(others))
        await asyncio.gather(*(peer._send_update(p, own, plan.exchange_s) for p in others))

    wait = plan.exchange_s + UNMASK_S
    ask = await _next(peer, r, (SecureUnmask, SecureReveals), wait, "the round's survivors")
    if isinstance(ask, SecureUnmask):
        _enough(ask.survivors)  # else nothing is revealed
        shares = me.reveal(ask.survivors, ask.dropped)
        reveal = [SecureShare(of=o, kind=k, share=x) for o, k, x in shares]
        await peer._send(SecureReveal(round=r, shares=reveal))
        ask = await _next(peer, r, (SecureReveals,), UNMASK_S, "the survivors' shares")
    assert isinstance(ask, SecureReveals)
    timing.exchange_s = time.perf_counter() - t_exchange
    held = dict(peer._exchange.masked.get(r, {}))
    if own is not None:
        held[peer.client_id] = own
    t_combine = time.perf_counter()
    result = await asyncio.to_thread(_unmask, setup, inbox.senders, held, ask, base)
    timing.combine_s = time.perf_counter() - t_combine
    timing.contributors = len(ask.survivors) if result is not None else 0
    return (True, result) if result is not None else (False, base)


def _unmask(
    setup: RoundSetup,
    senders: list[str],
    held: dict[str, PeerMasked],
    reveals: SecureReveals,
    base: Weights,
) -> Weights | None:
    """The round's new model from the survivors' masked inputs and the relayed shares; None if
    this peer lacks an input or the sum cannot be unmasked (it keeps `base`)."""
    try:
        _enough(reveals.survivors)
    except SecureAggregationError as exc:
        log.warning("round %d: %s", setup.round, exc)
        return None
    lacking = [s for s in reveals.survivors if s not in held]
    if lacking:
        log.warning(
            "round %d: the masked inputs of %s never arrived; keeping the round's model until "
            "the agreed one is fetched",
            *(setup.round, lacking),
        )
        return None
    try:
        commitments = {c.peer: c.commitment for c in reveals.commitments}
        aggregator = SecureSum.following(setup, senders, commitments)
        for s in reveals.survivors:
            words = np.frombuffer(held[s].words, dtype="<u4").astype(np.uint32, copy=False)
            aggregator.add_masked(s, words)
        split = aggregator.close_masked()
        if split != (tuple(sorted(reveals.survivors)), tuple(sorted(reveals.dropped))):
            raise SecureAggregationError("the relayed split is not the members that shared")
        for revealed in reveals.reveals:
            aggregator.add_reveal(revealed.peer, [(s.of, s.kind, s.share) for s in revealed.shares])
        model, _ = secure_mean(
            base, aggregator.result(), setup.bits, len(reveals.survivors), setup.weight_cap
        )
        return model
    except SecureAggregationError as exc:  # every peer fails alike: all keep the round's model
        log.warning("round %d: the sum could not be unmasked (%s)", setup.round, exc)
        return None


def _enough(survivors: list[str]) -> None:
    """Refuse to unmask the sum of fewer than 3 survivors: every peer reads the sum, so with two
    each would read the other's update from it."""
    if len(survivors) < MIN_MEMBERS:
        raise SecureAggregationError(
            f"only {len(survivors)} survivors: with fewer than {MIN_MEMBERS}, each could read "
            "another's update from the sum; nothing is revealed"
        )


async def _next(
    peer: PeerRounds, r: int, kinds: tuple[type, ...], within: float, what: str
) -> SecureMessage:
    """The server's next message of round `r` among `kinds`; `SecureAbort` or a refusal of the
    round raise `_SitOut`."""
    from disco.decentralized.rounds import SLACK_S

    box = peer._secure.setdefault(r, {})

    def arrived() -> bool:
        return any(k in box for k in (*kinds, SecureAbort, ErrorMessage))

    try:
        await peer._until(arrived, within + SLACK_S, f"{what} (round {r})")
    except SessionError as exc:  # a closed connection (ServerError) ends the run instead
        raise _SitOut(str(exc)) from exc
    if SecureAbort in box:
        raise _Aborted(box[SecureAbort])
    if ErrorMessage in box:
        error = box.pop(ErrorMessage)
        raise _SitOut(f"the server refused: [{error.code}] {error.message}")  # type: ignore[union-attr]
    kind = next(k for k in kinds if k in box)
    return box.pop(kind)  # type: ignore[return-value]


class _Aborted(_SitOut):
    """The round was aborted; every member keeps the round's model."""

    def __init__(self, abort: object) -> None:
        super().__init__(f"the round was aborted ({getattr(abort, 'reason', '')})")


async def _epochs(
    training: asyncio.Future[tuple[Weights, list[EpochMetrics]]],
) -> list[EpochMetrics]:
    """The round's training epochs (training is never cut short; a failure ends the run, as in
    every round)."""
    _, epochs = await training
    return epochs
