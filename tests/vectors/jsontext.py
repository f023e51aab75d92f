"""The JSON layout of the committed vector files: readable diffs, exact numbers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["dump", "write_or_check"]


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


def write_or_check(
    path: Path, render: Callable[[], str], about: str, argv: list[str] | None
) -> int:
    """A vectors generator's command line: rewrite `path` with `render()`, or with ``--check``
    exit 1 if the committed file differs from what the code produces."""
    parser = argparse.ArgumentParser(description=about)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python {sys.argv[0]}", file=sys.stderr)
            return 1
        print(f"{path.name} is up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
