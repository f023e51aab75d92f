"""How a task's updates are combined: each aggregation rule's typed settings.

``{"rule": "krum", "f": 2}`` in a task document, ``krum:f=2`` on a command line
(`parse_aggregation`); a rule name alone stands for the rule with its defaults. The rules
themselves are in `disco.aggregation`; docs/aggregation.md explains each one.

`SecureAggregationConfig` is the task's ``secure_aggregation`` setting: the server then learns only
the sum of a round's updates (docs/secure_aggregation.md), which only the mean rule can use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError

from disco.errors import TaskError
from disco.validation import Frozen as _Frozen
from disco.validation import field_problems

__all__ = [
    "AGGREGATION_RULES",
    "SECURE_MAX_PEERS",
    "SECURE_MIN_PARTICIPANTS",
    "Aggregation",
    "AggregationConfig",
    "CenteredClippingRule",
    "CosineTrustRule",
    "KrumRule",
    "MeanRule",
    "MedianRule",
    "MultiKrumRule",
    "SecureAggregationConfig",
    "TrimmedMeanRule",
    "krum_min_updates",
    "parse_aggregation",
    "parse_secure_aggregation",
]

Aggregation = Literal[
    "mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clipping", "cosine_trust"
]
"""The names of the aggregation rules (`AggregationConfig.rule`)."""


class MeanRule(_Frozen):
    """FedAvg: updates averaged by the samples each participant claims, no one's share above
    ``max_share`` (the excess is spread over the others; never below an equal split)."""

    rule: Literal["mean"] = "mean"
    max_share: float = Field(
        default=0.5,
        ge=0.01,
        le=1,
        description=(
            "largest share of a round one participant's update can have, whatever sample count it "
            "claims (1: plain FedAvg); with secure aggregation the server never sees a count, so "
            "this is not enforced: each count is capped at the secure aggregation's weight cap "
            "instead"
        ),
    )


def _bucket_size() -> Any:
    return Field(
        default=1,
        ge=1,
        le=10_000,
        description=(
            "mixes this many participants' updates together (at random, each round) before "
            "combining them, so that a few unusual but honest participants are not mistaken for "
            "dishonest ones; 1: no mixing"
        ),
    )


def _dishonest() -> Any:
    return Field(
        default=1,
        ge=0,
        le=10_000,
        description=(
            "how many participants may be dishonest; a round needs at least 2 × this + 3 updates"
        ),
    )


class MedianRule(_Frozen):
    """Coordinate-wise median of the updates: for each number of the model, the middle value;
    everyone counts equally."""

    rule: Literal["median"] = "median"
    bucket_size: int = _bucket_size()


class TrimmedMeanRule(_Frozen):
    """Coordinate-wise mean without the ``beta`` fraction of extremes at each end; everyone
    counts equally."""

    rule: Literal["trimmed_mean"] = "trimmed_mean"
    beta: float = Field(default=0.1, ge=0, lt=0.5, description="share dropped at each end")
    bucket_size: int = _bucket_size()


def krum_min_updates(f: int) -> int:
    """The fewest updates (or buckets) Krum can combine with `f` dishonest: more than 2f + 2."""
    return 2 * f + 3


class KrumRule(_Frozen):
    """Krum (Blanchard et al., 2017): the one update closest to most of the others is used as it
    is, so that up to ``f`` dishonest participants cannot drag the model far."""

    rule: Literal["krum"] = "krum"
    f: int = _dishonest()
    bucket_size: int = _bucket_size()


class MultiKrumRule(_Frozen):
    """Multi-Krum: the ``m`` updates closest to the others are averaged, everyone counting
    equally; updates far from the rest are left out."""

    rule: Literal["multi_krum"] = "multi_krum"
    f: int = _dishonest()
    m: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description=(
            "how many of the most typical updates are averaged each round (empty: all but the "
            "number of dishonest participants)"
        ),
    )
    bucket_size: int = _bucket_size()


class CenteredClippingRule(_Frozen):
    """Centered clipping (Karimireddy, He & Jaggi, 2021): the model moves from where the last
    round took it, and no participant can pull it further than ``tau``; each participant's
    updates are smoothed over rounds (``momentum``), so an attack spread over rounds fades."""

    rule: Literal["centered_clipping"] = "centered_clipping"
    tau: float | None = Field(
        default=None,
        gt=0,
        description=(
            "how far an update may be from the previous round's combined update before it is "
            "shortened to this length (larger: trusts participants more; empty: automatic, the "
            "typical distance in each round)"
        ),
    )
    iterations: int = Field(
        default=1,
        ge=1,
        le=100,
        description="how many times the combination is refined each round (1 is usually enough)",
    )
    momentum: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description=(
            "how much of each participant's earlier updates is kept in its current one, to smooth "
            "out attacks spread over rounds (0: only the latest update counts)"
        ),
    )
    bucket_size: int = _bucket_size()


class CosineTrustRule(_Frozen):
    """Trust by direction (after FLTrust, Cao et al. 2021): the updates that point the way the
    model has been moving over the last rounds (the middle of the updates in the first round)
    are averaged; updates pointing the other way are left out, whatever number of examples they
    claim, and none counts for more examples than the middle participant or as longer than
    twice the middle update. When fewer than half point that way the round takes the middle of
    the updates. For federated tasks whose honest participants mostly agree."""

    rule: Literal["cosine_trust"] = "cosine_trust"
    min_cosine: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "how closely an update must point the way the model has been moving to count at "
            "all, from 0 (any update that does not point away counts) to just below 1 (only "
            "updates pointing almost exactly that way)"
        ),
    )
    momentum: float = Field(
        default=0.9,
        ge=0,
        lt=1,
        description=(
            "how much of the earlier rounds' changes the direction updates are compared with "
            "keeps (0: only the last round's change; closer to 1: a steadier direction over "
            "more rounds)"
        ),
    )


AggregationConfig = Annotated[
    MeanRule
    | MedianRule
    | TrimmedMeanRule
    | KrumRule
    | MultiKrumRule
    | CenteredClippingRule
    | CosineTrustRule,
    Field(discriminator="rule"),
]
"""How a task's updates are combined: ``{"rule": "mean", "max_share": 0.5}``, … A rule name
alone (``"median"``) stands for that rule with its defaults."""

AGGREGATION_RULES: dict[str, type[BaseModel]] = {
    str(cls.model_fields["rule"].default): cls for cls in get_args(get_args(AggregationConfig)[0])
}
"""Each aggregation rule's config class, by name, in the order of `Aggregation`."""


class _AggregationDoc(_Frozen):
    aggregation: AggregationConfig


def parse_aggregation(text: str) -> AggregationConfig:
    """A rule with its settings as written on a command line: ``mean``, ``krum:f=2``,
    ``multi_krum:f=1,m=5``, ``centered_clipping:tau=0.5,momentum=0.9``, ``median:bucket_size=2``,
    ``cosine_trust:min_cosine=0.1``.

    Each value is read as the setting's type (whole number or number). Raises `TaskError` in
    plain words, naming the known rules or the rule's settings.
    """
    name, _, rest = text.strip().partition(":")
    data: dict[str, Any] = {"rule": name.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value:
            raise TaskError(
                f"aggregation {text!r}: write each setting as name=value, e.g. krum:f=2"
            )
        if key in data:
            raise TaskError(f"aggregation {text!r}: {key} is given twice")
        data[key] = value
    try:
        return _AggregationDoc.model_validate({"aggregation": data}).aggregation
    except ValidationError as exc:
        fields = ((f.removeprefix("aggregation").lstrip("."), m) for f, m in field_problems(exc))
        problems = "; ".join(f"{field}: {msg}" if field else msg for field, msg in fields)
        raise TaskError(f"invalid aggregation {text!r}: {problems}") from exc


SECURE_MIN_PARTICIPANTS = 3
"""The fewest participants of a round with secure aggregation: with two, each could subtract its
own update from the sum and read the other's (`disco.secure.roster.MIN_MEMBERS`)."""
SECURE_MAX_PEERS = 64
"""The most peers of a secure decentralized round: every peer opens a channel to every other and
receives every masked input (docs/protocol.md §19.1); later peers wait for a later round."""


class SecureAggregationConfig(_Frozen):
    """Secure aggregation (docs/secure_aggregation.md): whoever combines a round's updates (the
    server, or every peer of a decentralized task) learns only their sum, never one of them. Each
    participant clamps its change to the clip range, weights it by its sample count (capped at
    ``weight_cap``), turns it into 32-bit fixed-point words and masks them; the masks cancel in
    the sum. Needs the mean rule and at least 3 participants per round (a decentralized task, at
    most 64)."""

    clip: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description=(
            "each number of an update's change is kept between minus and plus this value before "
            "the changes are added up; choose it large enough for honest changes: a larger range "
            "leaves less precision."
        ),
    )
    weight_cap: int = Field(
        default=1024,
        ge=1,
        le=65_536,
        description=(
            "the most examples one participant counts for in the average. The server never sees "
            "how many examples anyone has, so this takes the place of the average's largest "
            "share."
        ),
    )
    threshold: int | None = Field(
        default=None,
        ge=SECURE_MIN_PARTICIPANTS,
        le=10_000,
        description=(
            "how many of a round's participants must stay until its end for the total to be "
            "revealed: at most the minimum participants, and never fewer than a strict majority "
            "of the round."
        ),
    )


class _SecureDoc(_Frozen):
    secure_aggregation: SecureAggregationConfig


def parse_secure_aggregation(text: str) -> SecureAggregationConfig:
    """Secure aggregation's settings as written on a command line: ``""`` or ``"on"`` for the
    defaults, ``"clip=0.5"``, ``"clip=0.5,weight_cap=100,threshold=3"``.

    Raises `TaskError` in plain words, naming the settings there are."""
    body = text.strip()
    data: dict[str, Any] = {}
    if body.lower() not in ("", "on", "true", "yes", "default", "defaults"):
        for item in filter(None, (part.strip() for part in body.split(","))):
            key, eq, value = (part.strip() for part in item.partition("="))
            if not eq or not key or not value:
                raise TaskError(
                    f"secure aggregation {text!r}: write each setting as name=value, "
                    "e.g. clip=0.5,weight_cap=100"
                )
            if key in data:
                raise TaskError(f"secure aggregation {text!r}: {key} is given twice")
            data[key] = None if key == "threshold" and value.lower() == "auto" else value
    try:
        return _SecureDoc.model_validate({"secure_aggregation": data}).secure_aggregation
    except ValidationError as exc:
        fields = (
            (f.removeprefix("secure_aggregation").lstrip("."), m) for f, m in field_problems(exc)
        )
        problems = "; ".join(f"{field}: {msg}" if field else msg for field, msg in fields)
        raise TaskError(f"invalid secure aggregation {text!r}: {problems}") from exc
