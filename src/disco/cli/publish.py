"""`disco publish` (a task kept as files, created on a server) and `disco data tokenizer` (the
byte-level BPE tokenizer a text task of one's own needs, learnt from text files).

A text task of one's own, from the command line::

    disco data tokenizer --text letters/ --vocab-size 2048 --out tokenizer.json
    disco publish task.json --tokenizer tokenizer.json --server URL --admin-token SECRET

where task.json is the task's document (`disco.Task`; its JSON Schema at ``GET
/api/schema/task``; `disco tasks --json` prints the built-in ones to start from) and may leave
``training.tokenizer_digest`` out: `disco publish` names the tokenizer it is given
(`disco.client.publish.read_task`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disco.cli.output import EXIT_OK, console, print_json
from disco.errors import ConfigError

__all__ = [
    "add_data_tokenizer",
    "add_publish",
    "admin_options",
    "cmd_data_tokenizer",
    "cmd_publish",
]

Command = Callable[..., argparse.ArgumentParser]


def admin_options(s: argparse.ArgumentParser) -> None:
    """How the admin reaches a server (`disco invite`, `disco publish`): the admin token and a
    CA bundle for an https server."""
    s.add_argument("--admin-token", help="the server's admin token (default: $DISCO_ADMIN_TOKEN)")
    s.add_argument(
        "--ca-file",
        metavar="PEM",
        help="with an https:// server: trust the certificate authorities in this PEM file "
        "(default: $DISCO_CA_FILE)",
    )


def add_publish(sub: Any, command: Command, examples: Callable[..., str]) -> None:
    """The `disco publish` parser."""
    s = command(
        sub,
        "publish",
        "create a task on a server from its files (task.json, and a text task's tokenizer)",
        examples(
            "disco publish my-task/ --server http://127.0.0.1:8000 --admin-token SECRET",
            "disco publish clinic.json --server https://disco.example.org",
            "disco publish letters.json --tokenizer tokenizer.json --server http://127.0.0.1:8000",
            notes="PATH is a task folder (task.json, plus tokenizer.json for a text task) or a\n"
            "task's JSON file. The server starts the task with its initial model; participants\n"
            "then find it in `disco tasks --server URL` and on the web page.",
        ),
    )
    s.add_argument("path", metavar="PATH", help="the task folder, or the task's JSON file")
    s.add_argument("--server", required=True, help="the server's URL")
    s.add_argument(
        "--tokenizer",
        metavar="FILE",
        help="a text task's tokenizer.json (default: the one in the task folder); a task that "
        "names none yet gets this one's digest and vocabulary size",
    )
    admin_options(s)
    s.add_argument("--json", action="store_true", help="print the created task as JSON")
    s.set_defaults(fn=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from disco.client.publish import admin_access, publish, read_task

    task, tokenizer = read_task(args.path, args.tokenizer)
    access = admin_access(args.server, args.ca_file)
    token = args.admin_token or os.environ.get("DISCO_ADMIN_TOKEN") or None
    created = publish(access, task, tokenizer=tokenizer, admin_token=token)
    if args.json:
        print_json(created.model_dump(mode="json"))
        return EXIT_OK
    tr = created.training
    kind = f"{tr.data_type}, {tr.scheme}, {tr.rounds} rounds"
    console.print(
        f"created task {created.id!r} ({created.display.title}; {kind}) on {access.url}",
        highlight=False,
        markup=False,
    )
    console.print(
        f"Participants join with: disco train --task {created.id} --server {access.url} "
        "--data FOLDER, or on the web page.",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


def add_data_tokenizer(dsub: Any, command: Command, examples: Callable[..., str]) -> None:
    """The `disco data tokenizer` parser."""
    d = command(
        dsub,
        "tokenizer",
        "learn a text task's tokenizer (byte-level BPE) from text files",
        examples(
            "disco data tokenizer --text letters/ --vocab-size 2048 --out tokenizer.json",
            "disco data tokenizer --text a.txt b.txt --vocab-size 4096 --out tok.json",
            notes="The files are read as participants' files are (docs/text.md: UTF-8, .txt in\n"
            "folders, size limits). The same texts always give the same file. It prints the\n"
            "file's SHA-256: the task's training.tokenizer_digest (`disco publish` fills it in).",
        ),
    )
    d.add_argument(
        "--text", nargs="+", required=True, metavar="PATH", help="text files or folders of them"
    )
    d.add_argument(
        "--vocab-size",
        type=int,
        default=2048,
        help="tokens in all: the 256 bytes, the end-of-text token and the merges learnt "
        "(default: 2048)",
    )
    d.add_argument(
        "--min-frequency",
        type=int,
        default=2,
        help="a pair is merged only if it occurs at least this often (default: 2)",
    )
    d.add_argument("--out", required=True, metavar="FILE", help="where to write tokenizer.json")
    d.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    d.add_argument("--json", action="store_true", help="print one JSON summary line")
    d.set_defaults(fn=cmd_data_tokenizer)


def cmd_data_tokenizer(args: argparse.Namespace) -> int:
    from disco.data.text import iter_texts
    from disco.text.tokenizer import train_tokenizer

    out = Path(args.out)
    if out.is_dir():
        example = out / "tokenizer.json"
        raise ConfigError(f"{out} is a folder: give the file to write, e.g. {example}")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists: choose another --out, or add --overwrite")
    names: list[str] = []
    chars = 0

    def texts() -> Any:
        nonlocal chars
        for name, text in iter_texts(args.text):
            names.append(name)
            chars += len(text)
            yield text

    tokenizer = train_tokenizer(texts(), args.vocab_size, min_frequency=args.min_frequency)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(out)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    summary = {
        "out": str(out),
        "vocab_size": tokenizer.vocab_size,
        "tokenizer_digest": tokenizer.digest,
        "documents": len(names),
        "characters": chars,
    }
    if args.json:
        print_json(summary)
        return EXIT_OK
    fewer = (
        f" (asked for {args.vocab_size}: no other pair occurs {args.min_frequency} times)"
        if tokenizer.vocab_size < args.vocab_size
        else ""
    )
    console.print(
        f"wrote {out}: byte-level BPE of {tokenizer.vocab_size} tokens{fewer}, learnt from "
        f"{len(names)} document(s), {chars:,} characters",
        highlight=False,
        markup=False,
    )
    console.print(
        f'SHA-256 {tokenizer.digest}: a text task names it as "tokenizer_digest", with '
        f'"vocab_size": {tokenizer.vocab_size}',
        highlight=False,
        markup=False,
    )
    return EXIT_OK
