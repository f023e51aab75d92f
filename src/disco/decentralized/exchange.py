"""What peers say to each other on their channels: updates, acknowledgements, models.

`PeerExchange` reads every channel a peer has (one reader per channel), and:

* keeps each valid `PeerUpdate` of a round it takes part in — the digest must match the weights
  (SHA-256, docs/protocol.md §12), the names and shapes the task's model, every value finite,
  and the task's rule must be able to take it (the mean: every change below 256) —
  acknowledges it (`PeerAck`) and calls ``on_update`` (the peer tells the server whose updates it
  holds); an invalid one is refused with an `ErrorMessage` to the sender and changes nothing;
* in a task with secure aggregation, keeps each valid `PeerMasked` (a secure round's masked
  input, docs/protocol.md §19.1) the same way instead: the round open here, 1 + the model's values
  in 32-bit words, and the SHA-256 of the words matching its digest. Updates travel only masked
  there, and only in the clear elsewhere: the other kind is refused;
* answers a `ModelRequest` with the model it holds for that round (`PeerModel`) or an error;
* hands a `PeerModel` to whoever `fetch`-es it, after checking its digest.

Frames are the protocol's msgpack frames (`disco.protocol.codec`); a frame a peer may not send
(a server message, garbage) closes that channel with 1003.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from disco.errors import DiscoError, ProtocolError
from disco.protocol import (
    DEFAULT_MAX_FRAME,
    ErrorMessage,
    ModelRequest,
    PeerAck,
    PeerMasked,
    PeerModel,
    PeerUpdate,
    decode,
    encode,
)
from disco.transport import Channel, ChannelClosed
from disco.weights import Weights

__all__ = ["PeerExchange", "PeerTraffic"]

log = logging.getLogger("disco.client.peers")


@dataclass
class PeerTraffic:
    """Bytes this peer sent to and received from other peers."""

    bytes_up: int = 0
    bytes_down: int = 0


class PeerExchange:
    """The peer-to-peer side of one peer: readers, received updates, held models."""

    def __init__(
        self,
        reference: Weights,
        on_update: Callable[[int], None],
        acceptable: Callable[[int, Weights], str | None] = lambda round, weights: None,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        secure: bool = False,
    ) -> None:
        self._reference = reference  # names and shapes every update must have
        self._on_update = on_update
        self._acceptable = acceptable  # the aggregation rule's own limits
        self._max_frame = max_frame
        self._secure = secure  # updates travel masked (`PeerMasked`), never in the clear
        self.models: dict[int, Weights] = {}
        """Models this peer holds, by the round they open (served to peers that ask)."""
        self.updates: dict[int, dict[str, PeerUpdate]] = {}
        """Valid updates received, by round and sender."""
        self.masked: dict[int, dict[str, PeerMasked]] = {}
        """Valid masked inputs received (secure rounds), by round and sender."""
        self.accepting: set[int] = set()
        """Rounds whose updates are kept (others are refused as stale)."""
        self.acks: dict[int, set[str]] = {}
        self.traffic = PeerTraffic()
        self.changed = asyncio.Event()
        self._fetches: dict[tuple[str, int], asyncio.Future[PeerModel]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}

    # -- channels --------------------------------------------------------------------------
    def watch(self, peer: str, channel: Channel) -> None:
        """Start reading a new channel to `peer` (the connector calls this)."""
        old = self._readers.get(peer)
        if old is not None:
            old.cancel()
        self._readers[peer] = asyncio.get_running_loop().create_task(self._read(peer, channel))

    async def send(
        self,
        channel: Channel,
        message: PeerUpdate | PeerMasked | PeerAck | ModelRequest | PeerModel | ErrorMessage,
        timeout: float,
    ) -> None:
        frame = encode(message)
        await channel.send(frame, timeout=timeout)
        self.traffic.bytes_up += len(frame)

    async def _read(self, peer: str, channel: Channel) -> None:
        try:
            while True:
                frame = await channel.receive(timeout=None)
                self.traffic.bytes_down += len(frame)
                try:
                    message = decode(frame, self._max_frame)
                except ProtocolError as exc:
                    await channel.close(1003, f"not a peer frame: {exc}"[:100])
                    return
                await self._handle(peer, channel, message)
        except ChannelClosed as exc:
            log.debug("channel to %s closed: %s", peer, exc)
        except Exception:
            log.exception("reading from peer %s failed", peer)
            with contextlib.suppress(Exception):
                await channel.close(1011, "reader failed")
        finally:
            if self._readers.get(peer) is asyncio.current_task():  # not replaced by a new one
                for (who, _), future in list(self._fetches.items()):
                    if who == peer and not future.done():
                        future.set_exception(ChannelClosed(f"the channel to {peer} closed", 1006))
            self.changed.set()

    async def _handle(self, peer: str, channel: Channel, message: object) -> None:
        if isinstance(message, PeerUpdate):
            problem = self._check(message)
            if problem is not None:
                log.warning(
                    "refused the update of %s for round %d: %s", peer, message.round, problem
                )
                error = ErrorMessage(code="unexpected", message=problem, round=message.round)
                await self.send(channel, error, timeout=30)
                return
            self.updates.setdefault(message.round, {})[peer] = message
            await self.send(channel, PeerAck(round=message.round, digest=message.digest), 30)
            self.changed.set()
            self._on_update(message.round)
        elif isinstance(message, PeerMasked):
            problem = self._check_masked(peer, message)
            if problem is not None:
                log.warning(
                    "refused the masked input of %s for round %d: %s", peer, message.round, problem
                )
                error = ErrorMessage(code="unexpected", message=problem, round=message.round)
                await self.send(channel, error, timeout=30)
                return
            self.masked.setdefault(message.round, {})[peer] = message
            await self.send(channel, PeerAck(round=message.round, digest=message.digest), 30)
            self.changed.set()
            self._on_update(message.round)
        elif isinstance(message, PeerAck):
            self.acks.setdefault(message.round, set()).add(peer)
            self.changed.set()
        elif isinstance(message, ModelRequest):
            model = self.models.get(message.round)
            if model is None:
                held = sorted(self.models)
                text = f"this peer holds no model of round {message.round} (it holds {held})"
                await self.send(
                    channel, ErrorMessage(code="stale", message=text, round=message.round), 30
                )
            else:
                answer = PeerModel(round=message.round, weights=model, digest=model.digest())
                await self.send(channel, answer, timeout=300)
        elif isinstance(message, PeerModel):
            future = self._fetches.get((peer, message.round))
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, ErrorMessage):
            pending = [(k, f) for k, f in self._fetches.items() if k[0] == peer and not f.done()]
            for _, future in pending:
                future.set_exception(DiscoError(f"peer {peer} refused: {message.message}"))
            if not pending:
                log.info("peer %s says: [%s] %s", peer, message.code, message.message)
        else:
            await channel.close(1003, f"peers do not send {getattr(message, 'type', '?')!r}")

    def _check(self, update: PeerUpdate) -> str | None:
        if update.round not in self.accepting:
            return f"round {update.round} is not open here"
        if self._secure:
            return (
                "this task uses secure aggregation: updates travel masked (peer_masked), never in "
                "the clear"
            )
        try:
            update.weights.check_like(self._reference, "update")
        except DiscoError as exc:
            return str(exc)
        if not update.weights.is_finite():
            return "the update holds NaN or infinite values"
        if update.weights.digest() != update.digest:
            return "the update's digest does not match its weights (damaged in transit?)"
        return self._acceptable(update.round, update.weights)

    def _check_masked(self, peer: str, masked: PeerMasked) -> str | None:
        if masked.round not in self.accepting:
            return f"round {masked.round} is not open here"
        if not self._secure:
            return "this task does not use secure aggregation: its updates travel as peer_update"
        if peer in self.masked.get(masked.round, {}):  # the first one stays
            return f"a masked input of round {masked.round} from this peer arrived already"
        length = 1 + self._reference.size  # the weight word, then one word per value
        if len(masked.words) % 4:
            return f"a masked input is whole 32-bit words, not {len(masked.words)} bytes"
        if len(masked.words) != 4 * length:
            return f"a masked input of round {masked.round} is {length} words"
        if hashlib.sha256(masked.words).hexdigest() != masked.digest:
            return "the masked input's digest does not match its words (damaged in transit?)"
        return None

    def holders(self, round: int) -> list[str]:
        """The peers whose update or masked input of `round` this peer holds (sorted)."""
        return sorted(set(self.updates.get(round, {})) | set(self.masked.get(round, {})))

    # -- models ------------------------------------------------------------------------------
    async def fetch(self, peer: str, channel: Channel, round: int, timeout: float) -> Weights:
        """The model that opens `round`, asked of `peer`; its digest checked."""
        future: asyncio.Future[PeerModel] = asyncio.get_running_loop().create_future()
        self._fetches[(peer, round)] = future
        try:
            await self.send(channel, ModelRequest(round=round), timeout=timeout)
            async with asyncio.timeout(timeout):
                answer = await future
        finally:
            self._fetches.pop((peer, round), None)
        answer.weights.check_like(self._reference, f"the model from {peer}")
        if answer.weights.digest() != answer.digest:
            raise DiscoError(f"the model from {peer} does not match its digest")
        return answer.weights

    def forget_before(self, round: int) -> None:
        """Drop the models and updates of rounds before `round`."""
        for r in [r for r in self.models if r < round]:
            del self.models[r]
        for r in [r for r in self.updates if r < round]:
            del self.updates[r]
        for r in [r for r in self.masked if r < round]:
            del self.masked[r]
        for r in [r for r in self.acks if r < round]:
            del self.acks[r]

    async def aclose(self) -> None:
        for task in self._readers.values():
            task.cancel()
        for task in self._readers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._readers.clear()
