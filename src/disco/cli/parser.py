"""The argument parser of the `disco` command: every option with its help, defaults, examples."""

from __future__ import annotations

import argparse
import math
from typing import Any, get_args

from disco.aggregation_config import Aggregation
from disco.cli.commands import cmd_data_samples, cmd_demo, cmd_serve, cmd_simulate, cmd_tasks
from disco.cli.generate import cmd_generate
from disco.cli.invite import cmd_invite, parse_duration
from disco.cli.publish import add_data_tokenizer, add_publish, admin_options
from disco.cli.train import cmd_train

__all__ = ["HelpFormatter", "build_parser"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs; shows defaults that say something.

    ``(default: …)`` is added to an option's help unless the default is None, False or empty,
    or the help already names it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
        ):
            return text
        return text + " (default: %(default)s)"


def _examples(*lines: str, notes: str = "") -> str:
    text = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    return text + (f"\n\n{notes}" if notes else "")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


TRAIN_NOTES = """\
exit codes:
  0    done
  2    a user error (unknown task, bad data, bad option): the message says what to change
  3    stopped waiting for the others (--max-wait, or the task's wait_for_others_s): the model
       kept is saved (--save, or ./TASK-model.safetensors) and still evaluated with --test
  4    the session ended early (server lost for good, update refused) after training began:
       the model kept is saved the same way
  130  interrupted (Ctrl+C)

In a pipe or a log file (or with --json), progress is printed as plain timestamped lines on
stderr: joins, each of your rounds, and every 30 s while waiting, how many participants are
missing. Rows of a CSV file with a bad cell are skipped and reported; the rest is used."""

SIMULATE_NOTES = """\
attacks (--attack KIND:AMOUNT[:NAME=VALUE]; Δ is an attacker's honest update):
  sign_flip   sends -k·Δ (k=1)
  scale       sends k·Δ (k=10)
  gaussian    sends N(0, sigma²) noise as its update (sigma=1)
  label_flip  trains on its data with labels y -> C-1-y (classification tasks)
  alie        "a little is enough" (Baruch et al. 2019): the attackers collude and send
              mean - z·std of their own honest updates; z from the numbers of participants and
              attackers (the paper's z_max) unless given, e.g. alie:0.2:z=1.5
  ipm         inner-product manipulation (Xie et al. 2020): the attackers collude and send
              -eps·mean of their own honest updates (eps=0.1)
  lie         sends -k·Δ (k=1) claiming 2^40 samples (the mean rule caps any one share)
AMOUNT 0.2 with 10 participants: attacker-9 and attacker-10; AMOUNT 3: the last three.
The same seed gives the same run, attacks included."""


def _access_options(s: argparse.ArgumentParser) -> None:
    """How to reach a private or TLS server: an invitation and a CA bundle (with --server)."""
    s.add_argument(
        "--invitation",
        metavar="TOKEN_OR_LINK",
        help="with --server: your invitation to a private server, the token (dinv.…) or the "
        "join link you received (default: $DISCO_INVITATION)",
    )
    s.add_argument(
        "--ca-file",
        metavar="PEM",
        help="with an https:// --server: trust the certificate authorities in this PEM file "
        "instead of the system's (default: $DISCO_CA_FILE)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `disco` command."""
    p = argparse.ArgumentParser(
        prog="disco",
        description="Distributed collaborative learning: train one model together without "
        "sharing data.",
        formatter_class=HelpFormatter,
        epilog=_examples(
            "disco tasks",
            "disco demo",
            "disco serve --port 8000",
            "disco data samples --task mnist --clients 3 --out samples",
            "disco train --task mnist --data samples/client_1 --server http://127.0.0.1:8000",
            notes="`disco COMMAND --help` shows a command's options and examples.\n"
            "Exit codes: 0 done, 2 user error, 3 `disco train` stopped waiting for the others\n"
            "(the model kept is saved), 4 its session ended early (the model kept is saved),\n"
            "130 interrupted.",
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    def command(
        parent: Any, name: str, help: str, epilog: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(
            name,
            help=help,
            description=description or help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=HelpFormatter,
        )
        return parser

    s = command(
        sub,
        "serve",
        "run a server (REST + WebSocket + the web app, state in a data folder)",
        _examples(
            "disco serve",
            "disco serve --port 8000 --admin-token SECRET",
            "disco serve --config server.toml",
            "disco serve --log-format json --forwarded-allow-ips 10.0.0.5   # behind a proxy",
            "disco serve --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem",
            notes="Settings come from defaults, then --config, then DISCO_* environment variables\n"
            "(DISCO_PORT, DISCO_DATA_DIR, DISCO_ADMIN_TOKEN, …), then these flags.\n"
            "GET /metrics answers Prometheus metrics (with --access invitation: admin token).\n"
            "On SIGTERM (or Ctrl-C) a round being combined is finished and saved, participants\n"
            "are told the server is restarting, and it exits with 0; restarted on the same\n"
            "--data-dir, it resumes that round and the participants go on in it.",
        ),
    )
    s.add_argument("--host", help="interface to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, help="TCP port; 0 picks a free one (default: 8000)")
    s.add_argument(
        "--data-dir", help="folder for the database and model files (default: disco-data)"
    )
    s.add_argument(
        "--admin-token", help="token required to create tasks (default: creating tasks is off)"
    )
    s.add_argument(
        "--access",
        choices=("public", "invitation"),
        help="who may list and join tasks: anyone (public, the default) or only people invited "
        "with `disco invite` (invitation: a private instance; needs --admin-token)",
    )
    s.add_argument("--config", help="TOML or JSON config file with any server setting")
    s.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve https and wss with this certificate (PEM, with its chain; needs --tls-key; "
        "default: $DISCO_TLS_CERT, else plain http)",
    )
    s.add_argument(
        "--tls-key",
        metavar="PEM",
        help="the certificate's private key (PEM, unencrypted; default: $DISCO_TLS_KEY)",
    )
    # -- operations (docs/operations.md) --
    s.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as plain text, or one JSON object a line on stderr (time, level, logger, "
        "message, exception), uvicorn's access log included (default: text)",
    )
    s.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="behind a reverse proxy: trust its X-Forwarded-For/-Proto headers, from these "
        "addresses only: IPs or networks, comma-separated (10.0.0.1,10.0.0.2 or 10.0.0.0/8), or "
        "'*' for any (default: the headers are ignored)",
    )
    s.set_defaults(fn=cmd_serve)

    s = command(
        sub,
        "invite",
        "make, list or revoke invitations to a task (private servers; needs the admin token)",
        _examples(
            "disco invite --server https://disco.example.org --task mnist --label 'ward 4'",
            "disco invite --server https://disco.example.org --task mnist --list",
            "disco invite --server https://disco.example.org --revoke abcdefgh23",
            notes="A new invitation prints a join link once: the person opens it in a browser, or\n"
            "gives it to `disco train --invitation`. The server stores only a hash of it.",
        ),
    )
    s.add_argument("--server", required=True, help="the server's URL")
    s.add_argument("--task", help="the task the invitation lets its holder join")
    s.add_argument("--label", default="", help="who it is for, shown in the list (optional)")
    s.add_argument(
        "--expires",
        type=parse_duration,
        default=7 * 86400.0,
        metavar="DURATION",
        help="how long it is valid: e.g. 12h, 7d, 30d (default: 7d)",
    )
    s.add_argument("--list", action="store_true", help="list the task's invitations instead")
    s.add_argument("--revoke", metavar="ID", help="revoke the invitation with this id instead")
    admin_options(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(fn=cmd_invite)
    add_publish(sub, command, _examples)

    s = command(
        sub,
        "tasks",
        "list tasks (the built-in ones, or a server's with --server)",
        _examples(
            "disco tasks", "disco tasks --server http://127.0.0.1:8000", "disco tasks --json"
        ),
    )
    s.add_argument("--server", help="list this server's tasks instead of the built-in ones")
    _access_options(s)
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.set_defaults(fn=cmd_tasks)

    s = command(
        sub,
        "train",
        "train on local files, alone or joining a server",
        _examples(
            "disco train --task mnist --data samples/client_1 --test samples/test",
            "disco train --task mnist --data samples/client_1 --server http://127.0.0.1:8000",
            "disco train --task clinic --data my.csv --server http://127.0.0.1:8000 --alone",
            "disco train --task mnist --data samples/client_2 --server http://127.0.0.1:8000 \\\n"
            "      --max-wait 120 --save mine.safetensors --json",
            notes=TRAIN_NOTES,
        ),
    )
    s.add_argument("--task", required=True, help="task id (`disco tasks` lists them)")
    s.add_argument(
        "--data", required=True, help="your labelled data: a CSV file, or a folder of images"
    )
    s.add_argument(
        "--server",
        help="server URL: fetch the task from it and train with the others there "
        "(default: train alone on a built-in task)",
    )
    s.add_argument(
        "--alone",
        action="store_true",
        help="with --server: use the server's task but train alone; nothing is sent to it",
    )
    _access_options(s)
    s.add_argument(
        "--max-wait",
        type=_positive_seconds,
        metavar="SECONDS",
        help="after your update, wait at most this long for the others, then stop and keep "
        "the model (default: the task's wait_for_others_s, 600 unless it sets another)",
    )
    s.add_argument(
        "--rounds", type=int, help="how many rounds you take part in (default: the task's)"
    )
    s.add_argument(
        "--ice-host",
        action="append",
        metavar="ADDRESS",
        help="decentralized tasks: offer the other peers only this local address (repeatable; "
        "e.g. 127.0.0.1 when every peer runs on this machine; default: every interface's "
        "address except loopback)",
    )
    s.add_argument(
        "--stun",
        action="append",
        metavar="URL",
        help="decentralized tasks: a STUN or TURN server for peers behind NAT, e.g. "
        "stun:stun.example.org:3478 (repeatable; default: none, peers connect directly)",
    )
    s.add_argument("--name", default="", help="your name, shown to the others on the server")
    s.add_argument(
        "--seed", type=int, default=0, help="seed of the validation split and data order"
    )
    s.add_argument("--test", help="labelled data to evaluate the final model on")
    s.add_argument("--save", help="write the final weights to this .safetensors file")
    s.add_argument(
        "--json", action="store_true", help="print one JSON summary line on stdout at the end"
    )
    s.set_defaults(fn=cmd_train)

    s = command(
        sub,
        "simulate",
        "federated training with N simulated participants on one machine",
        _examples(
            "disco simulate --task mnist --clients 5 --rounds 5 --json",
            "disco simulate --task breast_cancer --clients 4 --rounds 10 --partition dirichlet:0.5",
            "disco simulate --task titanic --server http://127.0.0.1:8000",
            "disco simulate --task mnist --clients 10 --rounds 5 --attack sign_flip:0.2 "
            "--aggregation median --json",
            "disco simulate --task mnist --clients 10 --attack scale:2:k=50 --aggregation krum:f=2",
            "disco simulate --task mnist --clients 10 --attack alie:0.3 --aggregation trimmed_mean",
            "disco simulate --task mnist --clients 5 --rounds 3 --scheme decentralized",
            "disco simulate --task mnist --clients 4 --rounds 3 --secure-aggregation",
            "disco simulate --task mnist --clients 5 --secure-aggregation clip=0.5,threshold=4",
            "disco simulate --task shakespeare --clients 3 --save shakespeare.safetensors --json",
            notes=SIMULATE_NOTES,
        ),
    )
    s.add_argument("--task", required=True, help="built-in task id (`disco tasks` lists them)")
    s.add_argument("--clients", type=int, default=3, help="number of participants")
    s.add_argument(
        "--rounds",
        type=int,
        help="number of rounds (default: the task's, its epochs over its epochs per round, times "
        "its rounds per epoch)",
    )
    s.add_argument(
        "--partition",
        default="iid",
        help="how the data is split: iid | dirichlet:ALPHA (smaller: more uneven) | shards:K",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the split, weights and training")
    s.add_argument(
        "--epochs-per-round",
        type=_at_least_one,
        help="local epochs between two rounds (default: the task's)",
    )
    s.add_argument(
        "--rounds-per-epoch",
        type=_at_least_one,
        help="rounds into which each local epoch is cut, combining the models that many times "
        "an epoch (default: the task's)",
    )
    s.add_argument(
        "--attack",
        metavar="KIND:AMOUNT[:NAME=VALUE]",
        help="the last participants attack (named attacker-I): KIND is one of the attacks below; "
        "AMOUNT below 1 is a share of the participants (rounded half up, at least one), a whole "
        "number a count; NAME=VALUE changes the attack's setting (default: no attack)",
    )
    s.add_argument(
        "--aggregation",
        metavar="RULE[:NAME=VALUE,...]",
        help=f"how the server combines the updates: {', '.join(get_args(Aggregation))}, with "
        "settings, e.g. krum:f=2 or trimmed_mean:beta=0.2 (default: the task's rule)",
    )
    s.add_argument(
        "--secure-aggregation",
        nargs="?",
        const="",
        metavar="NAME=VALUE,...",
        help="the server sees only the sum of each round's updates, not one of them "
        "(docs/secure_aggregation.md); alone for the defaults, or with settings: clip (every "
        "value of a change clamped to [-clip, clip], 1.0), weight_cap (the most samples one "
        "participant counts for, 1024), threshold (participants needed to unmask, automatic: a "
        "strict majority), e.g. --secure-aggregation clip=0.5,weight_cap=100. Needs the mean "
        "rule, the federated scheme and at least 3 clients (default: off)",
    )
    s.add_argument(
        "--scheme",
        choices=("federated", "decentralized"),
        default="federated",
        help="federated: the server combines the updates; decentralized: the participants are "
        "peers that send their updates to each other and combine them themselves",
    )
    s.add_argument(
        "--transport",
        choices=("webrtc", "memory"),
        default="webrtc",
        help="decentralized: how peers reach each other, WebRTC data channels on loopback or "
        "in-process channels (many peers on one machine)",
    )
    s.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        help="processes to spread the participants over, one PyTorch thread each (default: 1, "
        "all in this process; at most --clients; the same model as 1 on one thread)",
    )
    s.add_argument("--server", help="use this running server instead of starting one")
    _access_options(s)
    s.add_argument(
        "--save", metavar="FILE", help="save the final global model (.safetensors) to FILE"
    )
    s.add_argument("--json", action="store_true", help="print one JSON summary line")
    s.set_defaults(fn=cmd_simulate)

    s = command(
        sub,
        "data",
        "data utilities",
        _examples("disco data samples --task mnist --clients 3 --out samples"),
    )
    dsub = s.add_subparsers(dest="data_command", required=True, metavar="ACTION", help="action")
    d = command(
        dsub,
        "samples",
        "write real sample data as files, one folder per participant plus a test folder",
        _examples(
            "disco data samples --task mnist --clients 3 --out samples",
            "disco data samples --task titanic --clients 2 --out titanic --partition dirichlet:0.3",
            notes="It prints the folders written, the samples per label, and what to run next.",
        ),
    )
    d.add_argument("--task", required=True, help="built-in task id (`disco tasks` lists them)")
    d.add_argument("--clients", type=int, default=3, help="number of participant folders")
    d.add_argument("--out", required=True, help="folder to write into (must be empty)")
    d.add_argument(
        "--partition", default="iid", help="how the data is split: iid | dirichlet:ALPHA | shards:K"
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the split")
    d.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what an earlier run wrote in --out (nothing else is touched)",
    )
    d.set_defaults(fn=cmd_data_samples)
    add_data_tokenizer(dsub, command, _examples)

    s = command(
        sub,
        "generate",
        "continue a prompt with a text task's trained model, streamed as it is written",
        _examples(
            'disco generate --task shakespeare --model shakespeare.safetensors --prompt "ROMEO."',
            "disco generate --task shakespeare --model m.safetensors --prompt 'To be' "
            "--temperature 0 --max-tokens 50",
            "disco generate --task my-text --server http://127.0.0.1:8000 --model m.safetensors "
            "--prompt 'Dear' --stop '\\n\\n'",
            notes="The model is a .safetensors file of the task's model (`disco train --save`, or "
            "the web app's download).\nThe same seed, model and prompt give the same text; "
            "--temperature 0 always takes the likeliest token.",
        ),
    )
    s.add_argument("--task", required=True, help="the text task (built in, or the server's)")
    s.add_argument(
        "--model", required=True, metavar="FILE", help="the trained model (.safetensors)"
    )
    s.add_argument("--prompt", default="", help="the text to continue (empty: the model begins)")
    s.add_argument("--max-tokens", type=int, default=200, help="most tokens to generate")
    s.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="randomness: 0 always takes the likeliest token, 1 samples the model as it is",
    )
    s.add_argument(
        "--top-k", type=int, default=40, help="draw among the K likeliest tokens only (0: all)"
    )
    s.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="stop before this text (repeatable; \\n is a line break)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    s.add_argument(
        "--no-prompt", action="store_true", help="print only the generated text, not the prompt"
    )
    s.add_argument("--server", help="the server whose task this is (its tokenizer comes too)")
    _access_options(s)
    s.set_defaults(fn=cmd_generate)

    s = command(
        sub,
        "demo",
        "a server and 3 participants train on MNIST, then exit",
        _examples("disco demo", "disco demo --rounds 5"),
    )
    s.add_argument("--rounds", type=int, default=3, help="number of federated rounds")
    s.set_defaults(fn=cmd_demo)
    return p
