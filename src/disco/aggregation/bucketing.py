"""Bucketing (Karimireddy, He & Jaggi, ICLR 2022): mix updates before a robust rule combines them.

Robust rules (median, trimmed mean, Krum, centered clipping) treat an honest participant whose
data differs from the others' like an attacker. Bucketing first shuffles the round's updates,
cuts them into ⌈n/s⌉ buckets of at most s, and averages each bucket (everyone counting equally);
the robust rule then combines the bucket means, which differ less from each other than the
updates did, while a dishonest update still spoils at most one bucket.

    updates ──► shuffle (hash of the round's global model and each id) ──► buckets of ≤ s
            ──► mean per bucket = synthetic participants "bucket-1", "bucket-2", …
            ──► inner rule ──► each participant's report follows its bucket's
                              (weight = the bucket's weight / the bucket's size)

The shuffle sorts participants by SHA-256 of ``"{global model digest}:{participant id}"``: the
same set of updates on the same global model gives the same buckets in any arrival order (a
retried round too), and each new global model gives new buckets. `Bucketing(inner, s)` wraps any
rule that does not remember participants across rounds; centered clipping keeps each
participant's momentum, so it buckets inside itself, after the momentum
(`disco.aggregation.clipping`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from disco.aggregation.base import Aggregator, ParticipantReport, Update
from disco.aggregation.krum import KrumAggregator
from disco.aggregation.rules import weighted_sum
from disco.errors import AggregationError
from disco.weights import Weights

__all__ = ["Bucketing", "bucket_groups", "bucket_updates", "spread_reports"]


def bucket_groups(participants: Sequence[str], bucket_size: int, key: str) -> list[list[str]]:
    """The participants shuffled by SHA-256(`key`, id) and cut into buckets of `bucket_size`
    (the last one holds the rest): ⌈n / bucket_size⌉ buckets, whatever the input order."""
    if bucket_size < 1:
        raise AggregationError(f"bucket_size must be ≥ 1, got {bucket_size}")

    def rank(participant: str) -> tuple[str, str]:
        return hashlib.sha256(f"{key}:{participant}".encode()).hexdigest(), participant

    order = sorted(participants, key=rank)
    return [order[i : i + bucket_size] for i in range(0, len(order), bucket_size)]


def bucket_updates(updates: Sequence[Update], groups: Sequence[Sequence[str]]) -> list[Update]:
    """One synthetic update per bucket, ``bucket-1``, …: the plain mean of its deltas, with the
    samples its members claim."""
    by_id = {u.participant: u for u in updates}
    out = []
    for k, group in enumerate(groups, start=1):
        members = [by_id[p] for p in group]
        share = 1 / len(members)
        delta = weighted_sum([u.delta for u in members], [share] * len(members))
        out.append(Update(f"bucket-{k}", delta, sum(u.num_samples for u in members)))
    return out


def spread_reports(
    updates: Sequence[Update],
    groups: Sequence[Sequence[str]],
    bucket_reports: Sequence[ParticipantReport],
) -> list[ParticipantReport]:
    """Each participant's report from its bucket's (in the updates' order): the bucket's weight
    split equally among its members; selected, clipped and score as the bucket's."""
    of: dict[str, tuple[ParticipantReport, int]] = {}
    for group, report in zip(groups, bucket_reports, strict=True):
        for p in group:
            of[p] = (report, len(group))
    reports = []
    for u in updates:
        report, size = of[u.participant]
        reports.append(
            ParticipantReport(
                u.participant, report.weight / size, report.selected, report.clipped, report.score
            )
        )
    return reports


class Bucketing(Aggregator):
    """Another rule applied to the means of random buckets of at most `bucket_size` updates."""

    rule = "bucketing"
    """Replaced by the wrapped rule's name on each instance (bucketing is a setting of a rule)."""

    def __init__(self, inner: Aggregator, bucket_size: int, secret: str | None = None) -> None:
        if bucket_size < 1:
            raise AggregationError(f"bucket_size must be ≥ 1, got {bucket_size}")
        self.inner = inner
        self.bucket_size = bucket_size
        self.secret = secrets.token_hex(16) if secret is None else secret
        """Mixed into the shuffle so participants cannot foresee their buckets (one per session:
        the buckets still do not depend on arrival order)."""
        self.rule = inner.rule  # type: ignore[misc]  # the rule a task names

    def combine(
        self, global_weights: Weights, updates: Sequence[Update]
    ) -> tuple[Weights, list[ParticipantReport]]:
        groups = bucket_groups(
            [u.participant for u in updates],
            self.bucket_size,
            self.secret + global_weights.digest(),
        )
        if isinstance(self.inner, KrumAggregator) and len(groups) < self.inner.min_updates:
            need = self.inner.min_updates
            raise AggregationError(
                f"{self.rule} with f={self.inner.f} (participants that may be dishonest) needs at "
                f"least {need} buckets in a round (more than 2f + 2), got {len(groups)}: with "
                f"buckets of {self.bucket_size} updates that takes at least "
                f"{(need - 1) * self.bucket_size + 1} updates, the round has {len(updates)}"
            )
        buckets = bucket_updates(updates, groups)
        delta, bucket_reports = self.inner.combine(global_weights, buckets)
        return delta, spread_reports(updates, groups, bucket_reports)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "bucket_size": self.bucket_size}
