"""JSON-lines logs: the formatter, the setup, and a real `disco serve --log-format json`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from disco.cli.parser import build_parser
from disco.server import ServerConfig
from disco.server.logs import UVICORN_LOGGERS, setup_logging

pytestmark = pytest.mark.timeout(90)

KEYS = {"time", "level", "logger", "message"}


def _entries(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object with at least `KEYS` and a UTC ISO 8601 time."""
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # fails the test on a line that is not JSON
        assert isinstance(entry, dict) and KEYS <= entry.keys(), line
        assert entry["time"].endswith("Z"), line
        when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        assert when.utcoffset() is not None and when.tzinfo == UTC
        entries.append(entry)
    return entries


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root, disco and uvicorn loggers back as they were after the test."""
    loggers = [logging.getLogger(name) for name in ("", "disco", *UVICORN_LOGGERS)]
    states = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, (handlers, propagate, level) in zip(loggers, states, strict=True):
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_the_exception(
    restore_logging: None,
) -> None:
    """A disco record with an exception and a uvicorn access record become one JSON line each."""
    stream = io.StringIO()
    options = setup_logging(ServerConfig.load(env={}, log_format="json"), stream=stream)
    setup_logging(ServerConfig.load(env={}, log_format="json"), stream=stream)  # not twice
    assert options == {"log_config": None}  # uvicorn leaves the loggers to this setup
    try:
        raise ValueError("bad value\non two lines")
    except ValueError:
        logging.getLogger("disco.server").exception("round %d failed", 3)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)  # as uvicorn sets it from log_level
    access.info('%s - "%s %s HTTP/%s" %d', "10.1.2.3:5000", "GET", "/api/health", "1.1", 200)
    logging.getLogger("disco.server").debug("below the level: not written")

    first, second = _entries(stream.getvalue())
    assert (first["level"], first["logger"], first["message"]) == (
        "ERROR",
        "disco.server",
        "round 3 failed",
    )
    assert "ValueError: bad value\non two lines" in first["exception"]
    assert "Traceback" in first["exception"]
    assert second["logger"] == "uvicorn.access" and second["level"] == "INFO"
    assert second["message"] == '10.1.2.3:5000 - "GET /api/health HTTP/1.1" 200'
    assert (second["method"], second["path"], second["status"]) == ("GET", "/api/health", 200)
    assert "exception" not in second


def test_text_stays_the_default() -> None:
    """Without a setting, text; DISCO_LOG_FORMAT and --log-format choose JSON."""
    assert ServerConfig.load(env={}).log_format == "text"
    assert ServerConfig.load(env={"DISCO_LOG_FORMAT": "JSON"}).log_format == "json"
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert args.log_format == "json"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-format", "xml"])


def test_disco_serve_writes_only_json_lines(kit: Any, serve_process: Any) -> None:
    """A real server in JSON mode: its startup, app, access and shutdown lines are all JSON."""
    server = serve_process("--log-format", "json", tasks=(kit.make_task(),))
    assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
    assert httpx.get(f"{server.url}/api/tasks/nope", timeout=5).status_code == 404
    assert server.terminate() == 0
    entries = _entries(server.log())
    assert server.stdout.read_text() == ""  # no banner: nothing but the JSON lines
    loggers = {e["logger"] for e in entries}
    assert {"disco.server", "uvicorn.error", "uvicorn.access"} <= loggers
    assert any(e["message"].startswith("serving 1 task(s)") for e in entries)
    paths = {(e["path"], e["status"]) for e in entries if e["logger"] == "uvicorn.access"}
    assert {("/api/health", 200), ("/api/tasks/nope", 404)} <= paths
