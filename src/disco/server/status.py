"""How a session tells its participants where it stands, without a message storm.

A `Status` goes to every participant when the session changes: someone joins or leaves, an update
(or a masked input, or a digest) arrives. Sent at each change, a round of n participants would
cost n² messages — every update re-broadcast to everyone. `StatusCast` coalesces the changes
instead: the first change after a quiet spell is sent at once (so a lone event is seen without
delay), and changes within the next `STATUS_INTERVAL_S` are folded into one broadcast at its end,
built then, so it carries the latest state. A session thus sends at most one status per interval,
and a round costs O(n) status messages however many changes it has — n per interval it lasts.

The interval grows with the session: it is the longer of `STATUS_INTERVAL_S` and the time
`STATUS_RATE` messages a second take to reach everyone (n / 500 s: 4 s at 2,000 participants).
A round of a large session lasts longer (n updates to take in), so a fixed interval would let
the statuses per round grow with n and their cost with n²; with the interval growing as n, the
statuses per round stay about constant and their cost linear.

The broadcast runs as a task of its own (a slow participant does not hold up the change that
caused it; each send is bounded by the session's send timeout); `aclose` cancels what is pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["STATUS_INTERVAL_S", "STATUS_RATE", "StatusCast"]

log = logging.getLogger("disco.server")

STATUS_INTERVAL_S = 0.5
"""At most one status broadcast per this many seconds, per session (small sessions)."""
STATUS_RATE = 500
"""Status messages a second a session sends at most, on average (large sessions)."""


class StatusCast:
    """Coalesces a session's status broadcasts: at most one per `interval` seconds."""

    def __init__(
        self,
        broadcast: Callable[[], Coroutine[Any, Any, None]],
        audience: Callable[[], int] = lambda: 0,
        interval: float = STATUS_INTERVAL_S,
        rate: float = STATUS_RATE,
    ) -> None:
        """`audience`: how many a broadcast goes to (the interval grows with it)."""
        self._broadcast = broadcast  # builds the status when it runs, and sends it to everyone
        self._audience = audience
        self._interval = interval
        self._rate = rate
        self._last: float | None = None  # loop time of the last broadcast started
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.sent = 0
        """Broadcasts started (for tests and metrics)."""

    def changed(self) -> None:
        """The session changed: broadcast now if none went out within the interval, else once
        at its end (changes meanwhile fold into that one)."""
        if self._closed or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = 0.0 if self._last is None else self._last + self.interval - now
        if wait <= 0:
            self._start()
        else:
            self._pending = loop.call_later(wait, self._fire)

    @property
    def interval(self) -> float:
        """The least time between two broadcasts, for the session as it is now."""
        return max(self._interval, self._audience() / self._rate)

    def _fire(self) -> None:
        self._pending = None
        if not self._closed:
            self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self.sent += 1
        task = loop.create_task(self._broadcast())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a status broadcast failed", exc_info=task.exception())

    async def aclose(self) -> None:
        """Send nothing more: cancel a pending broadcast and wait for those under way."""
        self._closed = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
