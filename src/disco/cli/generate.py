"""`disco generate`: a text task's trained model continues a prompt, streamed to the terminal."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from disco.cli.output import EXIT_OK
from disco.errors import ConfigError, DiscoError, TaskError

__all__ = ["cmd_generate"]


def _unescape(text: str) -> str:
    """A stop string as typed: ``\\n`` is a line break, ``\\t`` a tab, ``\\\\`` a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t"}.get(m[1], "\\"), text)


def cmd_generate(args: argparse.Namespace) -> int:
    from disco import catalog
    from disco.client.access import ServerAccess
    from disco.models import build_torch_model
    from disco.text import generate, model_logits
    from disco.weights import Weights

    if args.server is None and (args.invitation or args.ca_file):
        raise ConfigError("--invitation and --ca-file go with --server")
    access = (
        ServerAccess.from_env(args.server, args.invitation, args.ca_file) if args.server else None
    )
    if access is None and args.task not in catalog.ids():
        raise TaskError(
            f"unknown task {args.task!r}: not a built-in task ({', '.join(catalog.ids())}); a "
            "server's task needs --server URL"
        )
    task = catalog.fetch(args.task, server=access)
    if task.training.data_type != "text":
        raise TaskError(f"task {task.id!r} is not a text task: only a language model generates")
    tokenizer = catalog.fetch_tokenizer(task, server=access)
    path = Path(args.model)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such model file (a .safetensors file `disco train --save` wrote)"
        )
    model = build_torch_model(task.model)
    try:  # names and shapes checked against the task's model
        model.set_weights(Weights.load(path))
    except DiscoError as exc:
        raise ConfigError(f"{path} is not a model of task {task.id!r}: {exc}") from exc
    pieces = generate(
        model_logits(model),
        tokenizer,
        args.prompt,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        stop=[_unescape(s) for s in args.stop or ()],
        seed=args.seed,
        context=task.training.max_sequence_length or 1,
    )
    out = sys.stdout
    if not args.no_prompt:
        out.write(args.prompt)
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    return EXIT_OK
