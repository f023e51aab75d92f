"""A round's running sums of updates, folded exactly as they arrive, together when they overlap.

`FoldedSums` holds one int64 sum per value of the model and adds each update to it with
`disco.aggregation.fold` (terms rint(n · Δ · 2^24); an update is added whole or refused whole).
It is what `MeanRound` keeps instead of the updates.

**Folding together.** Adding an update reads and writes every sum once: 16 bytes of sums moved
for each 4-byte value of the update. When several updates are in flight (many participants
uploading at once; the server adds them from its thread pool), they share that traffic: the
sums are folded a segment at a time, round and round, and at each segment every update in flight
adds its part. An update joins at whatever segment comes next and is done when it has gone once
round all of them. Whichever adder holds the fold does the work for all of them; the others
wait for theirs to be done. Integer addition is exact, so how updates overlap does not change
the sums: the same updates give the same sums, bit for bit.

Reading the sums (`settled`) first completes the updates that are part-way round, so a reader
never sees half an update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from disco.aggregation import fold
from disco.errors import AggregationError
from disco.weights import Array, Weights

__all__ = ["COUNT_ROOM", "FoldedSums"]

COUNT_ROOM = 2**31
"""The counts folded into sums total less than this: each term is at most count · 2^32 in
absolute value, so no sum can pass 2^63."""

_SEGMENT = 1 << 20  # values per step round the sums: a segment's sums and model stay in cache


@dataclass(eq=False)
class _InFlight:
    participant: str
    values: dict[str, Array]
    count: int
    source: Weights
    addresses: dict[str, int] = field(default_factory=dict)  # for the compiled fold
    first: int = 0  # the segment it joined at
    covered: int = 0  # segments folded so far
    done: bool = False
    error: AggregationError | None = field(default=None)


class FoldedSums:
    """Int64 sums of a round's updates to `model` (updates are trained weights made from it, or
    changes to it when `changes`); keeps the `keep` updates of the largest counts. Thread-safe."""

    def __init__(
        self, model: Weights, *, changes: bool = False, keep: int = 0, segment: int = _SEGMENT
    ) -> None:
        self.changes = changes
        self.keep = keep
        self._base = {n: a.reshape(-1) for n, a in model.items()}
        self.sums = {n: np.zeros(a.size, dtype=np.int64) for n, a in model.items()}
        self.counts: dict[str, int] = {}
        """The participants folded in and their counts (as folded), in the order they finished."""
        self.kept: dict[str, Weights] = {}
        """The updates of the `keep` largest counts, by participant."""
        self._segments = [
            (name, start, min(start + segment, a.size))
            for name, a in self._base.items()
            for start in range(0, max(a.size, 1), segment)
        ]
        self._compiled = fold.KIND != "numpy"
        if self._compiled:  # taken once: the compiled fold is then called with addresses
            self._sums_at = {n: fold.address(a) for n, a in self.sums.items()}
            self._base_at = {n: 0 if changes else fold.address(a) for n, a in self._base.items()}
        self._total = 0  # Σ counts folded
        self._promised = 0  # Σ counts in flight
        self._arriving: list[_InFlight] = []
        self._in_flight: list[_InFlight] = []
        self._cursor = 0
        # the lock guards the arrivals, the totals and who folds; the one folding (one thread at
        # a time) alone touches the sums, the updates in flight, counts and kept
        self._changed = threading.Condition(threading.Lock())
        self._folding = False

    def add(self, participant: str, update: Weights, count: int) -> None:
        """Fold `update` (of the model's names and shapes) with `count` in, or raise
        `AggregationError` and change nothing: a change not finite, or of `fold.MAX_CHANGE` or
        more, or the round full (counts totalling `COUNT_ROOM`)."""
        if not 1 <= count <= fold.MAX_COUNT:
            raise AggregationError(f"a count is from 1 to {fold.MAX_COUNT}, got {count}")
        values = {n: a.reshape(-1) for n, a in update.items()}
        if list(values) != list(self._base) or any(
            v.shape != self._base[n].shape for n, v in values.items()
        ):
            raise AggregationError(f"the update of {participant!r} does not fit the model")
        entry = _InFlight(participant, values, count, update)
        if self._compiled:  # checked here, before it joins: folding then cannot fail on it
            entry.addresses = {n: fold.address(v) for n, v in values.items()}
        with self._changed:
            if self._total + self._promised + count >= COUNT_ROOM:
                raise AggregationError(
                    f"round full: the update of {participant!r} cannot be added exactly after "
                    f"{len(self.counts)} others this round"
                )
            self._promised += count
            self._arriving.append(entry)
            folding = self._wait_for(lambda: entry.done)
        if folding:
            with self._folding_here():
                while not entry.done:
                    self._step()
        if entry.error is not None:
            raise entry.error

    @contextmanager
    def settled(self) -> Iterator[None]:
        """Hold the sums still, with no update part-way folded, while the body reads them."""
        with self._changed:
            self._wait_for(lambda: False)
        with self._folding_here():
            while self._in_flight:
                self._step(joining=False)
            yield

    def _wait_for(self, done: Callable[[], bool]) -> bool:
        """Under the lock: wait until `done()` (False returned) or nobody folds (True returned:
        the caller folds now)."""
        while not done():
            if not self._folding:
                self._folding = True
                return True
            self._changed.wait()
        return False

    @contextmanager
    def _folding_here(self) -> Iterator[None]:
        """This thread folds (it took the role in `_wait_for`); on leaving, someone else may."""
        try:
            yield
        except BaseException:
            self._abandon()
            raise
        finally:
            with self._changed:
                self._folding = False
                self._changed.notify_all()

    # -- the carousel (under the fold lock) ---------------------------------------------------
    def _step(self, *, joining: bool = True) -> None:
        """Fold the next segment of every update in flight (after letting the arrivals join)."""
        if joining:
            with self._changed:
                arriving, self._arriving = self._arriving, []
            for entry in arriving:
                entry.first = self._cursor
                self._in_flight.append(entry)
        if not self._segments:  # a model of no values: nothing to fold
            for entry in self._in_flight:
                self._finish(entry, None)
            self._in_flight = []
        if not self._in_flight:
            return
        name, start, stop = self._segments[self._cursor]
        flying = self._in_flight
        counts = [e.count for e in flying]
        if self._compiled:
            base, at = self._base_at[name], 4 * start
            statuses = fold.fold_at(
                stop - start,
                base + at if base else 0,
                self._sums_at[name] + 2 * at,
                [e.addresses[name] + at for e in flying],
                counts,
            )
        else:
            status = np.zeros(len(flying), dtype=np.int32)
            fold.fold(
                self.sums[name][start:stop],
                None if self.changes else self._base[name][start:stop],
                [e.values[name][start:stop] for e in flying],
                counts,
                status,
            )
            statuses = status.tolist()
        for entry, why in zip(flying, statuses, strict=True):
            if why != fold.OK:  # this segment is taken back already: the earlier ones too
                self._take_back(entry, entry.covered)
                self._finish(entry, _refusal(entry.participant, why, name))
                continue
            entry.covered += 1
            if entry.covered == len(self._segments):
                self._finish(entry, None)
        self._in_flight = [e for e in flying if not e.done]
        self._cursor = (self._cursor + 1) % len(self._segments)

    def _take_back(self, entry: _InFlight, covered: int) -> None:
        """Take the first `covered` segments `entry` folded back out of the sums, exactly."""
        for i in range(covered):
            name, start, stop = self._segments[(entry.first + i) % len(self._segments)]
            fold.fold(
                self.sums[name][start:stop],
                None if self.changes else self._base[name][start:stop],
                [entry.values[name][start:stop]],
                [-entry.count],
                np.zeros(1, dtype=np.int32),  # these values passed: taking them back cannot fail
            )

    def _finish(self, entry: _InFlight, error: AggregationError | None) -> None:
        if error is None:
            self.counts[entry.participant] = entry.count
            self._remember(entry)
        with self._changed:
            self._promised -= entry.count
            if error is None:
                self._total += entry.count
            entry.error, entry.done = error, True
            self._changed.notify_all()  # its adder returns now, without waiting for the fold

    def _remember(self, entry: _InFlight) -> None:
        """Keep the update if its count is among the `keep` largest."""
        if self.keep == 0:
            return
        self.kept[entry.participant] = entry.source
        if len(self.kept) > self.keep:
            smallest = min(self.kept, key=lambda p: (self.counts[p], p))
            del self.kept[smallest]

    def _abandon(self) -> None:
        """After an unexpected error mid-fold: take every update in flight back, refuse them all
        (their adders raise), and leave the sums as the finished updates made them."""
        for entry in self._in_flight:
            if entry.done:  # finished in the step that failed
                continue
            self._take_back(entry, entry.covered)
            self._finish(entry, AggregationError(f"the update of {entry.participant!r} was lost"))
        self._in_flight = []


def _refusal(participant: str, why: int, name: str) -> AggregationError:
    if why == fold.NOT_FINITE:
        return AggregationError(f"the update of {participant!r} is not finite")
    return AggregationError(
        f"the update of {participant!r} changes {name!r} by {fold.MAX_CHANGE:g} or more in one "
        "round; it is refused"
    )
