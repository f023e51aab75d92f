"""`disco invite`: make, list and revoke the invitations to a task on a (private) server.

Every action needs the server's admin token (``--admin-token`` or ``DISCO_ADMIN_TOKEN``). A new
invitation's join link and token are printed once; the server keeps only a hash of the secret.
"""

from __future__ import annotations

import argparse
import os
import re

from rich.table import Table

from disco.cli.output import EXIT_OK, console, print_json
from disco.errors import ConfigError, ServerError

__all__ = ["cmd_invite", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``12h``, ``7d`` or a bare number of seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write e.g. 7d, 12h, 30m or 3600 (seconds)"
        )
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def cmd_invite(args: argparse.Namespace) -> int:
    from disco.client.access import ServerAccess, refusal

    token = args.admin_token or os.environ.get("DISCO_ADMIN_TOKEN")
    if not token:
        raise ConfigError(
            "invitations are the admin's: give the server's admin token with --admin-token "
            "or DISCO_ADMIN_TOKEN"
        )
    if not args.revoke and not args.task:
        raise ConfigError("say which task with --task (or revoke an invitation with --revoke ID)")
    access = ServerAccess.from_env(args.server, None, args.ca_file)
    headers = {"Authorization": f"Bearer {token}"}
    with access.http(timeout=30) as http:
        if args.revoke:
            resp = http.delete(f"/api/invitations/{args.revoke}", headers=headers)
        elif args.list:
            resp = http.get(f"/api/tasks/{args.task}/invitations", headers=headers)
        else:
            body = {"label": args.label, "expires_in_s": args.expires}
            resp = http.post(f"/api/tasks/{args.task}/invitations", json=body, headers=headers)
    if resp.status_code not in (200, 201):
        raise ServerError(f"{access.url}: {refusal(resp)}")
    answer = resp.json()
    if args.json:
        print_json({"invitations": answer} if args.list else answer)
    elif args.list:
        table = Table("id", "label", "created", "expires", "uses", "state")
        for inv in answer:
            table.add_row(
                inv["id"],
                inv["label"],
                inv["created_at"],
                inv["expires_at"],
                str(inv["uses"]),
                inv["state"],
            )
        console.print(table)
    elif args.revoke:
        console.print(f"invitation {answer['id']} to task {answer['task_id']} is revoked")
    else:
        console.print(
            f"invitation {answer['id']} to task {answer['task_id']} "
            f"(expires {answer['expires_at']}). Send the person this link; it is shown only "
            "once:",
            highlight=False,
        )
        print(answer["link"])
        console.print(
            f"A Python participant uses: disco train --task {answer['task_id']} "
            f"--server {access.url} --invitation '<the link or token>'",
            highlight=False,
            markup=False,
        )
    return EXIT_OK
