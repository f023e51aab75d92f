"""Task documents: validation, JSON round trips, error messages that name the field."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from disco import catalog
from disco.errors import TaskError
from disco.task import (
    AGGREGATION_RULES,
    SECURE_MIN_PARTICIPANTS,
    Aggregation,
    ColumnSpec,
    MeanRule,
    PrivacyConfig,
    SecureAggregationConfig,
    Task,
    TrainingInfo,
    field_problems,
    parse_secure_aggregation,
    parse_task,
)


def titanic_doc() -> dict[str, Any]:
    """The titanic task as a plain document, to break one field at a time."""
    return catalog.get("titanic").model_dump(mode="json")


def mnist_doc() -> dict[str, Any]:
    """The mnist task as a plain document."""
    return catalog.get("mnist").model_dump(mode="json")


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("task_id", catalog.ids())
def test_catalog_task_round_trips_through_json(task_id: str) -> None:
    task = catalog.get(task_id)

    text = task.model_dump_json()
    again = parse_task(text)

    assert again == task
    assert again.model_dump_json() == text
    assert parse_task(text.encode()) == task
    assert parse_task(json.loads(text)) == task


def test_json_schema_describes_a_task() -> None:
    schema = Task.json_schema()

    assert isinstance(schema, dict)
    assert set(schema["properties"]) == {"id", "display", "training", "model"}
    assert set(schema["required"]) == {"id", "display", "training", "model"}
    json.dumps(schema)  # serialisable as is


# -- errors name the field ------------------------------------------------------------------------
def test_bad_id_is_rejected() -> None:
    doc = titanic_doc()
    doc["id"] = "Not A Valid Id!"

    with pytest.raises(TaskError) as info:
        parse_task(doc)

    assert "id" in str(info.value)
    assert "'Not A Valid Id!'" in str(info.value)


def test_tabular_without_columns_is_rejected() -> None:
    doc = titanic_doc()
    doc["training"]["input_columns"] = []

    with pytest.raises(TaskError, match=r"training.*input_columns"):
        parse_task(doc)


def test_tabular_without_output_column_is_rejected() -> None:
    doc = titanic_doc()
    doc["training"]["output_column"] = None

    with pytest.raises(TaskError, match=r"training.*output_column"):
        parse_task(doc)


def test_image_without_size_is_rejected() -> None:
    doc = mnist_doc()
    del doc["training"]["image_height"]

    with pytest.raises(TaskError, match=r"training.*image_height"):
        parse_task(doc)


def test_model_input_shape_must_match_image_size() -> None:
    doc = mnist_doc()
    doc["training"]["image_height"] = 32

    with pytest.raises(TaskError, match="input_shape") as info:
        parse_task(doc)

    assert "[28, 28, 1]" in str(info.value)
    assert "(32, 28, 1)" in str(info.value)


def test_model_input_shape_must_match_number_of_columns() -> None:
    doc = titanic_doc()
    doc["training"]["input_columns"] = doc["training"]["input_columns"][:3]

    with pytest.raises(TaskError, match=r"input_shape.*input columns"):
        parse_task(doc)


def test_label_count_must_match_model_outputs() -> None:
    doc = mnist_doc()
    doc["training"]["labels"] = ["a", "b", "c"]

    with pytest.raises(TaskError, match=r"10 outputs.*3 labels"):
        parse_task(doc)


def test_epochs_per_round_cannot_exceed_epochs() -> None:
    doc = titanic_doc()
    doc["training"]["epochs"] = 2
    doc["training"]["epochs_per_round"] = 3

    with pytest.raises(TaskError, match=r"training.*epochs_per_round"):
        parse_task(doc)


def test_field_errors_carry_their_location() -> None:
    doc = titanic_doc()
    doc["training"]["batch_size"] = 0
    doc["display"]["title"] = ""

    with pytest.raises(TaskError) as info:
        parse_task(doc)

    assert "training.batch_size" in str(info.value)
    assert "display.title" in str(info.value)


def test_unknown_fields_are_rejected() -> None:
    doc = titanic_doc()
    doc["training"]["epoch"] = 3

    with pytest.raises(TaskError, match=r"training\.epoch: "):
        parse_task(doc)


def test_model_problems_are_in_plain_words_with_their_path() -> None:
    doc = mnist_doc()
    doc["model"]["layers"][5]["units"] = -1
    doc["model"]["layers"][2]["foo"] = 1
    doc["model"]["layers"][3]["rate"] = 2
    doc["model"]["layers"][1]["activation"] = "swish"

    with pytest.raises(ValidationError) as info:
        Task.model_validate(doc)

    assert field_problems(info.value) == [
        ("model.layers.1.activation", "should be 'linear', 'relu', 'relu6', 'sigmoid', 'tanh', "
         "'softmax' or 'gelu'"),
        ("model.layers.2.foo", "is not a known setting"),
        ("model.layers.3.rate", "must be less than 1"),
        ("model.layers.5.units", "must be greater than 0"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"layers": "nope"},
            "model.input_shape: is missing; model.layers: should be a list; model.loss: is missing",
        ),
        (
            {"input_shape": [4], "loss": "mse", "layers": [{"type": "transformer"}]},
            "model.layers.0: unknown layer type 'transformer' (known: dense, conv2d, ",
        ),
        (
            {"input_shape": [4], "loss": "mse", "layers": [{"units": 3}]},
            "model.layers.0: needs a 'type', one of: dense, conv2d, ",
        ),
    ],
)
def test_broken_model_documents_get_no_library_jargon(model: Any, expected: str) -> None:
    doc = mnist_doc()
    doc["model"] = model

    with pytest.raises(TaskError) as info:
        parse_task(doc)

    message = str(info.value)
    assert expected in message
    for jargon in ("Field required", "Input should be", "Input tag", "discriminator", "tuple"):
        assert jargon not in message


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (
            {"rule": "krum", "g": 2},
            "training.aggregation.g: is not a setting of krum (its settings: f, bucket_size)",
        ),
        ({"rule": "multi_krum", "m": 0}, "training.aggregation.m: must be at least 1"),
        (
            {"rule": "median", "bucket_size": 0},
            "training.aggregation.bucket_size: must be at least 1",
        ),
        (
            {"rule": "centered_clipping", "momentum": 1},
            "training.aggregation.momentum: must be less than 1",
        ),
        (
            "geometric_median",
            "training.aggregation: unknown aggregation rule 'geometric_median' (known: mean, "
            "median, trimmed_mean, krum, multi_krum, centered_clipping, cosine_trust)",
        ),
    ],
)
def test_aggregation_problems_name_the_rules_and_settings_there_are(
    aggregation: Any, expected: str
) -> None:
    doc = titanic_doc()
    doc["training"]["aggregation"] = aggregation

    with pytest.raises(TaskError) as info:
        parse_task(doc)

    assert expected in str(info.value)


def test_every_aggregation_setting_and_rule_is_explained_in_plain_words() -> None:
    """The web form shows these: every rule has a docstring, every setting a description."""
    assert list(AGGREGATION_RULES) == list(get_args(Aggregation))
    for name, cls in AGGREGATION_RULES.items():
        assert cls.__doc__ and len(cls.__doc__) > 40, name
        for field, info in cls.model_fields.items():
            if field != "rule":
                assert info.description and len(info.description) > 20, (name, field)


@pytest.mark.parametrize("text", ["{not json", "", b'{"id": ', b"\x80 not utf-8"])
def test_invalid_json_text_is_rejected(text: str | bytes) -> None:
    with pytest.raises(TaskError, match="JSON"):
        parse_task(text)


@pytest.mark.parametrize("text", ["[1, 2]", "null", '"titanic"'])
def test_json_that_is_not_an_object_is_rejected(text: str) -> None:
    with pytest.raises(TaskError, match="invalid task"):
        parse_task(text)


# -- derived values and copies --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("epochs", "per_round", "rounds"), [(10, 1, 10), (10, 3, 4), (10, 10, 1), (20, 2, 10)]
)
def test_rounds_is_epochs_over_epochs_per_round_rounded_up(
    epochs: int, per_round: int, rounds: int
) -> None:
    training = TrainingInfo(
        data_type="tabular",
        epochs=epochs,
        epochs_per_round=per_round,
        input_columns=(ColumnSpec(name="a"),),
        output_column="y",
    )

    assert training.rounds == rounds


def test_with_training_returns_a_validated_copy() -> None:
    task = catalog.get("titanic")

    changed = task.with_training(epochs=6, epochs_per_round=3, batch_size=8)

    assert changed.training.epochs == 6
    assert changed.training.rounds == 2
    assert changed.training.batch_size == 8
    assert changed.model == task.model
    assert changed.training.input_columns == task.training.input_columns
    assert task.training.epochs == 20  # the original is unchanged


@pytest.mark.parametrize(
    "changes",
    [{"epochs_per_round": 50}, {"epochs": 0}, {"learning_rate": -1.0}, {"not_a_field": 1}],
)
def test_with_training_rejects_invalid_changes(changes: dict[str, Any]) -> None:
    with pytest.raises(TaskError):
        catalog.get("titanic").with_training(**changes)


def test_tasks_are_frozen() -> None:
    task = catalog.get("titanic")

    with pytest.raises(ValidationError):
        task.id = "other"  # type: ignore[misc]


def test_privacy_noise_std_is_multiplier_times_radius() -> None:
    assert PrivacyConfig(clipping_radius=2.5, noise_multiplier=0.4).noise_std == pytest.approx(1.0)
    assert PrivacyConfig(clipping_radius=3.0).noise_std == 0.0


@pytest.mark.parametrize(
    "fields", [{"clipping_radius": 0.0}, {"clipping_radius": 1.0, "noise_multiplier": -0.1}]
)
def test_privacy_config_rejects_bad_values(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        PrivacyConfig(**fields)  # type: ignore[arg-type]


def test_privacy_config_round_trips_inside_a_task() -> None:
    task = catalog.get("titanic").with_training(
        privacy={"clipping_radius": 1.0, "noise_multiplier": 0.5}
    )

    again = parse_task(task.model_dump_json())

    assert again.training.privacy == PrivacyConfig(clipping_radius=1.0, noise_multiplier=0.5)
    assert again.training.privacy is not None
    assert again.training.privacy.noise_std == 0.5


def test_the_wait_for_others_defaults_to_at_least_the_round_deadline() -> None:
    """Tasks written before the setting existed keep loading (as in the browser's parseTask)."""
    assert TrainingInfo(data_type="text").wait_for_others_s == 600
    assert TrainingInfo(data_type="text", round_deadline_s=900).wait_for_others_s == 900
    mnist = catalog.get("mnist")
    assert mnist.with_training(round_deadline_s=900).training.wait_for_others_s == 900
    kept = mnist.with_training(wait_for_others_s=1200).with_training(round_deadline_s=30)
    assert kept.training.wait_for_others_s == 1200  # a chosen wait is kept
    with pytest.raises(TaskError, match=r"wait_for_others_s \(10\) must be at least"):
        mnist.with_training(round_deadline_s=60, wait_for_others_s=10)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"min_participants": 4, "aggregation": {"rule": "krum", "f": 1}},
            "krum with f=1 needs at least 5 updates in a round: set min_participants to at least 5",
        ),
        (
            {"min_participants": 8, "aggregation": {"rule": "krum", "f": 1, "bucket_size": 2}},
            "in buckets of 2 in a round: set min_participants to at least 9",
        ),
        (
            {"min_participants": 6, "aggregation": {"rule": "multi_krum", "f": 1, "m": 7}},
            "multi_krum averages m=7 updates but a round may have only 6",
        ),
    ],
)
def test_a_krum_task_needs_rounds_krum_can_combine(changes: dict[str, Any], message: str) -> None:
    """A round closes with min_participants updates; Krum refusing them would stall the task."""
    with pytest.raises(TaskError, match=message):
        catalog.get("titanic").with_training(**changes)
    enough = {**changes, "min_participants": 9 if "bucket_size" in str(changes) else 7}
    assert catalog.get("titanic").with_training(**enough).training.min_participants >= 7


# -- secure aggregation ---------------------------------------------------------------------------
def secure_mnist(**changes: Any) -> Task:
    """mnist with secure aggregation on (3 participants a round) and `changes`."""
    settings: dict[str, Any] = {"secure_aggregation": {}, "min_participants": 3}
    return catalog.get("mnist").with_training(**{**settings, **changes})


def test_secure_aggregation_is_off_by_default_and_has_plain_defaults() -> None:
    assert TrainingInfo(data_type="text").secure_aggregation is None
    for task_id in catalog.ids():
        assert catalog.get(task_id).training.secure_aggregation is None
    assert SecureAggregationConfig() == SecureAggregationConfig(
        clip=1.0, weight_cap=1024, threshold=None
    )
    on = secure_mnist()
    assert on.training.secure_aggregation == SecureAggregationConfig()


def test_secure_aggregation_round_trips_through_json() -> None:
    task = secure_mnist(
        min_participants=5, secure_aggregation={"clip": 0.25, "weight_cap": 64, "threshold": 4}
    )

    text = task.model_dump_json()
    again = parse_task(text)

    assert again == task
    assert again.model_dump_json() == text
    assert json.loads(text)["training"]["secure_aggregation"] == {
        "clip": 0.25,
        "weight_cap": 64,
        "threshold": 4,
    }
    off = catalog.get("mnist").model_dump(mode="json")
    assert off["training"]["secure_aggregation"] is None  # written out, as every default


def test_secure_aggregation_combines_with_differential_privacy() -> None:
    """Each participant adds its noise before masking: both can be on."""
    task = secure_mnist(privacy={"clipping_radius": 1.0, "noise_multiplier": 0.5})

    assert task.training.privacy is not None and task.training.secure_aggregation is not None


def test_mean_max_share_is_kept_with_secure_aggregation() -> None:
    """Not enforceable under secure aggregation (documented), but not refused either."""
    task = secure_mnist(aggregation={"rule": "mean", "max_share": 0.3})

    assert task.training.aggregation == MeanRule(max_share=0.3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"aggregation": "median"},
            "training: secure aggregation shows the server only the sum of the updates; 'median' "
            "needs each participant's own update — use 'mean' or turn secure aggregation off",
        ),
        (
            {"aggregation": {"rule": "trimmed_mean", "beta": 0.2}},
            "'trimmed_mean' needs each participant's own update",
        ),
        (
            {"aggregation": {"rule": "centered_clipping"}},
            "'centered_clipping' needs each participant's own update",
        ),
        (
            {"aggregation": {"rule": "cosine_trust"}},
            "'cosine_trust' needs each participant's own update",
        ),
        (
            {"min_participants": 5, "aggregation": {"rule": "krum", "f": 1}},
            "'krum' needs each participant's own update",
        ),
        (
            {"scheme": "decentralized", "min_participants": 65},
            "training: a secure decentralized round takes at most 64 peers (each opens a channel "
            "to every other and receives every masked input): set min_participants to at most 64 "
            "(it is 65), or use the federated scheme",
        ),
        ({"scheme": "local"}, "secure aggregation makes no sense in a local task"),
        (
            {"min_participants": 2},
            "training: secure aggregation needs at least 3 participants in a round (with 2, each "
            "could subtract its own update from the sum and read the other's): set "
            "min_participants to at least 3 (it is 2)",
        ),
        (
            {"min_participants": 4, "secure_aggregation": {"threshold": 5}},
            "training: secure aggregation's threshold (5) cannot be more than min_participants "
            "(4): a round of 4 could never unmask its sum and would always abort",
        ),
        (
            {"secure_aggregation": {"threshold": 2}},
            "training.secure_aggregation.threshold: must be at least 3",
        ),
        (
            {"secure_aggregation": {"clip": 1e6, "weight_cap": 65_536}},
            "training: secure aggregation's clip range and weight cap do not fit a round of 3 "
            "participants: n × W × c = 3 × 65536 × 1e+06 is too large for the 32-bit ring",
        ),
        (
            {"min_participants": 9000},
            "do not fit a round of 9000 participants: n × W × c = 9000 × 1024 × 1 is too large",
        ),
        ({"secure_aggregation": {"clip": 0}}, "training.secure_aggregation.clip: must be greater"),
        (
            {"secure_aggregation": {"clip": 2e6}},
            "training.secure_aggregation.clip: must be at most 1000000",
        ),
        (
            {"secure_aggregation": {"clip": float("inf")}},
            "training.secure_aggregation.clip: should be a finite number",
        ),
        (
            {"secure_aggregation": {"weight_cap": 0}},
            "training.secure_aggregation.weight_cap: must be at least 1",
        ),
        (
            {"secure_aggregation": {"weight_cap": 65_537}},
            "training.secure_aggregation.weight_cap: must be at most 65536",
        ),
        (
            {"secure_aggregation": {"weight_cap": 2.5}},
            "training.secure_aggregation.weight_cap: should be a whole number",
        ),
        (
            {"secure_aggregation": {"noise": 1}},
            "training.secure_aggregation.noise: is not a setting of secure aggregation (its "
            "settings: clip, weight_cap, threshold)",
        ),
    ],
)
def test_secure_aggregation_refusals_say_why_and_what_to_do(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(TaskError) as info:
        secure_mnist(**changes)

    assert message in str(info.value)


def test_the_smallest_round_decides_whether_the_ring_fits() -> None:
    """8191 × 1024 × 1 × 2^8 + 8191 fits 2^31 − 1; one more participant does not."""
    assert secure_mnist(min_participants=8191).training.min_participants == 8191
    with pytest.raises(TaskError, match="do not fit a round of 8192 participants"):
        secure_mnist(min_participants=8192)
    assert secure_mnist(min_participants=3, secure_aggregation={"threshold": 3})


def test_the_fewest_participants_is_the_rosters() -> None:
    from disco.secure.roster import MIN_MEMBERS

    assert SECURE_MIN_PARTICIPANTS == MIN_MEMBERS


def test_every_secure_aggregation_setting_is_explained_in_plain_words() -> None:
    """The web form shows these descriptions as the settings' help."""
    assert SecureAggregationConfig.__doc__ and len(SecureAggregationConfig.__doc__) > 40
    for field, info in SecureAggregationConfig.model_fields.items():
        assert info.description and len(info.description) > 20, field
    assert "weight cap" in (MeanRule.model_fields["max_share"].description or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SecureAggregationConfig()),
        ("on", SecureAggregationConfig()),
        ("clip=0.5", SecureAggregationConfig(clip=0.5)),
        (
            " clip=0.5, weight_cap=100 ,threshold=3",
            SecureAggregationConfig(clip=0.5, weight_cap=100, threshold=3),
        ),
        ("threshold=auto", SecureAggregationConfig()),
    ],
)
def test_secure_aggregation_settings_from_a_command_line(
    text: str, expected: SecureAggregationConfig
) -> None:
    assert parse_secure_aggregation(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip", "write each setting as name=value"),
        ("clip=1,clip=2", "clip is given twice"),
        ("clip=-1", "clip: must be greater than 0"),
        ("weight_cap=big", "weight_cap: should be a whole number"),
        ("noise=1", "noise: is not a setting of secure aggregation"),
    ],
)
def test_bad_secure_aggregation_settings_are_plain_errors(text: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        parse_secure_aggregation(text)
