"""A federated session with secure aggregation: the server combines updates it never sees.

`SecureSession` is a `FederatedSession` whose round is collected in the four phases of
docs/secure_aggregation.md §10 instead of as plain updates (docs/protocol.md §19). Joining,
leaving, status, persistence and the `RoundResult` broadcast are the federated session's; what
differs is how round ``r`` gathers its result:

1. **keys** — every connected participant sends `SecureKeys` for ``r`` as the round opens (it
   trains meanwhile). Once ``min_participants`` have, the server waits at most ``KEYS_S`` more
   for the others connected, then fixes the roster and sends each member `SecureSetup`.
2. **shares** — each member answers with `SecureShares`; when all have, or after ``SHARES_S``,
   each one that shared gets `SecureInbox`.
3. **masked inputs** — members send `SecureInput` once trained; when all have, or
   ``round_deadline_s`` after the inboxes went out, the survivors get `SecureUnmask`.
4. **unmasking** — survivors answer with `SecureReveal`; as soon as the threshold have (or
   ``UNMASK_S`` passed, or no survivor is left to answer, with fewer: abort), the server rebuilds
   the masks off the event loop, decodes the
   sum into the weighted mean change and closes the round as any federated round.

Participants that leave are no longer waited for. Too few members at any phase, or shares that do
not rebuild a member's secret, abort the round: the model stays, a history row says why, and
`SecureAbort` to every connection opens round ``r + 1`` with the same model and fresh keys.
The server holds one masked vector (the running sum), never an update.

Shutting down (`aclose`), the round moves no further and is not combined; none of its secure
state is saved. Restarted, the session opens the saved round at the keys phase: its members, told
by ``restarting`` and close code 1012, send fresh keys and the round runs from the start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import numpy as np

from disco.errors import SecureAggregationError
from disco.protocol import (
    ErrorMessage,
    ModelUpdate,
    SecureAbort,
    SecureEnvelope,
    SecureInbox,
    SecureInput,
    SecureKeys,
    SecureMember,
    SecureReveal,
    SecureSetup,
    SecureShares,
    SecureUnmask,
    Status,
    UpdateAck,
)
from disco.protocol.secure import KEYS_S, SHARES_S, UNMASK_S
from disco.secure.aggregator import RoundAborted, SecureSum
from disco.secure.mean import secure_mean
from disco.secure.roster import MIN_MEMBERS, RoundSetup
from disco.server.participants import Participant, who
from disco.server.session import FederatedSession, Outgoing
from disco.server.store import RoundRecord
from disco.server.updates import Accepted
from disco.task import Task
from disco.weights import Weights

__all__ = [
    "KEYS_S",
    "SHARES_S",
    "UNMASK_S",
    "SecureMessage",
    "SecureSession",
    "setup_message",
]

log = logging.getLogger("disco.server")


SecureMessage = SecureKeys | SecureShares | SecureInput | SecureReveal
_STAGES = ("keys", "shares", "masked", "unmasking")
_PHASE_OF: dict[type, str] = {
    SecureKeys: "keys",
    SecureShares: "shares",
    SecureInput: "masked",
    SecureReveal: "unmasking",
}


class SecureSession(FederatedSession):
    """Round control for one federated task with secure aggregation."""

    capabilities = ("secure_aggregation",)

    def __init__(self, task: Task, round: int, weights: Weights, **kwargs: object) -> None:
        settings = task.training.secure_aggregation
        if settings is None:
            raise SecureAggregationError(f"task {task.id!r} does not use secure aggregation")
        super().__init__(task, round, weights, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._values = weights.size
        self._timer_secure: asyncio.TimerHandle | None = None
        self._open_secure()

    # -- the round's state ------------------------------------------------------------------
    def _open_secure(self) -> None:
        s = self._settings
        self._sum = SecureSum(
            self.task.id,
            self._round,
            values=self._values,
            clip=s.clip,
            weight_cap=s.weight_cap,
            threshold=s.threshold,
        )
        self._stage = "keys"
        self._stage_due = False  # the stage's deadline passed
        self._members: dict[str, str] = {}  # identity → name, for logs
        self._inputs: set[str] = set()
        self._abort: str | None = None
        self._setup_message: SecureSetup | None = None
        self._unmask_message: SecureUnmask | None = None
        self._cancel_secure_timer()

    def _round_opened(self) -> None:
        self._open_secure()

    async def join(self, participant: Participant, key: str | None = None) -> str:
        """Join as in any federated session; a member of the round in progress that comes back
        (a reconnect with its participant key) is sent again what it still has to answer."""
        connection = await super().join(participant, key)
        catch_up = self._catch_up(self._connections.identity(connection))
        if catch_up is not None:
            await self._send(participant, catch_up)
        return connection

    def _catch_up(self, identity: str) -> SecureSetup | SecureInbox | SecureUnmask | None:
        if self._phase != "collecting":
            return None
        if self._stage == "shares" and identity in self._sum.setup_ids:
            if identity not in self._sum.shared:
                return self._setup_message
        elif self._stage == "masked" and identity in self._sum.senders:
            if identity not in self._inputs:
                return self._inbox_of(identity)
        elif self._stage == "unmasking" and identity in self._sum.split[0]:
            if identity not in self._sum.revealers:
                return self._unmask_message
        return None

    @property
    def reported(self) -> int:
        """Masked inputs received in the open round."""
        return len(self._inputs)

    def status(self) -> Status:
        return super().status().model_copy(update={"reported": len(self._inputs)})

    # -- messages ---------------------------------------------------------------------------
    async def submit(self, connection: str, update: ModelUpdate) -> UpdateAck | ErrorMessage:
        """A plain update is refused: the server must never see one in this session."""
        participant = self._connections.participant(connection)
        if participant is None:
            raise SecureAggregationError(f"connection {connection!r} has not joined")
        text = "this task uses secure aggregation: send masked inputs, not updates"
        reply = ErrorMessage(code="unexpected", message=text, round=self._round)
        await self._send(participant, reply)
        return reply

    async def receive(self, connection: str, message: SecureMessage) -> None:
        """A secure-aggregation message from a joined connection; a refusal is answered with
        `ErrorMessage` and changes nothing."""
        participant = self._connections.participant(connection)
        if participant is None:
            raise SecureAggregationError(f"connection {connection!r} has not joined")
        identity = self._connections.identity(connection)
        if isinstance(message, SecureReveal) and (
            message.round < self._round or self._phase == "aggregating"
        ):
            return  # the sum was unmasked with the threshold's shares: this one is not needed
        error = self._take(identity, message)
        if error is not None:
            await self._send(participant, error)
            return
        self._members.setdefault(identity, who(participant))
        if isinstance(message, SecureInput):
            self._status.changed()  # `reported` counts the masked inputs
        await self._advance()

    def _take(self, identity: str, message: SecureMessage) -> ErrorMessage | None:
        self._require_open()
        r = self._round
        if message.round < r or self._phase == "aggregating":
            text = f"round {message.round} is closed or closing; the next round starts soon"
            return ErrorMessage(code="stale", message=text, round=message.round)
        if message.round > r:
            return ErrorMessage(code="future", message=f"round {r} is open", round=message.round)
        phase = _PHASE_OF[type(message)]
        if _STAGES.index(phase) < _STAGES.index(self._stage):
            text = (
                f"the {phase} phase of round {r} is over: this round goes on without you; "
                "take part from the next round"
            )
            return ErrorMessage(code="stale", message=text, round=r)
        try:
            if isinstance(message, SecureKeys):
                # a participant that reconnects before the roster is fixed sends fresh keys
                self._sum.add_keys(identity, message.c_public, message.s_public, replace=True)
            elif isinstance(message, SecureShares):
                envelopes = {e.peer: e.data for e in message.envelopes}
                self._sum.add_shares(identity, message.commitment, envelopes)
            elif isinstance(message, SecureInput):
                if len(message.words) % 4:
                    text = f"a masked input is whole 32-bit words, not {len(message.words)} bytes"
                    return ErrorMessage(code="malformed", message=text, round=r)
                words = np.frombuffer(message.words, dtype="<u4").astype(np.uint32, copy=False)
                self._sum.add_masked(identity, words)
                self._inputs.add(identity)
            else:
                shares = [(s.of, s.kind, s.share) for s in message.shares]
                self._sum.add_reveal(identity, shares)
        except SecureAggregationError as exc:
            return ErrorMessage(code="unexpected", message=str(exc), round=r)
        return None

    # -- phases -----------------------------------------------------------------------------
    def _maybe_close(self) -> None:
        """The federated closing rule does not apply: a leave may end a phase instead. (After a
        failed close the retry lands here too: an aborted round closes again at once.)"""
        if self._phase != "collecting" or self._closing is not None:
            return
        if self._abort is not None:
            self._close_round()
        else:
            asyncio.get_running_loop().create_task(self._advance())

    async def _advance(self) -> None:
        """Move to the next phase if this one is complete (no awaits until the state moved).
        Shutting down, no phase moves: the round will not be combined by this process."""
        if self._phase != "collecting" or self._closing is not None or self._stopping:
            return
        live = set(self._connections.identities)
        try:
            if self._stage == "keys":
                await self._keys_done(live)
            elif self._stage == "shares":
                await self._shares_done(live)
            elif self._stage == "masked":
                await self._masked_done(live)
            elif self._stage == "unmasking":
                self._unmasked(live)
        except RoundAborted as exc:
            await self._aborted(str(exc))

    async def _keys_done(self, live: set[str]) -> None:
        sent = set(self._sum.keys)
        need = max(self.task.training.min_participants, MIN_MEMBERS)
        if len(sent & live) < need:
            return
        if not (live <= sent or self._stage_due):
            self._arm(KEYS_S)
            return
        setup = self._sum.setup(present=live)  # keys of those who left do not count
        self._next_stage("shares", SHARES_S)
        message = setup_message(setup)
        self._log(
            "round %d: roster of %d members, threshold %d, scale 2^%d",
            *(setup.round, len(setup.members), setup.threshold, setup.bits),
        )
        self._setup_message = message
        await self._to(setup.ids, message)

    async def _shares_done(self, live: set[str]) -> None:
        waiting = set(self._sum.setup_ids) & live
        if not (waiting <= set(self._sum.shared) or self._stage_due):
            return
        senders = self._sum.close_shares()
        self._next_stage("masked", self.task.training.round_deadline_s)
        await asyncio.gather(*(self._to([m], self._inbox_of(m)) for m in senders))

    def _inbox_of(self, member: str) -> SecureInbox:
        return SecureInbox(
            round=self._round,
            senders=list(self._sum.senders),
            envelopes=[SecureEnvelope(peer=p, data=d) for p, d in self._sum.inbox(member).items()],
        )

    async def _masked_done(self, live: set[str]) -> None:
        waiting = set(self._sum.senders) & live
        if not (waiting <= self._inputs or self._stage_due):
            return
        survivors, dropped = self._sum.close_masked()
        self._next_stage("unmasking", UNMASK_S)
        if dropped:
            self._log("round %d: %d member(s) sent no masked input", self._round, len(dropped))
        message = SecureUnmask(round=self._round, survivors=list(survivors), dropped=list(dropped))
        self._unmask_message = message
        await self._to(survivors, message)

    def _unmasked(self, live: set[str]) -> None:
        """Unmask as soon as the threshold is reached; abort once no one else can answer."""
        survivors, _ = self._sum.split
        revealed = self._sum.revealers
        enough = len(revealed) >= self._sum.threshold
        pending = (set(survivors) & live) - revealed
        if not enough and pending and not self._stage_due:
            return
        if not enough:
            raise RoundAborted(
                f"only {len(revealed)} survivors revealed their shares; unmasking needs "
                f"{self._sum.threshold}"
            )
        self._cancel_secure_timer()
        self._close_round()

    async def _aborted(self, reason: str) -> None:
        self._log("round %d: secure aggregation aborted: %s", self._round, reason)
        self._abort = reason
        self._close_round()

    def _round_result(self, r: int, weights: Weights, record: RoundRecord) -> Outgoing:
        """An aborted round is announced with `SecureAbort` (round r + 1 opens with the same
        model, which everyone has); a combined one with `RoundResult`."""
        aborted = record.aggregation.get("aborted")
        if isinstance(aborted, str):
            return SecureAbort(round=r, reason=aborted)
        return super()._round_result(r, weights, record)

    def _close_round(self) -> None:
        if self._stopping:  # shutting down: the round stays open, and its secure state is lost
            return  # with this process: after the restart its members start it with fresh keys
        self._cancel_secure_timer()
        self._enter("aggregating")
        self._closing = asyncio.get_running_loop().create_task(self._close(self._round, []))

    def _aggregate_and_save(
        self, r: int, accepted: Sequence[Accepted]
    ) -> tuple[Weights, RoundRecord]:
        """Unmask and decode the sum (worker thread), or keep the model after an abort."""
        described: dict[str, object] = {
            "rule": "mean",
            "secure": True,
            "clip": self._settings.clip,
            "weight_cap": self._settings.weight_cap,
        }
        if self._abort is not None:
            weights, contributors, total = self._weights, 0, 0
            described["aborted"] = self._abort
        else:
            survivors, dropped = self._sum.split
            bits = self._sum.bits
            try:
                weights, weight = secure_mean(
                    self._weights,
                    self._sum.result(),
                    bits,
                    len(survivors),
                    self._settings.weight_cap,
                )
            except SecureAggregationError as exc:  # wrong shares or inputs: the model stays
                self._abort = str(exc)
                log.warning("task %s round %d: %s", self.task.id, r, exc)
                return self._aggregate_and_save(r, accepted)
            contributors, total = len(survivors), weight
            described |= {
                "threshold": self._sum.threshold,
                "members": len(self._sum.setup_ids),
                "dropped": len(dropped),
                "scale_bits": bits,
            }
        record = RoundRecord(
            round=r,
            contributors=contributors,
            num_samples=total,
            digest=weights.digest(),
            duration_s=time.monotonic() - self._opened_at,
            aggregation=described,
        )
        if self._save is not None:
            self._save(self.task.id, r + 1, weights, record)
        return weights, record

    # -- helpers ----------------------------------------------------------------------------
    def _next_stage(self, stage: str, deadline_s: float) -> None:
        self._stage, self._stage_due = stage, False
        self._cancel_secure_timer()
        self._arm(deadline_s)

    def _arm(self, delay: float) -> None:
        if self._timer_secure is None and not self._stage_due:
            self._timer_secure = asyncio.get_running_loop().call_later(
                delay, self._on_stage_deadline, self._round, self._stage
            )

    def _on_stage_deadline(self, round: int, stage: str) -> None:
        if round != self._round or stage != self._stage or self._phase != "collecting":
            return
        self._timer_secure = None
        self._stage_due = True
        self._log("round %d: the %s phase's deadline passed", round, stage)
        asyncio.get_running_loop().create_task(self._advance())

    def _cancel_secure_timer(self) -> None:
        if self._timer_secure is not None:
            self._timer_secure.cancel()
        self._timer_secure = None

    def _cancel_timer(self) -> None:
        super()._cancel_timer()
        self._cancel_secure_timer()

    async def _to(
        self,
        identities: Sequence[str],
        message: SecureSetup | SecureInbox | SecureUnmask | SecureAbort,
    ) -> None:
        """Send `message` to every connection of these participants."""
        targets = [
            p for identity in identities for p in self._connections.participants_of(identity)
        ]
        await asyncio.gather(*(self._send(p, message) for p in targets))


def setup_message(setup: RoundSetup) -> SecureSetup:
    """The roster `setup` as the message its members receive."""
    return SecureSetup(
        round=setup.round,
        members=[SecureMember(**vars(m)) for m in setup.members],
        threshold=setup.threshold,
        clip=setup.clip,
        weight_cap=setup.weight_cap,
        bits=setup.bits,
        length=setup.length,
    )
