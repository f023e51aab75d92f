"""The server's metrics: counters, gauges and a histogram, rendered in Prometheus text format.

``GET /metrics`` answers `Metrics.render` in the text exposition format, version 0.0.4 (one
sample a line, ``# HELP`` and ``# TYPE`` before each family). What is counted as it happens lives
here: refusals by reason (`Metrics.refusal`, a dict increment, cheap enough for any path) and
closed rounds with their durations (`Metrics.round_closed`). What is read at scrape time — each
task's connected participants, open round and WebSocket traffic — the caller passes in as
`TaskSample`s. docs/operations.md lists every series.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from operator import attrgetter

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "KNOWN_REASONS",
    "Histogram",
    "Metrics",
    "TaskSample",
    "package_version",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the Prometheus text exposition format."""

DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Upper bounds (seconds) of the round-duration histogram: from loopback rounds to an hour."""

KNOWN_REASONS = (
    "too_large",  # a frame or body above the server's limit
    "unknown_task",  # a Hello naming no served task
    "version",  # a frame of another protocol version
    "capability",  # a Hello without a capability the task needs
    "unauthorized",  # an admin request without a token
    "forbidden",  # an admin request with a wrong token
    "creation_disabled",  # task creation on a server without a token
    "invitation",  # a join or listing without a valid invitation
    "max_participants",  # a task full
    "connection_rate",  # too many connections from one address
    "request_rate",  # too many requests from one address
)
"""Refusal reasons rendered (at 0) before the first one happens, so their series exist."""


def package_version() -> str:
    """The installed disco package's version ("unknown" when not installed)."""
    try:
        return metadata.version("disco")
    except metadata.PackageNotFoundError:
        return "unknown"


_TRAFFIC = (
    ("disco_received_bytes_total", "bytes_received", "WebSocket bytes received"),
    ("disco_sent_bytes_total", "bytes_sent", "WebSocket bytes sent"),
    ("disco_received_frames_total", "frames_received", "WebSocket frames received"),
    ("disco_sent_frames_total", "frames_sent", "WebSocket frames sent"),
)
"""Each task's traffic counters: (series, `TaskSample` field, what it counts)."""


@dataclass(frozen=True)
class TaskSample:
    """One task's values read at scrape time."""

    task_id: str
    participants: int
    round: int
    bytes_received: int
    bytes_sent: int
    frames_received: int
    frames_sent: int


class Histogram:
    """Observations counted in fixed buckets (``le`` upper bounds), with their sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose bound it does not exceed."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations ≤ le)`` for every bound and ``+Inf``, as Prometheus wants them."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == math.inf else _number(bound), total))
        return out


@dataclass
class _TaskCounts:
    rounds: int = 0
    aborted: int = 0


class Metrics:
    """What the server counts as it runs, and the text `GET /metrics` answers."""

    def __init__(
        self,
        version: str,
        protocol_version: int,
        clock: Callable[[], float] = time.time,
    ):
        self.version, self.protocol_version = version, protocol_version
        self._clock = clock
        self.started = clock()
        self.refusals: dict[str, int] = dict.fromkeys(KNOWN_REASONS, 0)
        self._tasks: dict[str, _TaskCounts] = {}
        self._durations: dict[str, Histogram] = {}

    def refusal(self, reason: str) -> None:
        """Count one refusal (a request, connection or message turned away) for `reason`."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def add_task(self, task_id: str) -> None:
        """Start counting for a task (its series exist, at 0, from now on)."""
        self._tasks.setdefault(task_id, _TaskCounts())
        self._durations.setdefault(task_id, Histogram())

    def round_closed(self, task_id: str, duration_s: float, aborted: bool = False) -> None:
        """Count a closed (or aborted) round of a task and observe its duration."""
        self.add_task(task_id)
        counts = self._tasks[task_id]
        counts.rounds += 1
        counts.aborted += aborted
        self._durations[task_id].observe(max(duration_s, 0.0))

    def render(self, tasks: Iterable[TaskSample]) -> str:
        """Every series in the Prometheus text format (version 0.0.4)."""
        samples = sorted(tasks, key=lambda t: t.task_id)
        now = self._clock()
        lines: list[str] = []

        def family(name: str, kind: str, help: str, rows: Iterable[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {_number(value)}" for labels, value in rows)

        def per_task(value: Callable[[TaskSample], float]) -> list[tuple[str, float]]:
            return [(_labels(task=t.task_id), value(t)) for t in samples]

        build = _labels(version=self.version, protocol_version=str(self.protocol_version))
        family("disco_build_info", "gauge", "The server's version and protocol.", [(build, 1)])
        family(
            "disco_start_time_seconds",
            "gauge",
            "When the server started, in seconds since the Unix epoch.",
            [("", self.started)],
        )
        uptime = [("", now - self.started)]
        family("disco_uptime_seconds", "gauge", "Seconds since the server started.", uptime)
        family("disco_tasks", "gauge", "Tasks served.", [("", len(samples))])
        family(
            "disco_refusals_total",
            "counter",
            "Requests, connections and messages refused, by reason.",
            [(_labels(reason=r), n) for r, n in sorted(self.refusals.items())],
        )
        family(
            "disco_participants",
            "gauge",
            "Participants connected to a task.",
            per_task(lambda t: t.participants),
        )
        family("disco_round", "gauge", "The task's open round.", per_task(lambda t: t.round))
        counts = {t.task_id: self._tasks.get(t.task_id, _TaskCounts()) for t in samples}
        family(
            "disco_rounds_closed_total",
            "counter",
            "Rounds closed since the server started (aborted ones included).",
            per_task(lambda t: counts[t.task_id].rounds),
        )
        family(
            "disco_rounds_aborted_total",
            "counter",
            "Rounds aborted since the server started (secure aggregation).",
            per_task(lambda t: counts[t.task_id].aborted),
        )
        for name, field, what in _TRAFFIC:
            family(name, "counter", f"{what} for a task.", per_task(attrgetter(field)))
        name = "disco_round_duration_seconds"
        lines.append(f"# HELP {name} How long rounds took, from opening to closing.")
        lines.append(f"# TYPE {name} histogram")
        for t in samples:
            hist = self._durations.get(t.task_id) or Histogram()
            for le, n in hist.cumulative():
                lines.append(f"{name}_bucket{_labels(task=t.task_id, le=le)} {n}")
            lines.append(f"{name}_sum{_labels(task=t.task_id)} {_number(hist.sum)}")
            lines.append(f"{name}_count{_labels(task=t.task_id)} {hist.count}")
        return "\n".join(lines) + "\n"


def _labels(**labels: str) -> str:
    """``{name="value",…}`` with values escaped as the format requires."""
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value: integers without a decimal point, +Inf/-Inf/NaN as the format spells."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
