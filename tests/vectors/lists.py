"""Generate what the web app mirrors of the Python code, from the Python code.

    python tests/vectors/lists.py           rewrite the files below from what the code says now
    python tests/vectors/lists.py --check   exit 1 if a committed file differs

- tests/vectors/shared_lists.json: the lists and constants that exist in both languages — the
  task-id pattern (with Python's verdict on sample ids), the literal choices of a task and of the
  portable model (data types, schemes, aggregation rules, optimizers, activations, losses,
  paddings, layer types and each layer's settings), the defaults a task document may leave out
  (each aggregation rule's settings among them), the protocol's constants and names, the catalog,
  and the model document (as Python completes it: every layer named, every setting filled in) of
  every built-in architecture the web's task form builds, for the catalog's inputs and a few
  others. web/tests/shared-lists.test.ts compares the TypeScript with it.
- web/tests/fixtures/catalog.json: every built-in task and its canonical weights, which the web
  tests train, parse and build.

tests/test_shared_lists.py fails when a committed file is not what this script writes now, so a
change on the Python side cannot reach the web app silently: it regenerates these files, and the
web tests then say what the TypeScript has to follow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump

from disco import catalog
from disco.errors import TaskError
from disco.models import ARCHITECTURES, Dense, ModelSpec, get_architecture
from disco.models.spec import FORMAT, ActivationName, Layer, LossName, Padding
from disco.protocol import (
    CAPABILITIES,
    DECENTRALIZED_TYPES,
    PEER_TYPES,
    PROTOCOL_VERSION,
    ErrorCode,
    Hello,
    Message,
    Metrics,
    ModelUpdate,
    SessionState,
)
from disco.protocol.messages import MAX_SAFE_INT
from disco.task import (
    AGGREGATION_RULES,
    MAX_SEQUENCE_LENGTH,
    MAX_VOCAB_SIZE,
    MIN_VOCAB_SIZE,
    SECURE_MAX_PEERS,
    SECURE_MIN_PARTICIPANTS,
    TASK_ID,
    Aggregation,
    ColumnSpec,
    DataType,
    DisplayInfo,
    Scheme,
    SecureAggregationConfig,
    Task,
    TrainingInfo,
    parse_task,
)
from disco.validation import LAYER_TYPES

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "vectors" / "shared_lists.json"
CATALOG = ROOT / "web" / "tests" / "fixtures" / "catalog.json"

# ids the web and Python must judge alike (Python's verdict is recorded)
SAMPLE_IDS = [
    "a",
    "0",
    "mnist",
    "lus_covid",
    "hospital-x-rays",
    "a" * 64,
    "a" * 65,
    "",
    "-a",
    "_a",
    "Mnist",
    "a.b",
    "a b",
    "a/b",
    "caf\u00e9",
    "abc\n",
    "\nabc",
]

# The web form's "dense" network has no Python twin: its documents are pinned here, built with
# Python's layer classes so that they are valid portable models.
WEB_ONLY = {"dense"}
# (id, input, classes) the web form's builder is checked on besides the catalog's own tasks
EXTRA_CASES: list[tuple[str, dict[str, int], int]] = [
    ("mnist_cnn", {"height": 40, "width": 30, "channels": 3, "columns": 0}, 3),
    ("lus_covid_cnn", {"height": 64, "width": 48, "channels": 1, "columns": 0}, 5),
    ("cifar10_cnn", {"height": 28, "width": 28, "channels": 1, "columns": 0}, 2),
    ("dense", {"height": 0, "width": 0, "channels": 1, "columns": 30}, 2),
    ("dense", {"height": 0, "width": 0, "channels": 1, "columns": 7}, 4),
]


# a text task's training fields Python accepts or refuses (the base: context 16, 300 tokens)
TEXT_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("complete", {}, 16),
    ("no context", {"max_sequence_length": None}, 16),
    ("no vocabulary size", {"vocab_size": None}, 16),
    ("no tokenizer", {"tokenizer_digest": None}, 16),
    ("the smallest vocabulary", {"vocab_size": MIN_VOCAB_SIZE}, 16),
    ("the largest vocabulary", {"vocab_size": MAX_VOCAB_SIZE}, 16),
    ("a vocabulary too small", {"vocab_size": MIN_VOCAB_SIZE - 1}, 16),
    ("a vocabulary too large", {"vocab_size": MAX_VOCAB_SIZE + 1}, 16),
    ("the longest context", {"max_sequence_length": MAX_SEQUENCE_LENGTH}, MAX_SEQUENCE_LENGTH),
    (
        "a context too long",
        {"max_sequence_length": MAX_SEQUENCE_LENGTH + 1},
        MAX_SEQUENCE_LENGTH + 1,
    ),
    ("a context of zero", {"max_sequence_length": 0}, 16),
    ("a model reading another context", {}, 32),
    ("a digest in capitals", {"tokenizer_digest": "AB" * 32}, 16),
    ("a digest too short", {"tokenizer_digest": "ab" * 31}, 16),
]


def _text_tasks() -> list[dict[str, Any]]:
    """Text task documents with Python's verdict."""
    out = []
    for name, changes, model_input in TEXT_CASES:
        training = {
            "data_type": "text",
            "max_sequence_length": 16,
            "vocab_size": 300,
            "tokenizer_digest": "0123456789abcdef" * 4,
        }
        training = {k: v for k, v in {**training, **changes}.items() if v is not None}
        model = {
            "input_shape": [model_input],
            "layers": [{"type": "dense", "units": 2, "activation": "softmax"}],
            "loss": "categorical_crossentropy",
        }
        doc = {"id": "text", "display": {"title": "t"}, "training": training, "model": model}
        try:
            parse_task(doc)
            accepted = True
        except TaskError:
            accepted = False
        out.append({"name": name, "task": doc, "accepted": accepted})
    return out


def _literal(alias: Any) -> list[Any]:
    """The values of a `Literal[...]` alias, in order."""
    return list(get_args(alias))


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of `model` that has a default, with it (JSON values)."""
    return {
        name: to_jsonable_python(info.get_default(call_default_factory=True))
        for name, info in model.model_fields.items()
        if not info.is_required()
    }


def _required(model: type[BaseModel]) -> list[str]:
    return [name for name, info in model.model_fields.items() if info.is_required()]


_BOUND_KEYS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def _bounds(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Per field of `model`: its JSON type, whether it may be null, and its bounds (JSON Schema
    names), as the task schema the web form reads says them."""
    out = {}
    for name, prop in model.model_json_schema()["properties"].items():
        branches = prop.get("anyOf", [prop])
        value = next(b for b in branches if b.get("type") != "null")
        out[name] = {
            "type": value["type"],
            "nullable": any(b.get("type") == "null" for b in branches),
            **{k: value[k] for k in _BOUND_KEYS if k in value},
        }
    return out


def _field_pattern(model: type[BaseModel], name: str) -> str:
    """The regular expression a string field of `model` must match."""
    prop = model.model_json_schema()["properties"][name]
    return str(next(b["pattern"] for b in prop.get("anyOf", [prop]) if "pattern" in b))


def _layer_settings() -> dict[str, dict[str, Any]]:
    """Per layer type: the settings it must have, and the others with their defaults (besides
    `type`, and `name`, which is filled in as ``{type}_{k}``)."""
    settings = {}
    for cls in get_args(get_args(Layer)[0]):
        fields = {k: v for k, v in cls.model_fields.items() if k not in ("type", "name")}
        settings[cls.model_fields["type"].default] = {
            "required": [k for k, v in fields.items() if v.is_required()],
            "defaults": {
                k: to_jsonable_python(v.default) for k, v in fields.items() if not v.is_required()
            },
        }
    return settings


def _accepts_id(task_id: str, base: dict[str, Any]) -> bool:
    try:
        parse_task({**base, "id": task_id})
    except TaskError:
        return False
    return True


def _task_id() -> dict[str, Any]:
    base = catalog.get("mnist").model_dump(mode="json")
    verdicts = {i: _accepts_id(i, base) for i in SAMPLE_IDS}
    return {
        "pattern": TASK_ID.pattern,
        "accepted": [i for i, ok in verdicts.items() if ok],
        "refused": [i for i, ok in verdicts.items() if not ok],
    }


def _architecture_of(task: Task) -> str | None:
    """The built-in architecture that gives `task`'s model, for the task's input and labels."""
    t = task.training
    if t.data_type == "text":  # a language model: the GPT, whatever its sizes
        return "gpt" if task.model.takes_tokens else None
    if t.data_type == "image":
        args: dict[str, Any] = {
            "h": t.image_height,
            "w": t.image_width,
            "c": t.channels,
            "classes": len(t.labels),
        }
    else:
        args = {"n_inputs": len(t.input_columns)}
    for name, build in ARCHITECTURES.items():
        try:
            if build(**args) == task.model:
                return name
        except TypeError:
            continue
    return None


def _web_model(arch: str, inputs: dict[str, int], classes: int) -> ModelSpec:
    """The model the web form builds: Python's architecture, or the web-only dense network."""
    if arch not in WEB_ONLY:
        return get_architecture(
            arch, h=inputs["height"], w=inputs["width"], c=inputs["channels"], classes=classes
        )
    units = 1 if classes == 2 else classes
    return ModelSpec(
        input_shape=(inputs["columns"],),
        layers=(
            Dense(units=32, activation="relu"),
            Dense(units=16, activation="relu"),
            Dense(units=units, activation="sigmoid" if classes == 2 else "softmax"),
        ),
        loss="binary_crossentropy" if classes == 2 else "categorical_crossentropy",
        description=f"MLP 32-16-{units} with ReLU.",
    )


def _web_architectures(tasks: list[Task]) -> list[dict[str, Any]]:
    cases: list[tuple[str | None, str, dict[str, int], int]] = []
    for task in tasks:
        arch, t = _architecture_of(task), task.training
        if arch in ARCHITECTURES and t.data_type == "image":
            assert t.image_height is not None and t.image_width is not None
            inputs = {"height": t.image_height, "width": t.image_width, "channels": t.channels}
            cases.append((task.id, arch, {**inputs, "columns": 0}, len(t.labels)))
    cases += [(None, arch, inputs, classes) for arch, inputs, classes in EXTRA_CASES]
    out = []
    for task_id, arch, inputs, classes in cases:
        model = _web_model(arch, inputs, classes)
        if task_id is not None:
            assert model == catalog.get(task_id).model, task_id
        case = {"architecture": arch, "input": inputs, "classes": classes}
        out.append(
            ({"task": task_id} if task_id else {}) | case | {"model": model.model_dump(mode="json")}
        )
    return out


def shared_lists() -> dict[str, Any]:
    """Everything tests/vectors/shared_lists.json holds."""
    tasks = catalog.all_tasks()
    metric_names = sorted(Metrics.model_fields)  # the wire order: msgpack maps have sorted keys
    return {
        "about": (
            "Generated by tests/vectors/lists.py from the Python code; "
            "web/tests/shared-lists.test.ts checks the TypeScript against it."
        ),
        "task_id": _task_id(),
        "task": {
            "data_types": _literal(DataType),
            "schemes": _literal(Scheme),
            "aggregations": _literal(Aggregation),
            "aggregation_defaults": {
                name: cls().model_dump(mode="json") for name, cls in AGGREGATION_RULES.items()
            },
            "optimizers": _literal(TrainingInfo.model_fields["optimizer"].annotation),
            "channels": _literal(TrainingInfo.model_fields["channels"].annotation),
            "training_required": _required(TrainingInfo),
            "training_defaults": _defaults(TrainingInfo),
            "column_defaults": _defaults(ColumnSpec),
            "display_defaults": _defaults(DisplayInfo),
            "text": {
                "max_sequence_length": MAX_SEQUENCE_LENGTH,
                "vocab_size": [MIN_VOCAB_SIZE, MAX_VOCAB_SIZE],
                "tokenizer_digest_pattern": _field_pattern(TrainingInfo, "tokenizer_digest"),
                "tasks": _text_tasks(),
            },
            "secure_aggregation": {
                "defaults": SecureAggregationConfig().model_dump(mode="json"),
                "bounds": _bounds(SecureAggregationConfig),
                "min_participants": SECURE_MIN_PARTICIPANTS,
                "max_peers": SECURE_MAX_PEERS,
            },
        },
        "model": {
            "format": FORMAT,
            "activations": _literal(ActivationName),
            "losses": _literal(LossName),
            "paddings": _literal(Padding),
            "layer_types": list(LAYER_TYPES),
            "layer_settings": _layer_settings(),
        },
        "protocol": {
            "version": PROTOCOL_VERSION,
            "max_safe_int": MAX_SAFE_INT,
            "max_num_samples": next(
                m.le for m in ModelUpdate.model_fields["num_samples"].metadata if hasattr(m, "le")
            ),
            "message_types": [
                cls.model_fields["type"].default for cls in get_args(get_args(Message)[0])
            ],
            "capabilities": list(CAPABILITIES),
            "decentralized_types": sorted(DECENTRALIZED_TYPES),
            "peer_types": sorted(PEER_TYPES),
            "client_kinds": _literal(Hello.model_fields["kind"].annotation),
            "error_codes": _literal(ErrorCode),
            "session_states": _literal(SessionState),
            "metric_names": metric_names,
        },
        "catalog": [
            {
                "id": t.id,
                "title": t.display.title,
                "data_type": t.training.data_type,
                "scheme": t.training.scheme,
                "architecture": _architecture_of(t),
            }
            for t in tasks
        ],
        "architectures": {
            "python": list(ARCHITECTURES),
            "web": _web_architectures(tasks),
        },
    }


def catalog_fixture() -> list[dict[str, Any]]:
    """Everything web/tests/fixtures/catalog.json holds: each task and its canonical weights."""
    return [
        {
            "task": t.model_dump(mode="json"),
            "weights": [
                {"name": n, "shape": list(i.shape), "trainable": i.trainable}
                for n, i in t.model.weight_infos()
            ],
        }
        for t in catalog.all_tasks()
    ]


def render() -> dict[Path, str]:
    """Each file's exact text."""
    shared = shared_lists()
    text = dump(shared) + "\n"
    assert json.loads(text) == shared
    return {SHARED: text, CATALOG: json.dumps(catalog_fixture(), indent=1) + "\n"}


def main(argv: list[str] | None = None) -> int:
    """Rewrite the files, or with --check compare them with what the code produces."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        name = path.relative_to(ROOT)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            print(f"{name} is up to date")
        elif args.check:
            stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
    for name in stale:
        print(f"{name} is out of date: run python tests/vectors/lists.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
