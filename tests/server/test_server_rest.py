"""REST API on a real server: tasks, models, status, history, task creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from disco.models import init_weights
from disco.weights import Weights

pytestmark = pytest.mark.timeout(30)


def test_read_endpoints(kit: Any, start_server: Any, tmp_path: Path) -> None:
    """Prepare a server with two tasks; list, get, model, status, rounds, schema and 404s."""
    tiny, other = kit.make_task(), kit.make_task("other", min_participants=3)
    server = start_server(tasks=(tiny, other))
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/api/health").json()["status"] == "ok"
        assert [t["id"] for t in http.get("/api/tasks").json()] == ["tiny", "other"]
        assert http.get("/api/tasks/other").json()["training"]["min_participants"] == 3

        missing = http.get("/api/tasks/nope")
        assert missing.status_code == 404 and missing.json()["code"] == "unknown_task"
        assert "nope" in missing.json()["error"]
        assert http.get("/api/tasks/nope/model").status_code == 404
        assert http.get("/api/nothing-here").json()["code"] == "http_404"

        model = http.get("/api/tasks/tiny/model")
        assert model.headers["content-type"] == "application/octet-stream"
        expected = init_weights(tiny.model, seed=0)
        assert model.headers["X-Disco-Round"] == "0"
        assert model.headers["X-Disco-Digest"] == expected.digest()
        (tmp_path / "model.safetensors").write_bytes(model.content)
        assert Weights.load(tmp_path / "model.safetensors") == expected
        etag = model.headers["ETag"]
        assert http.get("/api/tasks/tiny/model", headers={"If-None-Match": etag}).status_code == 304

        status = http.get("/api/tasks/other/status").json()
        assert status["round"] == 0 and status["participants"] == 0
        assert status["min_participants"] == 3 and status["reported"] == 0
        assert status["state"] == "waiting_for_participants" and status["bytes_received"] == 0
        assert http.get("/api/tasks/tiny/rounds").json() == []
        assert "properties" in http.get("/api/schema/task").json()
        assert "Tiny task tiny" in http.get("/").text


def test_create_task(kit: Any, start_server: Any) -> None:
    """Prepare an admin token; creation needs it, validates the body and refuses duplicates."""
    server = start_server()
    body = kit.make_task("made").model_dump(mode="json")
    auth = {"Authorization": f"Bearer {kit.TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=5) as http:
        none = http.post("/api/tasks", json=body)
        assert none.status_code == 401 and "Authorization: Bearer" in none.json()["error"]
        wrong = http.post("/api/tasks", json=body, headers={"Authorization": "Bearer nope-nope"})
        assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"

        bad = {**body, "training": {**body["training"], "min_participants": 0}}
        invalid = http.post("/api/tasks", json=bad, headers=auth)
        assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_task"
        fields = [f["field"] for f in invalid.json()["fields"]]
        assert fields == ["training.min_participants"]
        assert "training.min_participants" in invalid.json()["error"]
        garbage = http.post("/api/tasks", content=b"{not json", headers=auth)
        assert garbage.status_code == 422 and "JSON" in garbage.json()["error"]

        created = http.post("/api/tasks", json=body, headers=auth)
        assert created.status_code == 201 and created.json()["id"] == "made"
        assert http.post("/api/tasks", json=body, headers=auth).status_code == 409
        model = http.get("/api/tasks/made/model")
        task = kit.make_task("made")
        assert model.headers["X-Disco-Digest"] == init_weights(task.model, seed=0).digest()


def test_invalid_model_fields_are_in_plain_words(kit: Any, start_server: Any) -> None:
    """Prepare a task whose model is broken twice; the 422 names each field in plain words."""
    server = start_server()
    body = kit.make_task("broken").model_dump(mode="json")
    body["model"]["layers"][0]["units"] = 0
    body["model"]["layers"].append({"type": "transformer"})
    auth = {"Authorization": f"Bearer {kit.TOKEN}"}

    reply = httpx.post(f"{server.url}/api/tasks", json=body, headers=auth, timeout=5)

    assert reply.status_code == 422
    fields = {f["field"]: f["message"] for f in reply.json()["fields"]}
    assert fields["model.layers.0.units"] == "must be greater than 0"
    unknown = fields[f"model.layers.{len(body['model']['layers']) - 1}"]
    assert unknown.startswith("unknown layer type 'transformer' (known: dense, conv2d")
    assert "Input should" not in reply.json()["error"]


def test_creation_disabled_or_open(kit: Any, start_server: Any, tmp_path: Path) -> None:
    """Prepare servers without a token; creation is refused unless explicitly opened."""
    body = kit.make_task("open").model_dump(mode="json")
    closed = start_server(data_dir=tmp_path / "a", admin_token=None)
    reply = httpx.post(f"{closed.url}/api/tasks", json=body, timeout=5)
    assert reply.status_code == 403 and reply.json()["code"] == "creation_disabled"
    assert httpx.get(f"{closed.url}/api/health").json()["task_creation"] == "disabled"
    opened = start_server(data_dir=tmp_path / "b", admin_token=None, allow_open_creation=True)
    assert httpx.post(f"{opened.url}/api/tasks", json=body, timeout=5).status_code == 201
    assert httpx.get(f"{opened.url}/api/health").json()["task_creation"] == "open"
    guarded = start_server(data_dir=tmp_path / "c", admin_token="s3cret-token")
    assert httpx.get(f"{guarded.url}/api/health").json()["task_creation"] == "token"


def test_catalog_seeding_and_web_dir(start_server: Any, tmp_path: Path) -> None:
    """Prepare seeding and a built web app; tasks appear once and / serves the app."""
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<title>disco web</title>")
    data = tmp_path / "seeded"
    server = start_server(data_dir=data, seed_catalog=True, web_dir=web)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        ids = [t["id"] for t in http.get("/api/tasks").json()]
        assert "titanic" in ids and "mnist" in ids
        assert "disco web" in http.get("/").text
        assert http.get("/api/health").json()["tasks"] == len(ids)
        digest = http.get("/api/tasks/titanic/model").headers["X-Disco-Digest"]
    server.stop()
    again = start_server(data_dir=data, seed_catalog=True, web_dir=tmp_path / "not-built")
    with httpx.Client(base_url=again.url, timeout=10) as http:
        assert [t["id"] for t in http.get("/api/tasks").json()] == ids
        assert http.get("/api/tasks/titanic/model").headers["X-Disco-Digest"] == digest
        assert "web app is not built" in http.get("/").text


def test_task_with_damaged_store_stays_unavailable(
    kit: Any, start_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepare a task whose model files are all damaged; it answers 503, the others serve."""
    data = tmp_path / "damaged"
    server = start_server(tasks=(kit.make_task(), kit.make_task("other")), data_dir=data)
    server.stop()
    for f in (data / "models" / "tiny").iterdir():
        f.write_bytes(b"garbage")
    again = start_server(data_dir=data)
    with httpx.Client(base_url=again.url, timeout=10) as http:
        reply = http.get("/api/tasks/tiny")
        assert reply.status_code == 503 and reply.json()["code"] == "unavailable"
        assert [t["id"] for t in http.get("/api/tasks").json()] == ["other"]
    assert "task tiny cannot be resumed" in caplog.text
