"""What a participant sees while it trains: progress bars, or plain log lines in a pipe."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from disco.cli.output import console, plural
from disco.schedule import describe_work

if TYPE_CHECKING:  # disco.training loads torch, which `disco serve` does not need
    from disco.training import Event, EventCallback

__all__ = ["Bars", "participant_log", "progress_bars"]


class Bars:
    """One progress bar per participant, fed by trainer events and protocol messages.

    With `mine` (the participant of `disco train`) the texts say "your round k of N"; the
    shared model's own count of rounds is shown apart ("shared model: 3 rounds").
    """

    def __init__(
        self, progress: Progress, labels: Sequence[str], rounds: int, mine: bool = False
    ) -> None:
        self.progress = progress
        self.rounds = rounds
        self.mine = mine
        self.bars = [progress.add_task(label, total=rounds, info="") for label in labels]
        self.done = [0] * len(labels)
        self.started = [0] * len(labels)
        self.sent = [False] * len(labels)
        self.joined_at: list[int | None] = [None] * len(labels)
        """The shared model's rounds when each participant joined (Welcome.round)."""

    def _round(self, i: int, k: int | None = None) -> str:
        """'your round k of N' (k: the round under way, by default)."""
        k = min(self.done[i - 1] + 1, self.rounds) if k is None else k
        return f"{'your round' if self.mine else 'round'} {k} of {self.rounds}"

    def _show(self, i: int, info: str) -> None:
        self.progress.update(self.bars[i - 1], info=info)

    def _complete(self, i: int, k: int) -> None:
        """Participant `i` has completed `k` rounds."""
        self.done[i - 1] = k
        self.progress.update(self.bars[i - 1], completed=k)

    def callbacks(self, i: int) -> list[EventCallback]:
        """Trainer callbacks for participant `i` (from 1): batch counters, loss per round."""

        def on_event(event: Event) -> None:
            if event.kind == "round_start":
                # every round started before this one is done, even one whose result came as a
                # new model on reconnecting (no result message) or whose update was dropped
                if self.done[i - 1] < self.started[i - 1]:
                    self._complete(i, self.started[i - 1])
                self.started[i - 1] += 1
            elif event.kind == "batch_end":
                p = event.part
                where = f"epoch {event.epoch}" if p is None else describe_work(1, p)
                self._show(i, f"{self._round(i)}: {where}, batch {event.batch}/{event.batches}")
            elif event.kind == "round_end" and event.metrics is not None:
                m = event.metrics
                acc = f", val_acc {m.val_accuracy:.3f}" if m.val_accuracy is not None else ""
                self._show(i, f"{self._round(i)}: loss {m.train_loss:.3f}{acc}")

        return [on_event]

    @staticmethod
    def waiting(participants: int, needed: int) -> str:
        """'waiting for 1 more participant (1 of 2 connected)'."""
        more = plural(needed - participants, "more participant")
        return f"waiting for {more} ({participants} of {needed} connected)"

    def on_message(self, i: int, message: Any) -> None:
        """Show what the server says to participant `i`; a round result advances its bar."""
        kind = getattr(message, "type", "")
        waiting = getattr(message, "state", "") == "waiting_for_participants"
        if self.done[i - 1] >= self.rounds and kind != "result":
            return  # finished: others leaving do not concern this participant any more
        if kind == "welcome":
            if self.joined_at[i - 1] is None:  # (a reconnect says hello again)
                self.joined_at[i - 1] = message.round
            text = f"joined; shared model: {plural(message.round, 'round')} before you"
            if waiting:
                text += "; " + self.waiting(message.participants, message.min_participants)
            self._show(i, text)
        elif kind == "status" and waiting:
            self._show(i, self.waiting(message.participants, message.min_participants))
        elif kind == "status" and self.sent[i - 1]:
            updates = f"{message.reported} of {message.participants} updates in"
            self._show(i, f"{self._round(i)} sent; {updates}, waiting for the others")
        elif kind == "ack":
            self.sent[i - 1] = True
            updates = f"{message.reported} of {message.participants} updates in"
            self._show(i, f"{self._round(i)} sent; {updates}, waiting for the others")
        elif kind == "result":
            self.sent[i - 1] = False
            self._complete(i, max(self.started[i - 1], self.done[i - 1] + 1))
            shared = f"shared model: {plural(message.round, 'round')}"
            who = plural(message.contributors, "contributor")
            text = f"{self._round(i, self.done[i - 1])} done ({who}); {shared}"
            self._show(i, text)

    def local_round_done(self, i: int) -> None:
        """Advance participant `i`'s bar after a round trained alone."""
        self._complete(i, self.done[i - 1] + 1)


@contextmanager
def progress_bars(
    labels: Sequence[str], rounds: int, enabled: bool = True, mine: bool = False
) -> Iterator[Bars]:
    """Progress bars (rounds) for `labels`, shown on stderr while the block runs."""
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
    with progress:
        yield Bars(progress, labels, rounds, mine=mine)


@contextmanager
def participant_log(plain: bool) -> Iterator[None]:
    """Show the participant's log ("disco.client") while the block runs.

    `plain` (stderr is not a terminal, or --json): every INFO line — joins, rounds, waits — as
    ``time message`` on stderr, so a participant in a pipe or a log file shows its progress.
    On a terminal the progress bar tells the same, so only warnings are shown, above the bar.
    """
    logger = logging.getLogger("disco.client")
    handler: logging.Handler
    if plain:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler.setLevel(logging.INFO)
    else:
        handler = RichHandler(console=console, show_path=False, show_level=False)
        handler.setLevel(logging.WARNING)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
