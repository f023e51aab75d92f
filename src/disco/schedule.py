"""The round schedule: what a participant trains in each of its rounds.

A task trains ``epochs`` local epochs in all. Rounds are either whole epochs or parts of one:

- ``rounds_per_epoch`` 1 (the default): a round trains ``epochs_per_round`` whole epochs, except
  the last planned round, which trains what is left (epochs 10, 3 per round → 3, 3, 3, 1);
- ``rounds_per_epoch`` P > 1 (``epochs_per_round`` must then be 1): each epoch is cut into P
  parts and a round trains one of them, so the participants' models are combined P times an
  epoch — what a large text corpus needs, where one epoch is long and models trained apart for a
  whole epoch average badly. Round k trains part ``(k - 1) % P + 1`` of the participant's epoch
  ``(k - 1) // P + 1``; the parts of one epoch share one shuffled order of the training data.

A part of an epoch of B batches (`EpochPart.batch_range`) is batches ``(j - 1) * B // P`` up to
``j * B // P``, and at least one batch (a participant with fewer batches than parts trains one
batch a round, some of them twice an epoch). Its validation (`EpochPart.validation_indices`)
is every P-th validation sample from the ``j - 1``-th (a different, evenly spread share each
round; each sample once an epoch), or, with fewer samples than parts, sample ``(j - 1) % M``.

Rounds are counted from 1 and are the participant's own (a participant that sat rounds out
keeps its place in its epochs). Rounds beyond the plan, when a participant asks for more, go on
with the same pattern. The browser follows the same rules (`web/src/core/schedule.ts`);
tests/vectors/epoch_schedule.json pins both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPart", "describe_work", "epoch_part", "epochs_in_round", "planned_rounds"]


def planned_rounds(epochs: int, epochs_per_round: int, rounds_per_epoch: int = 1) -> int:
    """Rounds of the plan: epochs / epochs_per_round rounded up, times rounds_per_epoch."""
    return math.ceil(epochs / epochs_per_round) * rounds_per_epoch


def _check_round(k: int) -> None:
    if k < 1:
        raise ValueError(f"rounds are counted from 1, got {k}")


def epochs_in_round(k: int, epochs: int, epochs_per_round: int, rounds_per_epoch: int = 1) -> int:
    """Whole epochs of round `k` (a round that trains part of an epoch: 1)."""
    _check_round(k)
    if rounds_per_epoch > 1:
        return 1
    if k > planned_rounds(epochs, epochs_per_round):
        return epochs_per_round
    return min(epochs_per_round, epochs - (k - 1) * epochs_per_round)


@dataclass(frozen=True)
class EpochPart:
    """Part `index` of `count` of the participant's epoch number `epoch` (all counted from 1)."""

    epoch: int
    index: int
    count: int

    def batch_range(self, batches: int) -> range:
        """The batches of this part, of an epoch of `batches` batches (at least one)."""
        if batches < 1:
            raise ValueError(f"an epoch has at least one batch, got {batches}")
        start = (self.index - 1) * batches // self.count
        return range(start, max(self.index * batches // self.count, start + 1))

    def validation_indices(self, n: int) -> np.ndarray:
        """Indices of the validation samples this part is evaluated on, of `n` (none if n is 0)."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        if n < self.count:
            return np.array([(self.index - 1) % n], dtype=np.int64)
        return np.arange(self.index - 1, n, self.count, dtype=np.int64)


def epoch_part(k: int, rounds_per_epoch: int) -> EpochPart | None:
    """The part of an epoch round `k` trains, or None when its rounds train whole epochs."""
    _check_round(k)
    if rounds_per_epoch <= 1:
        return None
    epoch, part = divmod(k - 1, rounds_per_epoch)
    return EpochPart(epoch + 1, part + 1, rounds_per_epoch)


def describe_work(epochs: int, part: EpochPart | None) -> str:
    """What a round trains, in words: "2 epochs", "part 3 of 8 of epoch 1"."""
    if part is not None:
        return f"part {part.index} of {part.count} of epoch {part.epoch}"
    return f"{epochs} epoch{'' if epochs == 1 else 's'}"
