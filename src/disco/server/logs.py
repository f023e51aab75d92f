"""How the server logs: plain text lines, or one JSON object a line (``log_format = "json"``).

A JSON line holds ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, and
``exception`` (the traceback) when there is one; an access-log line of uvicorn adds ``client``,
``method``, ``path``, ``http_version`` and ``status``. In JSON mode every logger writes through
one handler on standard error, uvicorn's own loggers (its access log included) too, so that a log
collector reads nothing but JSON lines. `setup_logging` is what `run_server` calls.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from disco.server.config import ServerConfig

__all__ = ["TEXT_FORMAT", "JsonFormatter", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The line of disco's own loggers in text mode (uvicorn keeps its own lines)."""

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            entry |= dict(zip(_ACCESS_FIELDS, args, strict=True))  # what the message says
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup_logging` installs (a second call replaces it, never stacks one)."""


def setup_logging(config: ServerConfig, stream: TextIO | None = None) -> dict[str, Any]:
    """Configure the process's logging for `config`; return the `uvicorn.Config` options that
    go with it (`stream`: where JSON lines go, standard error by default).

    Text: disco's loggers write ``TEXT_FORMAT`` lines (unless logging is set up already) and
    uvicorn keeps its colored lines. JSON: the root logger gets the one JSON handler, and
    uvicorn's loggers hand their records to it instead of configuring their own.
    """
    logging.getLogger("disco").setLevel(config.log_level.upper())
    root = logging.getLogger()
    if config.log_format == "text":
        if not root.handlers:
            logging.basicConfig(format=TEXT_FORMAT)
        return {}
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    handler = _JsonHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return {"log_config": None}
