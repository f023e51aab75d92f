"""A task: what a group of data owners trains together, and how.

A `Task` is display information for people, training information for the machines, and the
portable model every participant trains. It is plain data (pydantic), exported as JSON Schema and
shared by the server, the Python clients and the web app.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from disco.errors import TaskError
from disco.models.spec import Layer, ModelSpec

__all__ = [
    "AGGREGATION_RULES",
    "AggregationConfig",
    "CenteredClippingRule",
    "ColumnSpec",
    "DisplayInfo",
    "KrumRule",
    "MeanRule",
    "MedianRule",
    "MultiKrumRule",
    "PrivacyConfig",
    "Task",
    "TrainingInfo",
    "TrimmedMeanRule",
    "field_problems",
    "krum_min_updates",
    "parse_aggregation",
    "parse_task",
]

TASK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

DataType = Literal["image", "tabular", "text"]
Scheme = Literal["federated", "decentralized", "local"]
Aggregation = Literal["mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clipping"]
"""The names of the aggregation rules (`AggregationConfig.rule`)."""


WAIT_FOR_OTHERS_S = 600.0
"""Default wait for others, or the round deadline when that is longer."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DisplayInfo(_Frozen):
    """What people read about a task before they take part."""

    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=5000)
    data_format: str = Field(default="", max_length=5000, description="what data to connect")
    example: str = Field(default="", max_length=5000, description="an example of the data")
    model_description: str = Field(default="", max_length=5000)
    sample_data: str = Field(default="", description="how to get sample data, e.g. a command")


class ColumnSpec(_Frozen):
    """One tabular input column and the fixed preprocessing every participant applies to it.

    Preprocessing is part of the task (not computed from local data) so that every participant —
    Python or browser — feeds the model identically: ``(value - mean) / std``, with ``fill`` for
    missing values, and ``categories`` mapping text values to their index.
    """

    name: str = Field(min_length=1)
    fill: float | None = Field(default=None, description="value used when the cell is empty")
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)
    categories: tuple[str, ...] | None = Field(
        default=None, description="text values, encoded as their position in this list"
    )


class PrivacyConfig(_Frozen):
    """Client-side differential privacy on each shared update.

    The update (new weights − received weights) is scaled down to L2 norm at most
    ``clipping_radius``; then Gaussian noise with standard deviation
    ``noise_multiplier × clipping_radius`` is added to every coordinate.
    """

    clipping_radius: float = Field(gt=0, description="L2 bound C on each update")
    noise_multiplier: float = Field(
        default=0.0, ge=0, description="noise standard deviation, in units of C"
    )

    @property
    def noise_std(self) -> float:
        """Standard deviation of the Gaussian noise added to each coordinate."""
        return self.noise_multiplier * self.clipping_radius


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
            "claims (1: plain FedAvg)"
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


AggregationConfig = Annotated[
    MeanRule | MedianRule | TrimmedMeanRule | KrumRule | MultiKrumRule | CenteredClippingRule,
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
    ``multi_krum:f=1,m=5``, ``centered_clipping:tau=0.5,momentum=0.9``, ``median:bucket_size=2``.

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


class TrainingInfo(_Frozen):
    """How the task is trained."""

    data_type: DataType
    scheme: Scheme = "federated"
    epochs: int = Field(default=10, ge=1, le=100_000, description="total local epochs")
    epochs_per_round: int = Field(default=1, ge=1, description="local epochs between two rounds")
    batch_size: int = Field(default=32, ge=1, le=65_536)
    validation_split: float = Field(default=0.2, ge=0.0, lt=1.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    # tabular
    input_columns: tuple[ColumnSpec, ...] = ()
    output_column: str | None = None
    # image
    image_height: int | None = Field(default=None, ge=1, le=4096)
    image_width: int | None = Field(default=None, ge=1, le=4096)
    channels: Literal[1, 3] = 1
    # image and tabular classification: class names, the index is the label
    labels: tuple[str, ...] = ()
    # text
    max_sequence_length: int | None = Field(default=None, ge=1)
    # collaboration
    min_participants: int = Field(default=1, ge=1, le=10_000)
    round_deadline_s: float = Field(
        default=120.0, gt=0, le=86_400, description="seconds a round waits for slow participants"
    )
    wait_for_others_s: float = Field(
        default=WAIT_FOR_OTHERS_S,
        gt=0,
        le=86_400,
        description=(
            "seconds a participant waits for the others after sending its update; when no round "
            "closes in that time it stops and keeps the model it has"
        ),
    )
    aggregation: AggregationConfig = MeanRule()
    privacy: PrivacyConfig | None = None

    @property
    def rounds(self) -> int:
        """Number of communication rounds: epochs / epochs_per_round, rounded up."""
        return math.ceil(self.epochs / self.epochs_per_round)

    def epochs_in_round(self, k: int) -> int:
        """Local epochs of a participant's `k`-th round (counted from 1).

        ``epochs_per_round``, except in the last planned round, which trains what is left of
        ``epochs`` (epochs 10, 3 per round → 3, 3, 3, 1); rounds beyond the plan (a participant
        asked for more) train ``epochs_per_round``. tests/vectors/epoch_schedule.json pins it
        for the browser too.
        """
        if k < 1:
            raise ValueError(f"rounds are counted from 1, got {k}")
        if k > self.rounds:
            return self.epochs_per_round
        return min(self.epochs_per_round, self.epochs - (k - 1) * self.epochs_per_round)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """A rule name alone is that rule with its defaults; without a wait of its own, a task
        waits at least as long as its round deadline (tasks written before these settings
        existed keep loading)."""
        if isinstance(data, dict) and isinstance(data.get("aggregation"), str):
            data = {**data, "aggregation": {"rule": data["aggregation"]}}
        if isinstance(data, dict) and "wait_for_others_s" not in data:
            deadline = data.get("round_deadline_s")
            if isinstance(deadline, int | float) and deadline > WAIT_FOR_OTHERS_S:
                return {**data, "wait_for_others_s": deadline}
        return data

    @model_validator(mode="after")
    def _check_data_fields(self) -> Self:
        if self.data_type == "tabular":
            if not self.input_columns:
                raise ValueError("a tabular task needs input_columns")
            if not self.output_column:
                raise ValueError("a tabular task needs an output_column")
            names = [c.name for c in self.input_columns]
            if len(set(names)) != len(names):
                raise ValueError(f"input_columns has duplicates: {names}")
            if self.output_column in names:
                raise ValueError(f"output_column {self.output_column!r} is also an input")
        if self.data_type == "image":
            if self.image_height is None or self.image_width is None:
                raise ValueError("an image task needs image_height and image_width")
            if len(self.labels) < 2:
                raise ValueError("an image task needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels has duplicates: {list(self.labels)}")
        if self.epochs_per_round > self.epochs:
            raise ValueError("epochs_per_round cannot exceed epochs")
        if self.wait_for_others_s < self.round_deadline_s:
            raise ValueError(
                f"wait_for_others_s ({self.wait_for_others_s:g}) must be at least "
                f"round_deadline_s ({self.round_deadline_s:g}): participants would stop waiting "
                "before a round's deadline"
            )
        self._check_rounds_fit_the_rule()
        return self

    def _check_rounds_fit_the_rule(self) -> None:
        """A round closes with as few as ``min_participants`` updates: Krum must be able to
        combine that many (more than 2f + 2, counted in buckets), or rounds would never close."""
        rule = self.aggregation
        if not isinstance(rule, KrumRule | MultiKrumRule):
            return
        size = rule.bucket_size
        groups = -(-self.min_participants // size)  # ceil: buckets in the smallest round
        need = krum_min_updates(rule.f)
        if groups < need:
            fewest = (need - 1) * size + 1
            in_buckets = f" in buckets of {size}" if size > 1 else ""
            raise ValueError(
                f"{rule.rule} with f={rule.f} needs at least {need} updates{in_buckets} in a "
                f"round: set min_participants to at least {fewest} (it is {self.min_participants})"
            )
        if isinstance(rule, MultiKrumRule) and rule.m is not None and rule.m > groups:
            raise ValueError(
                f"multi_krum averages m={rule.m} updates but a round may have only {groups}: "
                f"lower m or raise min_participants"
            )


class Task(_Frozen):
    """A collaborative learning task: display info, training info and the model."""

    id: str = Field(description="lowercase letters, digits, '-' and '_'")
    display: DisplayInfo
    training: TrainingInfo
    model: ModelSpec

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not TASK_ID.fullmatch(value):  # `$` alone would let "id\n" through
            raise ValueError(
                f"task id {value!r} must be 1-64 lowercase letters, digits, '-' or '_'"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        t, m = self.training, self.model
        if t.data_type == "image":
            want = (t.image_height, t.image_width, t.channels)
            if tuple(m.input_shape) != want:
                raise ValueError(
                    f"the model's input_shape {list(m.input_shape)} does not fit the task's "
                    f"images {want} (height, width, channels)"
                )
        if t.data_type == "tabular" and tuple(m.input_shape) != (len(t.input_columns),):
            raise ValueError(
                f"the model's input_shape {list(m.input_shape)} does not fit the task's "
                f"{len(t.input_columns)} input columns"
            )
        n_classes = m.num_classes
        if t.labels and n_classes is not None and n_classes != len(t.labels):
            raise ValueError(
                f"the model has {n_classes} outputs but the task has {len(t.labels)} labels"
            )
        return self

    def with_training(self, **changes: Any) -> Task:
        """A copy with some training fields changed (validated)."""
        data = self.model_dump()
        t = data["training"]
        if "wait_for_others_s" not in changes and t["wait_for_others_s"] == max(
            WAIT_FOR_OTHERS_S, t["round_deadline_s"]
        ):
            del t["wait_for_others_s"]  # a default wait follows a changed deadline
        t.update(changes)
        return parse_task(data)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a task document."""
        return cls.model_json_schema()


def parse_task(data: dict[str, Any] | str | bytes) -> Task:
    """Validate a task document (dict or JSON text); raise `TaskError` naming each bad field."""
    try:
        if isinstance(data, str | bytes):
            data = json.loads(data)
        return Task.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskError(f"task is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{field or 'task'}: {msg}" for field, msg in field_problems(exc))
        raise TaskError(f"invalid task: {problems}") from exc


# -- validation errors in plain words -------------------------------------------------------------
LAYER_TYPES: tuple[str, ...] = tuple(
    str(cls.model_fields["type"].default) for cls in get_args(get_args(Layer)[0])
)
"""Every layer type of the portable model, in the order of `disco.models.spec.Layer`."""

_KIND_WORDS = {
    "missing": "is missing",
    "extra_forbidden": "is not a known setting",
    "tuple_type": "should be a list",
    "list_type": "should be a list",
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
    "float_type": "should be a number",
    "float_parsing": "should be a number",
    "finite_number": "should be a finite number",
    "bool_type": "should be true or false",
    "bool_parsing": "should be true or false",
    "string_type": "should be text",
    "dict_type": "should be an object, { ... }",
    "model_type": "should be an object, { ... }",
    "model_attributes_type": "should be an object, { ... }",
    "json_invalid": "is not valid JSON",
}


def _number(value: Any) -> str:
    """``0.0`` as ``0``, other values as they are."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _words(err: ErrorDetails) -> str:
    """One pydantic error as a plain sentence fragment that follows its field's path."""
    kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
    if kind == "extra_forbidden" and "aggregation" in loc[:-1]:
        rule = loc[loc.index("aggregation") + 1]
        if isinstance(rule, str) and rule in AGGREGATION_RULES:
            settings = [n for n in AGGREGATION_RULES[rule].model_fields if n != "rule"]
            return f"is not a setting of {rule} (its settings: {', '.join(settings)})"
    if kind in _KIND_WORDS:
        return _KIND_WORDS[kind]
    if "aggregation" in loc and kind in ("union_tag_invalid", "union_tag_not_found"):
        rules = ", ".join(get_args(Aggregation))
        if kind == "union_tag_not_found":
            return f"needs a 'rule', one of: {rules}"
        return f"unknown aggregation rule {ctx.get('tag')!r} (known: {rules})"
    if kind == "union_tag_invalid":
        return f"unknown layer type {ctx.get('tag')!r} (known: {', '.join(LAYER_TYPES)})"
    if kind == "union_tag_not_found":
        return f"needs a 'type', one of: {', '.join(LAYER_TYPES)}"
    if kind == "literal_error":
        return f"should be {ctx.get('expected')}"
    bounds = {
        "greater_than": ("must be greater than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "less_than_equal": ("must be at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {_number(ctx.get(key))}"
    if kind in ("string_too_short", "too_short"):
        n = ctx.get("min_length", 1)
        unit = "character" if kind == "string_too_short" else "item"
        return "must not be empty" if n == 1 else f"must have at least {n} {unit}s"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == "^[a-z0-9_]+$":
            return "may only use lowercase letters, digits and '_'"
        return f"does not have the expected form ({ctx.get('pattern')})"
    message = str(err["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "should be")


def _path(loc: Sequence[int | str]) -> str:
    """A dotted path into the document, without the layer-type tags pydantic inserts."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in LAYER_TYPES and i > 0 and isinstance(loc[i - 1], int):
            continue  # layers.5.dense.units: "dense" is the union member, not a field
        if i > 0 and loc[i - 1] == "aggregation" and part in get_args(Aggregation):
            continue  # aggregation.mean.max_share: "mean" is the union member
        parts.append(str(part))
    return ".".join(parts)


def field_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted field path, plain message) per error: ``("model.layers.5.units", "must be ...")``.

    The path is "" for problems of the document as a whole.
    """
    return [(_path(e["loc"]), _words(e)) for e in exc.errors(include_url=False)]
