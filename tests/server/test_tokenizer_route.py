"""A text task's tokenizer on a real server: created with the task, stored, served, guarded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from disco import catalog
from disco.catalog.shakespeare import tokenizer as shakespeare_tokenizer
from disco.errors import ServerError, TaskError
from disco.models import architectures as arch
from disco.task import Task, parse_task
from disco.text import Tokenizer, train_tokenizer

ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(["to be or not to be, that is the question"] * 3, 300)


def text_task(tokenizer: Tokenizer, task_id: str = "letters") -> Task:
    """A tiny text task naming `tokenizer`."""
    model = arch.gpt(tokenizer.vocab_size, 8, d_model=8, layers=1, heads=2)
    return parse_task(
        {
            "id": task_id,
            "display": {"title": "Letters"},
            "training": {
                "data_type": "text",
                "max_sequence_length": 8,
                "vocab_size": tokenizer.vocab_size,
                "tokenizer_digest": tokenizer.digest,
            },
            "model": model.model_dump(mode="json"),
        }
    )


def envelope(task: Task, data: bytes) -> str:
    """The creation body of a text task: the task and its tokenizer.json text."""
    return json.dumps({"task": task.model_dump(mode="json"), "tokenizer": data.decode("utf-8")})


def test_create_serve_and_fetch_a_text_task(
    start_server: Any, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    """Prepare a text task; create it with its tokenizer; the route serves the exact bytes,
    which survive a restart, and the Python client checks them."""
    server = start_server(data_dir=tmp_path / "d")
    task = text_task(tokenizer)
    with httpx.Client(base_url=server.url, timeout=10, headers=ADMIN) as http:
        created = http.post("/api/tasks", content=envelope(task, tokenizer.to_bytes()))
        assert created.status_code == 201, created.text
        got = http.get("/api/tasks/letters/tokenizer")
    assert got.status_code == 200
    assert got.content == tokenizer.to_bytes()
    assert hashlib.sha256(got.content).hexdigest() == task.training.tokenizer_digest
    assert got.headers["X-Disco-Digest"] == tokenizer.digest
    assert got.headers["content-type"].startswith("application/json")
    assert catalog.fetch_tokenizer(task, server.url).digest == tokenizer.digest

    server.stop()
    again = start_server(data_dir=tmp_path / "d")
    with httpx.Client(base_url=again.url, timeout=10) as http:
        assert http.get("/api/tasks/letters/tokenizer").content == tokenizer.to_bytes()
        cached = http.get(
            "/api/tasks/letters/tokenizer", headers={"If-None-Match": f'"{tokenizer.digest}"'}
        )
        assert cached.status_code == 304


def test_creation_refuses_a_text_task_without_its_tokenizer(
    start_server: Any, tokenizer: Tokenizer
) -> None:
    """Prepare bodies missing, mismatching or misplacing the tokenizer; each is refused (422)
    in words, and no task is made."""
    server = start_server()
    task = text_task(tokenizer)
    other = train_tokenizer(["a completely different corpus of words"] * 3, 280)
    bodies = {
        "bare": task.model_dump_json(),
        "other": envelope(task, other.to_bytes()),
        "not-json": json.dumps({"task": task.model_dump(mode="json"), "tokenizer": "{nope"}),
        "object": json.dumps({"task": task.model_dump(mode="json"), "tokenizer": {}}),
    }
    with httpx.Client(base_url=server.url, timeout=10, headers=ADMIN) as http:
        answers = {k: http.post("/api/tasks", content=body) for k, body in bodies.items()}
        assert http.get("/api/tasks/letters").status_code == 404
        tabular = http.post(
            "/api/tasks",
            content=json.dumps({"task": _tabular().model_dump(mode="json"), "tokenizer": "{}"}),
        )
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(bodies, 422)
    assert "send it with its tokenizer" in answers["bare"].json()["error"]
    assert "is not task 'letters'" in answers["other"].json()["error"]
    assert "is not task 'letters'" in answers["not-json"].json()["error"]  # digest first
    assert "JSON string" in answers["object"].json()["error"]
    assert tabular.status_code == 422 and "not a text task" in tabular.json()["error"]


def _tabular() -> Task:
    return parse_task(
        {
            "id": "rows",
            "display": {"title": "Rows"},
            "training": {
                "data_type": "tabular",
                "input_columns": [{"name": "a"}],
                "output_column": "y",
            },
            "model": {
                "input_shape": [1],
                "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
                "loss": "binary_crossentropy",
            },
        }
    )


def test_other_tasks_have_no_tokenizer(start_server: Any, kit: Any) -> None:
    """Prepare a tabular task; its tokenizer and an unknown task's are 404 in words."""
    server = start_server(tasks=(kit.make_task("tiny"),))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        tabular = http.get("/api/tasks/tiny/tokenizer")
        unknown = http.get("/api/tasks/nosuch/tokenizer")
    assert tabular.status_code == 404 and tabular.json()["code"] == "no_tokenizer"
    assert "not a text task" in tabular.json()["error"]
    assert unknown.status_code == 404
    with pytest.raises(TaskError, match="not a text task"):
        catalog.fetch_tokenizer(kit.make_task("tiny"), server.url)


def test_the_builtin_shakespeare_task_is_seeded_with_its_tokenizer(
    start_server: Any, tmp_path: Path
) -> None:
    """Prepare a server seeding the catalog; shakespeare's tokenizer is the package's file."""
    server = start_server(data_dir=tmp_path / "seeded", seed_catalog=True)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        got = http.get("/api/tasks/shakespeare/tokenizer")
    assert got.status_code == 200
    assert got.content == shakespeare_tokenizer().to_bytes()
    assert (
        hashlib.sha256(got.content).hexdigest()
        == catalog.get("shakespeare").training.tokenizer_digest
    )


def test_a_private_instance_serves_the_tokenizer_to_its_invitation_only(
    start_server: Any, tokenizer: Tokenizer, kit: Any
) -> None:
    """Prepare a private server with a text task and another task; the uninvited, and an
    invitation to the other task, are refused; the task's invitation and the admin get it."""
    server = start_server(access="invitation", tasks=(kit.make_task("tiny"),))
    task = text_task(tokenizer)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        made = http.post("/api/tasks", content=envelope(task, tokenizer.to_bytes()), headers=ADMIN)
        assert made.status_code == 201, made.text
        invites = {
            t: http.post(f"/api/tasks/{t}/invitations", headers=ADMIN).json()["token"]
            for t in ("letters", "tiny")
        }
        route = "/api/tasks/letters/tokenizer"
        nobody = http.get(route)
        elsewhere = http.get(route, headers={"Authorization": f"Bearer {invites['tiny']}"})
        invited = http.get(route, headers={"Authorization": f"Bearer {invites['letters']}"})
        admin = http.get(route, headers=ADMIN)
    assert nobody.status_code in (401, 403)
    assert elsewhere.status_code in (401, 403, 404)
    assert invited.status_code == 200 and invited.content == tokenizer.to_bytes()
    assert admin.status_code == 200
    with pytest.raises(ServerError):
        catalog.fetch_tokenizer(task, server.url)


def test_hostile_creation_bodies_are_refused_in_words_not_500(
    start_server: Any, tokenizer: Tokenizer
) -> None:
    """Prepare a tokenizer text with a lone surrogate, deeply nested JSON as the body and as the
    tokenizer, and a model whose vocabulary differs from the tokenizer's; each is a 422 naming
    the problem, and no task is made."""
    server = start_server()
    task = text_task(tokenizer)
    doc = task.model_dump(mode="json")
    deep = "[" * 200_000 + "]" * 200_000
    smaller = arch.gpt(tokenizer.vocab_size - 1, 8, d_model=8, layers=1, heads=2)
    bodies = {
        "surrogate": '{"task": ' + json.dumps(doc) + ', "tokenizer": "\\ud800"}',
        "deep-body": deep,
        "deep-tokenizer": json.dumps({"task": doc, "tokenizer": deep}),
        "vocabulary": json.dumps(
            {
                "task": {**doc, "model": smaller.model_dump(mode="json")},
                "tokenizer": tokenizer.to_bytes().decode("utf-8"),
            }
        ),
    }
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
        answers = {k: http.post("/api/tasks", content=body) for k, body in bodies.items()}
        assert http.get("/api/tasks/letters").status_code == 404
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(bodies, 422)
    assert "not valid Unicode text" in answers["surrogate"].json()["error"]
    assert "nested too deeply" in answers["deep-body"].json()["error"]
    assert "is not task 'letters'" in answers["deep-tokenizer"].json()["error"]
    assert "must be equal" in answers["vocabulary"].json()["error"]
