"""The `disco` command: serve, invite, publish, tasks, train, simulate, generate, data, demo.

    output.py    the console, exit codes, summaries
    progress.py  progress bars, or plain log lines when not on a terminal
    commands.py  serve, tasks, data samples, simulate, demo
    train.py     train: alone or in a session, and how it stops
    generate.py  generate: a text task's model continues a prompt
    invite.py    invite: invitations to a task on a private server
    publish.py   publish: a task from its files onto a server; data tokenizer: a text task's own
    parser.py    every option with its help, defaults and examples

Exit codes: 0 done; 2 a user error (one line says what was wrong); 3 `disco train` stopped
waiting for the others and saved the model it kept; 4 its session ended early on an error and it
saved the model it kept; 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape

from disco.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SESSION_LOST,
    EXIT_USER_ERROR,
    EXIT_WAIT_EXPIRED,
    console,
)
from disco.cli.parser import build_parser
from disco.cli.progress import Bars, participant_log, progress_bars
from disco.errors import DiscoError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SESSION_LOST",
    "EXIT_USER_ERROR",
    "EXIT_WAIT_EXPIRED",
    "Bars",
    "build_parser",
    "main",
    "participant_log",
    "progress_bars",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; a user error prints one clear line and returns 2 (see the exit codes)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except DiscoError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
