"""What the web app mirrors of the Python code is regenerated whenever the Python changes.

tests/vectors/lists.py writes tests/vectors/shared_lists.json (checked against the TypeScript by
web/tests/shared-lists.test.ts) and web/tests/fixtures/catalog.json (used by the web tests) from
the Python sources; here the committed files must be exactly what it writes now.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest

from disco import catalog
from disco.aggregation import RULES, build_aggregator
from disco.errors import TaskError
from disco.task import Aggregation, TrainingInfo, parse_task

SCRIPT = Path(__file__).parent / "vectors" / "lists.py"
REGENERATE = "out of date: run `.venv/bin/python tests/vectors/lists.py`"


def _lists() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_lists_generator", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lists() -> ModuleType:
    return _lists()


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as paths (for a readable failure)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{path}.{key}")
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = enumerate(zip(old, new, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{path}.{i}")]
    return [] if old == new else [f"{path or '.'}: {old!r} -> {new!r}"[:300]]


def test_committed_files_are_what_the_python_code_gives_now(lists: ModuleType) -> None:
    for path, text in lists.render().items():
        assert path.exists(), f"{path} is missing: run `.venv/bin/python tests/vectors/lists.py`"
        committed = path.read_text(encoding="utf-8")
        if committed != text:
            changes = _differences(json.loads(committed), json.loads(text))
            pytest.fail(f"{path} is {REGENERATE}; it differs at\n" + "\n".join(changes[:40]))


def test_the_check_command_passes(lists: ModuleType) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_command_fails_on_a_stale_file(
    lists: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    stale = tmp_path / "shared_lists.json"
    stale.write_text(lists.SHARED.read_text(encoding="utf-8").replace('"adam"', '"adamw"'))
    monkeypatch.setattr(lists, "SHARED", stale)
    monkeypatch.setattr(lists, "ROOT", tmp_path)
    monkeypatch.setattr(lists, "CATALOG", tmp_path / "catalog.json")
    assert lists.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "shared_lists.json is out of date" in err and "catalog.json is out of date" in err
    assert "adamw" in stale.read_text()  # --check never writes


def test_every_mirrored_section_is_there(lists: ModuleType) -> None:
    shared = lists.shared_lists()
    sections = {"about", "task_id", "task", "model", "protocol", "catalog", "architectures"}
    assert set(shared) == sections
    assert [t["id"] for t in shared["catalog"]] == catalog.ids()
    # every built-in task is made from a built-in architecture
    assert all(t["architecture"] in shared["architectures"]["python"] for t in shared["catalog"])
    # the web form's builder is checked on every catalog image task it can make
    web_tasks = {c.get("task") for c in shared["architectures"]["web"]}
    assert {"mnist", "fashion_mnist", "cifar10", "lus_covid"} <= web_tasks
    assert shared["task"]["training_required"] == ["data_type"]


def test_task_ids_are_matched_whole() -> None:
    """`$` matches before a final newline in Python: the check must not let "id\\n" through."""
    doc = catalog.get("mnist").model_dump(mode="json")
    for bad in ("abc\n", "abc\n\n", "\nabc", "a" * 65):
        with pytest.raises(TaskError, match="task id"):
            parse_task({**doc, "id": bad})
    assert parse_task({**doc, "id": "a" * 64}).id == "a" * 64


def test_aggregation_choices_are_the_rules_the_server_has() -> None:
    assert set(RULES) == set(get_args(Aggregation))
    for rule in RULES:  # each rule a task names builds the aggregator of that rule
        training = TrainingInfo(data_type="text", min_participants=5, aggregation=rule)
        assert build_aggregator(training).rule == rule
