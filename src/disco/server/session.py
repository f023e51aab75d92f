"""One federated training session per task: who takes part, which round is open, when it closes.

The session holds round ``r`` and its global model ``G_r``. Participants join at any time and get
``G_r``; each sends at most one `ModelUpdate` per round. Round ``r`` closes when

* every connected participant has reported and at least ``min_participants`` did, or
* the deadline has passed and at least ``min_participants`` reported.

The deadline is ``round_deadline_s`` after the *first accepted update* of the round: it bounds the
wait for stragglers once someone has finished, without cutting slow-but-alive training short.
If it passes with fewer than ``min_participants`` reports, the round stays open and closes as soon
as the minimum is met. A participant that leaves is no longer waited for; its accepted update still
counts. Closing aggregates off the event loop, persists the new model, and only then broadcasts
`RoundResult`. Updates for the closing round that arrive meanwhile are refused as stale.

**Identity.** A connection is not a participant (`disco.server.participants`): with a
``participant_key`` it is the same participant on every connection, so after a reconnect its
update counts once (a resend is a ``duplicate``) and the aggregator may remember it across
rounds. A key-less participant's resent update is recognised by a heuristic instead
(`disco.server.updates.check_resent`). The round's updates, the collector and the reports are
keyed by identity; "connected participants" counts identities.

Each accepted update goes straight to the round's `RoundCollector` (`Aggregator.open_round`) and
the session keeps only its digest, count and metrics: with FedAvg, which folds updates into one
running sum, a round's memory does not grow with its participants. A round does not close while
an update is being added.

Phases: ``collecting → aggregating → collecting …``, and ``stopped`` at shutdown. The class is
pure asyncio (no sockets): a participant is anything with ``name``, ``kind`` and ``async send``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from disco.aggregation import Aggregator, RoundCollector, build_aggregator
from disco.errors import AggregationError, SessionError
from disco.protocol import (
    ErrorMessage,
    Metrics,
    ModelUpdate,
    RoundResult,
    SecureAbort,
    SecureInbox,
    SecureSetup,
    SecureUnmask,
    SessionState,
    Status,
    UpdateAck,
    Welcome,
)
from disco.server.participants import Connections, Participant, identity_of, state_of, who
from disco.server.status import StatusCast
from disco.server.store import RoundRecord
from disco.server.updates import (
    Accepted,
    check_resent,
    check_round,
    round_record,
    validate_update,
)
from disco.task import Task
from disco.weights import Weights

__all__ = ["FederatedSession", "Outgoing", "Participant", "Phase", "SaveRound", "identity_of"]

log = logging.getLogger("disco.server")

Phase = Literal["collecting", "aggregating", "stopped"]
Outgoing = (
    Welcome
    | Status
    | UpdateAck
    | RoundResult
    | ErrorMessage
    | SecureSetup
    | SecureInbox
    | SecureUnmask
    | SecureAbort
)
"""What a federated session sends (the secure messages: `disco.server.secure`)."""
SaveRound = Callable[[str, int, Weights, RoundRecord], None]
"""Persist ``(task_id, new_round, weights, record)``; called in a worker thread."""

_TRANSITIONS: dict[Phase, set[Phase]] = {
    "collecting": {"aggregating", "stopped"},
    "aggregating": {"collecting", "stopped"},
    "stopped": set(),
}
_THREAD_VALIDATION_SIZE = 1_000_000  # validate larger updates off the event loop
_RETRY_S = (1.0, 30.0)  # first and largest delay before retrying a failed close


class FederatedSession:
    """Round control for one task; safe under concurrent joins, leaves and updates."""

    capabilities: tuple[str, ...] = ()
    """The capabilities a connection uses in this session (`Welcome.capabilities`)."""

    def __init__(
        self,
        task: Task,
        round: int,
        weights: Weights,
        *,
        save: SaveRound | None = None,
        digest: str | None = None,
        send_timeout_s: float = 30.0,
        aggregator: Aggregator | None = None,
    ):
        self.task = task
        self._round = self._announced = round
        self._weights = weights
        self._digest = digest or weights.digest()
        self._save = save
        self._aggregator: Aggregator = aggregator or build_aggregator(task.training)
        self._collector: RoundCollector = self._aggregator.open_round(weights, round)
        self._adding = 0  # updates being added to the collector (the round waits for them)
        self._send_timeout_s = send_timeout_s
        self._phase: Phase = "collecting"
        self._connections = Connections(task.id)  # connections and the identities they are
        self._updates: dict[str, Accepted] = {}  # identity → its accepted update
        # (name, kind, digest) → the identities of accepted updates with them: what a key-less
        # participant's resent update is checked against (without scanning every update)
        self._by_content: dict[tuple[str, str, str], set[str]] = {}
        self._opened_at = time.monotonic()
        self._deadline_at: float | None = None
        self._deadline_passed = False
        self._timer: asyncio.TimerHandle | None = None  # the round's deadline
        self._retry_timer: asyncio.TimerHandle | None = None  # after a failed close
        self._retry_s = _RETRY_S[0]
        self._closing: asyncio.Task[None] | None = None
        self._stopping = False  # shutting down: no new close starts (a started one finishes)
        self._round_changed = asyncio.Event()
        self._status = StatusCast(
            lambda: self._broadcast(self.status()), audience=lambda: self.participants
        )  # coalesced

    # -- read-only view ---------------------------------------------------------------------
    @property
    def round(self) -> int:
        """The open round."""
        return self._round

    @property
    def weights(self) -> Weights:
        """The global model of the open round."""
        return self._weights

    @property
    def digest(self) -> str:
        """Digest of the global model of the open round."""
        return self._digest

    @property
    def phase(self) -> Phase:
        """collecting, aggregating or stopped."""
        return self._phase

    @property
    def participants(self) -> int:
        """Number of connected participants (identities; one may have several connections)."""
        return len(self._connections.identities)

    def has_room(self, key: str | None, limit: int) -> bool:
        """Whether a participant saying hello with `key` may join under a limit of `limit`
        participants (one already connected with that key always may: it is reconnecting)."""
        if self.participants < limit:
            return True
        return key is not None and identity_of(self.task.id, key) in self._connections.identities

    @property
    def reported(self) -> int:
        """Updates accepted in the open round."""
        return len(self._updates)

    @property
    def state(self) -> SessionState:
        """Whether enough participants are connected to train."""
        return state_of(self.participants, self.task.training.min_participants)

    def status(self) -> Status:
        """The session's state as a protocol message."""
        return Status(
            round=self._round,
            participants=self.participants,
            min_participants=self.task.training.min_participants,
            reported=len(self._updates),
            state=self.state,
        )

    def deadline_in(self) -> float | None:
        """Seconds until the open round's deadline (negative once passed), None if not started."""
        return None if self._deadline_at is None else self._deadline_at - time.monotonic()

    # -- participants -----------------------------------------------------------------------
    async def join(self, participant: Participant, key: str | None = None) -> str:
        """Add a connection, send it `Welcome` and the others `Status`; return its connection id.

        With `key` (the participant's ``participant_key``) the connection is the participant
        `identity_of(task, key)`, the same as on its earlier connections; without, a new one.
        `Welcome.client_id` carries the identity.
        """
        while self._closing is not None:  # a joiner gets the model of the round that opens next
            await asyncio.shield(self._closing)
        self._require_open()
        joined = self._connections.add(participant, key)
        n, identity = self.participants, joined.identity
        if joined.back:
            how = " (on a second connection)" if joined.also else ""
            self._log("%s rejoined as %s%s (%d connected)", who(participant), identity, how, n)
        else:
            self._log("%s joined as %s (%d connected)", who(participant), identity, n)
        welcome = Welcome(
            client_id=identity,
            task_id=self.task.id,
            round=self._round,
            weights=self._weights,
            participants=n,
            min_participants=self.task.training.min_participants,
            state=self.state,
            capabilities=list(self.capabilities),
        )
        await self._send(participant, welcome)
        self._status.changed()
        return joined.connection

    async def leave(self, connection: str) -> None:
        """Remove a connection (idempotent); its participant's accepted update still counts."""
        left = self._connections.remove(connection)
        if left is None:
            return
        participant, identity = left
        n = self.participants
        if identity in self._connections.identities:
            self._log(
                "%s (%s) closed one of its connections (%d connected)",
                *(who(participant), identity, n),
            )
        else:
            self._log("%s (%s) left (%d connected)", who(participant), identity, n)
        self._maybe_close()
        self._status.changed()

    # -- updates ----------------------------------------------------------------------------
    async def submit(self, connection: str, update: ModelUpdate) -> UpdateAck | ErrorMessage:
        """Check and record an update from a joined connection; answer the sender with
        `UpdateAck` or `ErrorMessage`."""
        participant = self._connections.participant(connection)
        if participant is None:
            raise SessionError(f"connection {connection!r} has not joined task {self.task.id!r}")
        identity = self._connections.identity(connection)
        reply: UpdateAck | ErrorMessage | None = self._check_round(identity, update)
        if reply is None:
            checked = await self._validate(update)
            if isinstance(checked, ErrorMessage):
                reply = checked
            else:  # state may have moved while validating: check again, then record
                digest = checked.digest()
                keyed = self._connections.keyed(connection)
                reply = (
                    self._check_round(identity, update)
                    or (None if keyed else self._check_resent(participant, digest))
                    or await self._accept(identity, participant, update, checked, digest)
                )
        await self._send(participant, reply)
        if isinstance(reply, UpdateAck):
            self._status.changed()
        return reply

    def _check_round(self, identity: str, update: ModelUpdate) -> ErrorMessage | None:
        self._require_open()
        closing = self._phase == "aggregating"
        return check_round(self._round, update.round, identity in self._updates, closing)

    def _check_resent(self, participant: Participant, digest: str) -> ErrorMessage | None:
        """Refuse a copy of an update whose key-less sender dropped and came back (a new id)."""
        same = self._by_content.get((participant.name, participant.kind, digest), ())
        candidates = {identity: self._updates[identity] for identity in same}
        return check_resent(
            candidates, self._connections.identities, participant, digest, self._round
        )

    def _keep(self, accepted: Accepted) -> None:
        """Hold an accepted update until its round closes."""
        self._updates[accepted.participant] = accepted
        content = (accepted.name, accepted.kind, accepted.digest)
        self._by_content.setdefault(content, set()).add(accepted.participant)

    def _drop(self, identity: str) -> None:
        """Forget an update the collector did not take."""
        accepted = self._updates.pop(identity)
        content = (accepted.name, accepted.kind, accepted.digest)
        self._by_content[content].discard(identity)
        if not self._by_content[content]:
            del self._by_content[content]

    async def _validate(self, update: ModelUpdate) -> Weights | ErrorMessage:
        """The update's weights in canonical order, or the error naming what is wrong."""
        if self._weights.size > _THREAD_VALIDATION_SIZE:
            return await asyncio.to_thread(
                validate_update, update.weights, self._weights, self._round
            )
        return validate_update(update.weights, self._weights, self._round)

    async def _accept(
        self,
        identity: str,
        participant: Participant,
        update: ModelUpdate,
        weights: Weights,
        digest: str,
    ) -> UpdateAck | ErrorMessage:
        accepted = Accepted(
            *(identity, participant.name, participant.kind, update.num_samples),
            *(update.metrics, digest),
        )
        self._keep(accepted)  # its place: a second update is a duplicate now
        add = functools.partial(self._collector.add, identity, weights, update.num_samples)
        refused: AggregationError | None = None
        self._adding += 1
        try:
            if weights.size > _THREAD_VALIDATION_SIZE:
                # shielded: a cancelled wait must not leave the thread adding behind our back
                await asyncio.shield(asyncio.to_thread(add))
            else:
                add()
        except AggregationError as exc:
            refused = exc
        except BaseException:
            self._adding -= 1
            self._drop(identity)  # the collector took nothing: neither do we
            self._maybe_close()  # a deadline or a leave may have come meanwhile
            raise
        self._adding -= 1
        if refused is not None:
            self._drop(identity)
            self._maybe_close()  # a deadline or a leave may have come meanwhile
            self._log(
                "round %d: refused update from %s: %s", self._round, who(participant), refused
            )
            return ErrorMessage(code="out_of_range", message=str(refused), round=self._round)
        if self._timer is None and not self._deadline_passed:
            delay = self.task.training.round_deadline_s
            self._deadline_at = time.monotonic() + delay
            self._timer = asyncio.get_running_loop().call_later(
                delay, self._on_deadline, self._round
            )
        self._log(
            "round %d: accepted update from %s (%s): num_samples=%d reported=%d/%d",
            *(self._round, who(participant), identity, update.num_samples),
            *(len(self._updates), self.participants),
        )
        ack = UpdateAck(
            round=self._round, reported=len(self._updates), participants=self.participants
        )
        self._maybe_close()
        return ack

    # -- closing ----------------------------------------------------------------------------
    def _on_deadline(self, round: int) -> None:
        if round != self._round or self._phase != "collecting":
            return
        self._timer = None
        self._deadline_passed = True
        n, minimum = len(self._updates), self.task.training.min_participants
        self._log("round %d: deadline passed with %d updates (min %d)", round, n, minimum)
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Start closing the round if its closing rule holds (synchronous: no await)."""
        if self._phase != "collecting" or self._closing is not None or self._adding:
            return
        if self._stopping:
            return
        if len(self._updates) < self.task.training.min_participants:
            return
        connected = self._connections.identities  # sizes first: the subset test is O(n)
        everyone = len(connected) <= len(self._updates) and connected <= self._updates.keys()
        if not (everyone or self._deadline_passed):
            return
        self._enter("aggregating")
        self._cancel_timer()
        self._closing = asyncio.get_running_loop().create_task(
            self._close(self._round, list(self._updates.values()))
        )

    async def _close(self, r: int, accepted: Sequence[Accepted]) -> None:
        try:
            weights, record = await asyncio.to_thread(self._aggregate_and_save, r, accepted)
        except Exception:
            self._closing = None
            if self._phase == "stopped":
                return
            log.exception(
                "task %s round %d: closing failed; retry in %.0f s", self.task.id, r, self._retry_s
            )
            self._enter("collecting")
            self._retry_timer = asyncio.get_running_loop().call_later(self._retry_s, self._retry)
            self._retry_s = min(2 * self._retry_s, _RETRY_S[1])
            return
        self._closing = None
        if self._phase == "stopped":
            return
        self._round, self._weights, self._digest = r + 1, weights, record.digest
        self._collector = self._aggregator.open_round(weights, r + 1)
        self._updates, self._deadline_at, self._deadline_passed = {}, None, False
        self._by_content = {}
        self._opened_at, self._retry_s = time.monotonic(), _RETRY_S[0]
        self._enter("collecting")
        self._round_opened()
        shares = ", ".join(
            f"{who(p)} n={p.num_samples} share={p.share:.4f}"
            + ("" if p.selected else " not selected")
            + (" clipped" if p.clipped else "")
            for p in record.participants
        )
        self._log(
            "round %d closed: rule=%s contributors=%d num_samples=%d duration=%.2fs digest=%s "
            "weights=[%s]",
            *(r, self._aggregator.rule, record.contributors, record.num_samples),
            *(record.duration_s, record.digest[:12], shares),
        )
        await self._broadcast(self._round_result(r, weights, record))
        self._announced = r + 1  # "round k is open" implies everyone was sent its model
        changed, self._round_changed = self._round_changed, asyncio.Event()
        changed.set()

    def _round_result(self, r: int, weights: Weights, record: RoundRecord) -> Outgoing:
        """The message that tells everyone round `r` closed with `weights`."""
        return RoundResult(
            round=r + 1,
            weights=weights,
            contributors=record.contributors,
            num_samples=record.num_samples,
            metrics=Metrics(**record.metrics),
        )

    def _round_opened(self) -> None:
        """Round `self._round` just opened, before anyone is told (a hook: nothing to do here)."""

    def _retry(self) -> None:
        self._retry_timer = None
        self._maybe_close()

    def _aggregate_and_save(
        self, r: int, accepted: Sequence[Accepted]
    ) -> tuple[Weights, RoundRecord]:
        """Aggregate and persist (worker thread); nothing here touches session state but the
        round's collector and the aggregator's own (one close at a time)."""
        result = self._collector.result()
        duration_s = time.monotonic() - self._opened_at
        record = round_record(r, accepted, result, duration_s, self._aggregator.describe())
        if self._save is not None:
            self._save(self.task.id, r + 1, result.weights, record)
        return result.weights, record

    # -- waiting and shutdown ---------------------------------------------------------------
    async def wait_for_round(self, round: int, timeout: float) -> None:
        """Return once round `round` is open and announced; `SessionError` after `timeout` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self._announced < round:
            remaining = end - loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    await self._round_changed.wait()
            except TimeoutError:
                raise SessionError(
                    f"task {self.task.id!r}: round {round} did not open within {timeout} s "
                    f"(round {self._round} is open, {self.reported} reported)"
                ) from None

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop: cancel timers and let a closing round finish persisting (at most `timeout`)."""
        if self._phase == "stopped":
            return
        self._stopping = True
        self._cancel_timer()
        if self._closing is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._closing)
            except TimeoutError:
                log.error("task %s: round %d still closing at shutdown", self.task.id, self._round)
        self._cancel_timer()  # a failed close may have scheduled a retry
        await self._status.aclose()
        self._enter("stopped")

    # -- helpers ----------------------------------------------------------------------------
    def _enter(self, phase: Phase) -> None:
        if phase not in _TRANSITIONS[self._phase]:
            raise SessionError(f"task {self.task.id!r}: illegal transition {self._phase} → {phase}")
        self._phase = phase

    def _require_open(self) -> None:
        if self._phase == "stopped":
            raise SessionError(f"task {self.task.id!r}: the session is stopped")

    def _cancel_timer(self) -> None:
        for timer in (self._timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._retry_timer = None

    def _log(self, message: str, *args: object) -> None:
        log.info("task %s " + message, self.task.id, *args)

    async def _send(self, participant: Participant, message: Outgoing) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await participant.send(message)
        except Exception as exc:  # one broken participant must not disturb the others
            name = who(participant)
            log.warning("task %s: cannot send %s to %s: %r", self.task.id, message.type, name, exc)

    async def _broadcast(self, message: Outgoing, exclude: str | None = None) -> None:
        """Send `message` to every connection but `exclude` (a connection id)."""
        targets = self._connections.participants(exclude)
        await asyncio.gather(*(self._send(p, message) for p in targets))
