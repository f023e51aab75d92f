"""What every `disco` command shares: the console, exit codes, summaries."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = [
    "DEFAULT_SERVER",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_LOST",
    "EXIT_USER_ERROR",
    "EXIT_WAIT_EXPIRED",
    "console",
    "plural",
    "print_json",
    "report",
]

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_WAIT_EXPIRED = 3
EXIT_SESSION_LOST = 4
EXIT_INTERRUPTED = 130

DEFAULT_SERVER = "http://127.0.0.1:8000"

console = Console(stderr=True)
"""Progress, messages and errors (stderr; rich looks up `sys.stderr` at each write)."""


def plural(n: int, noun: str) -> str:
    """``1 round``, ``2 rounds``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def report(summary: dict[str, Any], as_json: bool) -> None:
    """The summary as one JSON line on stdout, or aligned `key: value` lines on stderr."""
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        console.print(f"  {key:>20}: {text}", highlight=False, markup=False, soft_wrap=True)
