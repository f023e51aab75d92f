"""The JSON layout of the committed vector files: readable diffs, exact numbers."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dump"]


def dump(value: Any, depth: int = 0) -> str:
    """JSON text with maps and arrays of maps spread over lines, other arrays kept on one."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {dump(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [f"{inner}{dump(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
