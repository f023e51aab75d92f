"""A task: what a group of data owners trains together, and how.

A `Task` is display information for people, training information for the machines, and the
portable model every participant trains. It is plain data (pydantic), exported as JSON Schema and
shared by the server, the Python clients and the web app. The aggregation settings live in
`disco.aggregation_config` and the plain-words validation errors in `disco.validation`; both are
re-exported here.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Self

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from disco.aggregation_config import (
    AGGREGATION_RULES,
    SECURE_MAX_PEERS,
    SECURE_MIN_PARTICIPANTS,
    Aggregation,
    AggregationConfig,
    CenteredClippingRule,
    CosineTrustRule,
    KrumRule,
    MeanRule,
    MedianRule,
    MultiKrumRule,
    SecureAggregationConfig,
    TrimmedMeanRule,
    krum_min_updates,
    parse_aggregation,
    parse_secure_aggregation,
)
from disco.errors import SecureAggregationError, TaskError
from disco.models.spec import ModelSpec
from disco.schedule import (
    EpochPart,
    describe_work,
    epoch_part,
    epochs_in_round,
    planned_rounds,
)
from disco.validation import Frozen as _Frozen
from disco.validation import field_problems

__all__ = [
    "AGGREGATION_RULES",
    "MAX_ROUNDS_PER_EPOCH",
    "MAX_SEQUENCE_LENGTH",
    "MAX_VOCAB_SIZE",
    "MIN_VOCAB_SIZE",
    "SECURE_MAX_PEERS",
    "SECURE_MIN_PARTICIPANTS",
    "Aggregation",
    "AggregationConfig",
    "CenteredClippingRule",
    "ColumnSpec",
    "CosineTrustRule",
    "DisplayInfo",
    "KrumRule",
    "MeanRule",
    "MedianRule",
    "MultiKrumRule",
    "PrivacyConfig",
    "SecureAggregationConfig",
    "Task",
    "TrainingInfo",
    "TrimmedMeanRule",
    "field_problems",
    "krum_min_updates",
    "parse_aggregation",
    "parse_secure_aggregation",
    "parse_task",
]

TASK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

DataType = Literal["image", "tabular", "text"]
Scheme = Literal["federated", "decentralized", "local"]


WAIT_FOR_OTHERS_S = 600.0
"""Default wait for others, or the round deadline when that is longer."""

MAX_ROUNDS_PER_EPOCH = 1000
"""Most rounds an epoch may be cut into."""
MAX_SEQUENCE_LENGTH = 4096
"""Longest context a text task may have, in tokens."""
MIN_VOCAB_SIZE = 257
"""Smallest vocabulary of a text task: a token per byte and the end-of-text token."""
MAX_VOCAB_SIZE = 65_536
"""Largest vocabulary of a text task."""


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


class TrainingInfo(_Frozen):
    """How the task is trained."""

    data_type: DataType
    scheme: Scheme = "federated"
    epochs: int = Field(default=10, ge=1, le=100_000, description="total local epochs")
    epochs_per_round: int = Field(default=1, ge=1, description="local epochs between two rounds")
    rounds_per_epoch: int = Field(
        default=1,
        ge=1,
        le=MAX_ROUNDS_PER_EPOCH,
        description=(
            "rounds into which each local epoch is cut (more than 1: epochs_per_round must be "
            "1, and the models are combined that many times an epoch)"
        ),
    )
    batch_size: int = Field(default=32, ge=1, le=65_536)
    validation_split: float = Field(default=0.2, ge=0.0, lt=1.0)
    optimizer: Literal["adam", "sgd", "adamw"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="adamw only: decoupled decay of tensors of rank 2 and more, per unit of lr",
    )
    gradient_clip: float | None = Field(
        default=None,
        gt=0,
        description="largest global L2 norm of a step's gradients (null: no clipping)",
    )
    # tabular
    input_columns: tuple[ColumnSpec, ...] = ()
    output_column: str | None = None
    # image
    image_height: int | None = Field(default=None, ge=1, le=4096)
    image_width: int | None = Field(default=None, ge=1, le=4096)
    channels: Literal[1, 3] = 1
    # image and tabular classification: class names, the index is the label
    labels: tuple[str, ...] = ()
    # text (docs/text.md): the tokenizer.json is stored with the task, named by its digest
    max_sequence_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SEQUENCE_LENGTH,
        description="the context: tokens the model reads at once (a training window: one more)",
    )
    vocab_size: int | None = Field(
        default=None,
        ge=MIN_VOCAB_SIZE,
        le=MAX_VOCAB_SIZE,
        description="tokens of the task's tokenizer: its ids are 0 to vocab_size - 1",
    )
    tokenizer_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (lowercase hex) of the task's tokenizer.json, stored with the task",
    )
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
    secure_aggregation: SecureAggregationConfig | None = Field(
        default=None,
        description=(
            "the server learns only the sum of each round's updates, not one of them "
            "(docs/secure_aggregation.md); needs the mean rule, a federated task and at least 3 "
            "participants per round (empty: off)"
        ),
    )

    @property
    def rounds(self) -> int:
        """Number of communication rounds: epochs / epochs_per_round rounded up, times
        rounds_per_epoch (`disco.schedule`)."""
        return planned_rounds(self.epochs, self.epochs_per_round, self.rounds_per_epoch)

    def epochs_in_round(self, k: int) -> int:
        """Whole local epochs of a participant's `k`-th round (counted from 1).

        ``epochs_per_round``, except in the last planned round, which trains what is left of
        ``epochs`` (epochs 10, 3 per round → 3, 3, 3, 1); rounds beyond the plan (a participant
        asked for more) train ``epochs_per_round``; a round that trains part of an epoch, 1.
        tests/vectors/epoch_schedule.json pins it for the browser too.
        """
        return epochs_in_round(k, self.epochs, self.epochs_per_round, self.rounds_per_epoch)

    def epoch_part(self, k: int) -> EpochPart | None:
        """The part of an epoch a participant's `k`-th round trains (None: whole epochs)."""
        return epoch_part(k, self.rounds_per_epoch)

    def round_work(self, k: int) -> str:
        """What a participant's `k`-th round trains, in words ("2 epochs", "part 3 of 8 of
        epoch 1")."""
        return describe_work(self.epochs_in_round(k), self.epoch_part(k))

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
        if self.rounds_per_epoch > 1 and self.epochs_per_round > 1:
            raise ValueError(
                f"rounds_per_epoch ({self.rounds_per_epoch}) cuts each epoch into rounds: "
                f"epochs_per_round must then be 1 (it is {self.epochs_per_round})"
            )
        if self.wait_for_others_s < self.round_deadline_s:
            raise ValueError(
                f"wait_for_others_s ({self.wait_for_others_s:g}) must be at least "
                f"round_deadline_s ({self.round_deadline_s:g}): participants would stop waiting "
                "before a round's deadline"
            )
        self._check_rounds_fit_the_rule()
        self._check_secure_aggregation()
        return self

    def _check_secure_aggregation(self) -> None:
        """Secure aggregation shows whoever aggregates only the sum of a round's updates: only the
        mean can use it, a local task has nothing to protect, a round needs at least 3 members
        whose weighted sum fits the 32-bit ring (docs/secure_aggregation.md §3, §6), and a
        decentralized round at most `SECURE_MAX_PEERS` (every peer receives every masked input).
        Differential privacy combines with it (each participant adds its noise before masking)."""
        secure = self.secure_aggregation
        if secure is None:
            return
        rule = self.aggregation.rule
        if rule != "mean":
            raise ValueError(
                "secure aggregation shows the server only the sum of the updates; "
                f"{rule!r} needs each participant's own update — use 'mean' or turn secure "
                "aggregation off"
            )
        if self.scheme == "local":
            raise ValueError(
                "secure aggregation makes no sense in a local task: nothing is shared, so there is "
                "no sum to protect — turn secure aggregation off or use the federated scheme"
            )
        n = self.min_participants
        least = SECURE_MIN_PARTICIPANTS
        if n < least:
            raise ValueError(
                f"secure aggregation needs at least {least} participants in a round (with "
                f"{least - 1}, each could subtract its own update from the sum and read the "
                f"other's): set min_participants to at least {least} (it is {n})"
            )
        if self.scheme == "decentralized" and n > SECURE_MAX_PEERS:
            raise ValueError(
                f"a secure decentralized round takes at most {SECURE_MAX_PEERS} peers (each opens "
                "a channel to every other and receives every masked input): set "
                f"min_participants to at most {SECURE_MAX_PEERS} (it is {n}), or use the "
                "federated scheme"
            )
        if secure.threshold is not None and secure.threshold > n:
            raise ValueError(
                f"secure aggregation's threshold ({secure.threshold}) cannot be more than "
                f"min_participants ({n}): a round of {n} could never unmask its sum and would "
                "always abort; lower the threshold or raise min_participants"
            )
        from disco.secure.quantize import scale_bits  # the ring's arithmetic, loaded when used

        try:
            scale_bits(n, secure.weight_cap, secure.clip)
        except SecureAggregationError as exc:
            raise ValueError(
                f"secure aggregation's clip range and weight cap do not fit a round of {n} "
                f"participants: {exc}"
            ) from exc

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
        if t.data_type == "text":
            self._check_text()
        n_classes = m.num_classes
        if t.labels and n_classes is not None and n_classes != len(t.labels):
            raise ValueError(
                f"the model has {n_classes} outputs but the task has {len(t.labels)} labels"
            )
        return self

    def _check_text(self) -> None:
        """A text task names its context, vocabulary and tokenizer; its model reads the context."""
        t = self.training
        missing = [
            name
            for name in ("max_sequence_length", "vocab_size", "tokenizer_digest")
            if getattr(t, name) is None
        ]
        if missing:
            raise ValueError(
                f"a text task needs {' and '.join(missing)} (attach its tokenizer with "
                "disco.text.attach_tokenizer)"
            )
        if tuple(self.model.input_shape) != (t.max_sequence_length,):
            raise ValueError(
                f"the model's input_shape {list(self.model.input_shape)} does not fit the task's "
                f"context of {t.max_sequence_length} tokens"
            )
        first = self.model.layers[0]
        if getattr(first, "type", None) == "token_embedding" and (
            getattr(first, "vocab_size", None) != t.vocab_size
        ):
            raise ValueError(
                f"the model's token_embedding has {getattr(first, 'vocab_size', None)} tokens but "
                f"the task's tokenizer has {t.vocab_size}: they must be equal"
            )

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
    except RecursionError:
        raise TaskError("task is not valid JSON: values nested too deeply") from None
    except ValidationError as exc:
        problems = "; ".join(f"{field or 'task'}: {msg}" for field, msg in field_problems(exc))
        raise TaskError(f"invalid task: {problems}") from exc
