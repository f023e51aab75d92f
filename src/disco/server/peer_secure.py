"""A decentralized session with secure aggregation: the server paces phases, peers unmask the sum.

`SecurePeerSession` is a `DecentralizedSession` whose rounds follow docs/protocol.md §19.1. The
server coordinates the secure round as a federated secure server does (the roster, the envelopes,
the split, the reveals: `disco.secure.SecureSum` in coordinator mode) but never holds a masked
input — those go peer to peer — nor a model:

``connecting``
    As in every decentralized round; every member sends `SecureKeys` after its plan.
``sharing``
    At the barrier, `Exchange` goes out as usual, then the roster (`SecureSetup`) to the members
    that passed; it takes those whose keys are usable. When every live member of the roster has
    sent `SecureShares`, or after ``SHARES_S``, each one that shared gets its `SecureInbox`; from
    here the round's members are these senders.
``exchanging``
    Senders send their masked inputs to each other and report whose they hold (`Received`); the
    phase ends as a plain exchange does.
``unmasking``
    The survivors are the senders whose masked input more than half of the live senders hold
    (`peer_rounds.combine_set`); they get `SecureUnmask` and answer with `SecureReveal`. At the
    threshold, `SecureReveals` relays the shares of exactly that many survivors, with the
    survivors' commitments, to every live sender.
``combining``
    As in every decentralized round: digests, the agreed model, resyncs.

Too few members at any phase aborts the round: `SecureAbort` to its live members, a history row
that says why, and round r + 1 opens with the same model (the agreed digest stays). Every secure
round is all to all (each peer needs every masked input), of at most `SECURE_MAX_PEERS` peers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from disco.aggregation_config import SECURE_MAX_PEERS, SECURE_MIN_PARTICIPANTS
from disco.errors import SecureAggregationError
from disco.protocol import (
    ErrorMessage,
    SecureAbort,
    SecureCommitment,
    SecureEnvelope,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureReveal,
    SecureRevealed,
    SecureReveals,
    SecureSetup,
    SecureShare,
    SecureShares,
    SecureUnmask,
)
from disco.protocol.secure import SHARES_S, UNMASK_S
from disco.secure.aggregator import RoundAborted, SecureSum
from disco.server import peer_rounds
from disco.server.decentralized import DecentralizedSession, PeerMessage
from disco.server.peer_rounds import OpenRound, Phase
from disco.server.secure import setup_message
from disco.server.store import RoundRecord
from disco.task import Task
from disco.weights import Weights

__all__ = ["SecurePeerMessage", "SecurePeerSession"]

log = logging.getLogger("disco.server")

SecurePeerMessage = SecureKeys | SecureShares | SecureInput | SecureReveal
_PHASE_OF: dict[type, tuple[Phase, ...]] = {  # the phases in which each message is taken
    SecureKeys: ("connecting",),
    SecureShares: ("sharing",),
    SecureReveal: ("unmasking",),
}


class SecurePeerSession(DecentralizedSession):
    """Round pacing for one decentralized task with secure aggregation."""

    capabilities = ("decentralized", "secure_aggregation")
    max_members = SECURE_MAX_PEERS

    def __init__(self, task: Task, round: int, initial: Weights, **kwargs: Any) -> None:
        settings = task.training.secure_aggregation
        if settings is None:
            raise SecureAggregationError(f"task {task.id!r} does not use secure aggregation")
        # every secure round is all to all: each peer needs every masked input
        super().__init__(task, round, initial, all_to_all_limit=SECURE_MAX_PEERS, **kwargs)
        self._settings = settings
        self._values = initial.size
        self._sum: SecureSum | None = None  # the open round's
        self._sum_of: OpenRound | None = None  # the round `_sum` belongs to
        self._settling: tuple[int, set[str], asyncio.TimerHandle] | None = None  # after an abort

    # -- messages ------------------------------------------------------------------------------
    async def receive(self, connection: str, message: PeerMessage | SecurePeerMessage) -> None:
        """A decentralized or secure-aggregation message from a joined connection; a refusal is
        answered with `ErrorMessage` and changes nothing."""
        if not isinstance(message, SecureKeys | SecureShares | SecureInput | SecureReveal):
            await super().receive(connection, message)
            return
        peer = self._peers.at(connection)
        if peer is None:
            return
        error = self._take(peer.identity, message)
        if error is not None:
            await peer.participant.send(error)
            return
        await self._advance()

    def _take(self, identity: str, message: SecurePeerMessage) -> ErrorMessage | None:
        rnd = self._round
        if isinstance(message, SecureInput):
            text = "this task is decentralized: masked inputs go to the peers, not the server"
            return ErrorMessage(code="unexpected", message=text, round=message.round)
        if rnd is None or message.round != rnd.number:
            if message.round > self._round_no:
                text = f"round {message.round} has not started; the open round is {self._round_no}"
                return ErrorMessage(code="future", message=text, round=message.round)
            if isinstance(message, SecureReveal):
                return None  # the sum was relayed with the threshold's shares: not needed
            text = f"round {message.round} is over; take part from the next plan"
            return ErrorMessage(code="stale", message=text, round=message.round)
        if identity not in rnd.neighbours or identity in rnd.gone:
            text = f"you are not a member of round {rnd.number}; wait for the next plan"
            return ErrorMessage(code="unexpected", message=text, round=rnd.number)
        if rnd.phase not in _PHASE_OF[type(message)]:
            if isinstance(message, SecureReveal) and rnd.phase == "combining":
                return None  # as above: a reveal beyond the threshold
            text = (
                f"round {rnd.number} is {rnd.phase}, not taking {message.type!r}: this round goes "
                "on without you; take part from the next plan"
            )
            return ErrorMessage(code="stale", message=text, round=rnd.number)
        secure = self._open_sum(rnd)
        try:
            if isinstance(message, SecureKeys):
                secure.add_keys(identity, message.c_public, message.s_public, replace=True)
            elif isinstance(message, SecureShares):
                envelopes = {e.peer: e.data for e in message.envelopes}
                secure.add_shares(identity, message.commitment, envelopes)
            else:
                secure.add_reveal(identity, [(s.of, s.kind, s.share) for s in message.shares])
        except SecureAggregationError as exc:
            return ErrorMessage(code="unexpected", message=str(exc), round=rnd.number)
        return None

    def _open_sum(self, rnd: OpenRound) -> SecureSum:
        """The coordinator's state of `rnd` (made when its first secure message arrives)."""
        if self._sum is None or self._sum_of is not rnd:  # a restarted round starts afresh
            s = self._settings
            self._sum = SecureSum(
                self.task.id,
                rnd.number,
                values=self._values,
                clip=s.clip,
                weight_cap=s.weight_cap,
                threshold=s.threshold,
            )
            self._sum_of = rnd
        return self._sum

    # -- phases --------------------------------------------------------------------------------
    async def _step(self, rnd: OpenRound) -> bool:
        if rnd.phase == "sharing" and self._shared(rnd):
            await self._start_masking(rnd)
        elif rnd.phase == "unmasking" and self._revealed(rnd):
            await self._relay_reveals(rnd)
        else:
            return await super()._step(rnd)
        return True

    async def _start_exchange(self, rnd: OpenRound, excluded: list[str]) -> None:
        """The barrier passed: `Exchange` as usual, then the roster to the members that passed."""
        await super()._start_exchange(rnd, excluded)
        secure = self._open_sum(rnd)
        live = peer_rounds.live(rnd, self._peers, rnd.exchange)
        try:
            setup = secure.setup(present=live)
        except SecureAggregationError as exc:  # RoundAborted, or a state it cannot go on from
            await self._abort(rnd, str(exc))
            return
        self._phase(rnd, "sharing", SHARES_S)
        message = setup_message(setup)
        log.info(
            "[%s] round %d: roster of %d peers, threshold %d, scale 2^%d",
            *(self.task.id, rnd.number, len(setup.members), setup.threshold, setup.bits),
        )
        await self._to(sorted(rnd.exchange), message)  # a member left out sees it is not listed
        rnd.exchange = set(setup.ids)

    def _shared(self, rnd: OpenRound) -> bool:
        assert self._sum is not None
        waiting = peer_rounds.live(rnd, self._peers, rnd.exchange)
        return waiting <= set(self._sum.shared)

    async def _start_masking(self, rnd: OpenRound) -> None:
        """The shares are in: each sender gets its envelopes; masked inputs go peer to peer."""
        assert self._sum is not None
        try:
            senders = self._sum.close_shares()
            _at_least_three(senders, "senders")
        except SecureAggregationError as exc:
            await self._abort(rnd, str(exc))
            return
        rnd.exchange = set(senders)
        self._phase(rnd, "exchanging", self._exchange_s)
        for m in sorted(peer_rounds.live(rnd, self._peers, rnd.exchange)):
            inbox = SecureInbox(
                round=rnd.number,
                senders=list(senders),
                envelopes=[SecureEnvelope(peer=p, data=d) for p, d in self._sum.inbox(m).items()],
            )
            await self._to([m], inbox)

    async def _start_combining(self, rnd: OpenRound) -> None:
        """The masked inputs are exchanged: name the survivors and ask them to unmask."""
        assert self._sum is not None
        live = peer_rounds.live(rnd, self._peers, rnd.exchange)
        try:
            survivors, dropped = self._sum.close_masked(peer_rounds.combine_set(rnd, live))
            _at_least_three(survivors, "survivors")
        except SecureAggregationError as exc:
            await self._abort(rnd, str(exc))
            return
        if dropped:
            log.info(
                "[%s] round %d: %d sender(s) dropped (their masked input did not reach most peers)",
                *(self.task.id, rnd.number, len(dropped)),
            )
        self._phase(rnd, "unmasking", UNMASK_S)
        message = SecureUnmask(round=rnd.number, survivors=list(survivors), dropped=list(dropped))
        await self._to(sorted(set(survivors) & live), message)

    def _revealed(self, rnd: OpenRound) -> bool:
        """The threshold's shares are in (or no survivor is left to send more: then abort)."""
        assert self._sum is not None
        if self._sum.revealed >= self._sum.threshold:
            return True
        survivors, _ = self._sum.split
        pending = peer_rounds.live(rnd, self._peers, set(survivors)) - self._sum.revealers
        return not pending

    async def _relay_reveals(self, rnd: OpenRound) -> None:
        """Every live sender gets the split, the commitments and the threshold's shares."""
        assert self._sum is not None
        secure = self._sum
        if secure.revealed < secure.threshold:
            reason = (
                f"only {secure.revealed} survivors revealed their shares; unmasking needs "
                f"{secure.threshold}"
            )
            await self._abort(rnd, reason)
            return
        survivors, dropped = secure.split
        message = SecureReveals(
            round=rnd.number,
            survivors=list(survivors),
            dropped=list(dropped),
            commitments=[
                SecureCommitment(peer=m, commitment=c)
                for m, c in secure.commitments(survivors).items()
            ],
            reveals=[
                SecureRevealed(
                    peer=m, shares=[SecureShare(of=o, kind=k, share=x) for o, k, x in shares]
                )
                for m, shares in secure.reveals[: secure.threshold]
            ],
        )
        rnd.contributors = list(survivors)
        self._phase(rnd, "combining", self._combine_s)
        await self._to(sorted(peer_rounds.live(rnd, self._peers, rnd.exchange)), message)

    async def _expire(self, rnd: OpenRound, phase: Phase) -> None:
        if self._round is not rnd or rnd.phase != phase or self._stopped:
            return
        if phase == "sharing":
            log.warning(
                "[%s] round %d: shares still missing after %g s",
                *(self.task.id, rnd.number, SHARES_S),
            )
            await self._start_masking(rnd)
        elif phase == "unmasking":
            await self._relay_reveals(rnd)
        else:
            await super()._expire(rnd, phase)
            return
        await self._advance()

    async def _abort(self, rnd: OpenRound, reason: str) -> None:
        """End `rnd` without a result: its members keep the round's model, the next opens."""
        if rnd.timer is not None:
            rnd.timer.cancel()
        log.warning(
            "[%s] round %d: secure aggregation aborted: %s", self.task.id, rnd.number, reason
        )
        members = sorted(peer_rounds.live(rnd, self._peers))
        # the members still in the secure round answer the abort with their digest once their
        # training is done; the next round waits for them (at most a round's deadline), or it
        # would start while they train and leave them out. The others (left out, not on the
        # roster) keep the round's model for the next round, as every peer does
        secure = self._sum if self._sum_of is rnd else None
        busy = set(secure.setup_ids) if secure is not None and secure.setup_ids else rnd.exchange
        for m in members:
            peer = self._peers[m]
            if m not in busy and self._holds_model(peer):
                peer.holds = (rnd.number + 1, peer.holds[1] if peer.holds else "")
        self._round_no = rnd.number + 1
        self._round = None
        timer = asyncio.get_running_loop().call_later(self._exchange_s, self._settled)
        self._settling = (self._round_no, set(busy) & set(members), timer)
        await self._to(members, SecureAbort(round=rnd.number, reason=reason[:1000]))
        described = self._described(rnd) | {"aborted": reason}
        record = RoundRecord(
            round=rnd.number,
            contributors=0,
            num_samples=0,
            digest=self._agreed or "",
            duration_s=time.monotonic() - rnd.started,
            aggregation=described,
        )
        await self._save_record(record)
        self._status.changed()

    def _may_start(self) -> bool:
        """After an abort, the next round starts once the aborted round's members said they
        hold the model again (their `digest`), or a round's deadline passed."""
        if self._settling is None:
            return True
        number, waiting, timer = self._settling
        pending = [
            m
            for m in waiting
            if m in self._peers and (self._peers[m].holds or (-1, ""))[0] != number
        ]
        if pending:
            return False
        timer.cancel()
        self._settling = None
        return True

    def _settled(self) -> None:
        if self._settling is not None:
            self._settling = None
            self._spawn(self._advance())

    def _described(self, rnd: OpenRound) -> dict[str, Any]:
        described = super()._described(rnd) | {
            "secure": True,
            "clip": self._settings.clip,
            "weight_cap": self._settings.weight_cap,
        }
        if self._sum is not None and self._sum_of is rnd and self._sum.setup_ids:
            described |= {
                "threshold": self._sum.threshold,
                "members": len(self._sum.setup_ids),
                "dropped": len(self._sum.split[1]),
                "scale_bits": self._sum.bits,
            }
        return described

    # -- helpers -------------------------------------------------------------------------------
    def _phase(self, rnd: OpenRound, phase: Phase, seconds: float) -> None:
        if rnd.timer is not None:
            rnd.timer.cancel()
        rnd.phase = phase
        rnd.timer = self._timer(seconds, rnd, phase)

    async def _to(
        self,
        identities: list[str],
        message: SecureSetup | SecureInbox | SecureUnmask | SecureReveals | SecureAbort,
    ) -> None:
        for identity in identities:
            peer = self._peers.get(identity)
            if peer is not None:
                await peer.participant.send(message)


def _at_least_three(members: tuple[str, ...], what: str) -> None:
    """Every peer reads the round's sum: with two members in it, each would read the other's
    update from it (`RoundAborted` then)."""
    if len(members) < SECURE_MIN_PARTICIPANTS:
        raise RoundAborted(
            f"only {len(members)} {what}: with fewer than {SECURE_MIN_PARTICIPANTS} every peer "
            "could read another's update from the sum"
        )
