"""Who may do what over REST: the admin token, invitations, and the invitation routes.

Two credentials travel as ``Authorization: Bearer …``: the admin token (creating tasks and
invitations; on a private instance, everything) and an invitation token (``dinv.…``: one task,
on a private instance). On a public instance every task is open to read and join, and only
creation needs the admin token. Refusals are JSON errors with a machine code:
``unauthorized``/``forbidden``/``creation_disabled`` for the admin token,
``invitation_required`` (401: none, or not an invitation) and ``invitation_refused`` (403: wrong,
expired, revoked, another task's) for invitations.

Invitation routes (admin only): ``POST /api/tasks/{id}/invitations`` (the token and join link
are in this answer only), ``GET /api/tasks/{id}/invitations``, ``DELETE /api/invitations/{id}``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from disco.server.invitations import (
    DEFAULT_EXPIRY_S,
    MAX_EXPIRY_S,
    Invitations,
    Refused,
    Required,
    to_json,
)
from disco.server.runtime import ApiError, Runtime
from disco.server.store import InvitationRecord

__all__ = ["authorize_admin", "invitation_routes", "is_admin", "require_task", "visible_tasks"]

log = logging.getLogger("disco.server")

MAX_LABEL = 100


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_admin(rt: Runtime, request: Request) -> bool:
    """Whether the request carries the admin token."""
    token, admin = _bearer(request), rt.config.admin_token
    return (
        token is not None
        and admin is not None
        and hmac.compare_digest(token.encode(), admin.encode())
    )


def authorize_admin(rt: Runtime, request: Request, what: str) -> None:
    """Allow `what` (e.g. "creating a task") only with the admin token: 403
    ``creation_disabled`` when the server has none, 401 ``unauthorized`` without it, 403
    ``forbidden`` when it is wrong; each refusal is counted under its code."""
    try:
        if rt.config.admin_token is None:
            raise ApiError(
                403,
                "creation_disabled",
                f"{what} is disabled on this server; its operator can enable it with an admin "
                "token (DISCO_ADMIN_TOKEN)",
            )
        if _bearer(request) is None:
            raise ApiError(
                401,
                "unauthorized",
                f"{what} needs the header 'Authorization: Bearer <admin token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not is_admin(rt, request):
            raise ApiError(403, "forbidden", "the admin token is wrong")
    except ApiError as exc:
        rt.metrics.refusal(exc.code)
        raise


def _invitations(rt: Runtime) -> Invitations:
    assert rt.invitations is not None, "the runtime is not open"
    return rt.invitations


def _check(rt: Runtime, token: str | None, task_id: str | None) -> InvitationRecord:
    """The invitation `token` is, for `task_id`; the REST refusal otherwise (counted)."""
    try:
        return _invitations(rt).check(token, task_id)
    except Required as exc:
        rt.metrics.refusal("invitation")
        raise ApiError(
            401,
            "invitation_required",
            f"{exc}; open the invitation link you received, or ask the server's operator for one",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    except Refused as exc:
        rt.metrics.refusal("invitation")
        raise ApiError(403, "invitation_refused", str(exc)) from exc


def require_task(rt: Runtime, request: Request, task_id: str) -> None:
    """Let the request read task `task_id` (public instance, admin, or its invitation)."""
    if rt.config.access == "public" or is_admin(rt, request):
        return
    # first the invitation: to someone not invited, a private instance does not even say
    # whether a task exists (an invitation names an existing task, so a valid one is for it)
    _check(rt, _bearer(request), task_id)


def visible_tasks(rt: Runtime, request: Request) -> list[str]:
    """The ids of the tasks this request may list: all, or only its invitation's."""
    if rt.config.access == "public" or is_admin(rt, request):
        return list(rt.tasks)
    record = _check(rt, _bearer(request), None)
    return [record.task_id] if record.task_id in rt.tasks else []


def invitation_routes(rt: Runtime) -> APIRouter:
    """The admin's invitation routes."""
    router = APIRouter()

    @router.post("/api/tasks/{task_id}/invitations", status_code=201)
    async def create(task_id: str, request: Request) -> JSONResponse:
        """Make an invitation to task `task_id`: ``{"label", "expires_in_s"}``, both optional."""
        authorize_admin(rt, request, "making invitations")
        rt.session(task_id)
        label, expires_in_s = _options(await request.body())
        record, token = await asyncio.to_thread(
            _invitations(rt).create, task_id, label=label, expires_in_s=expires_in_s
        )
        log.info("invitation %s made for task %s (%s)", record.id, task_id, label or "no label")
        base = str(request.base_url).rstrip("/")
        body = {
            **to_json(record, _invitations(rt).clock()),
            "token": token,
            "link": f"{base}/#/join/{task_id}?invitation={token}",
        }
        return JSONResponse(body, status_code=201)

    @router.get("/api/tasks/{task_id}/invitations")
    async def listing(task_id: str, request: Request) -> list[dict[str, Any]]:
        """Every invitation to task `task_id`, oldest first (without their tokens)."""
        authorize_admin(rt, request, "listing invitations")
        rt.session(task_id)
        now = _invitations(rt).clock()
        return [to_json(r, now) for r in _invitations(rt).of_task(task_id)]

    @router.delete("/api/invitations/{invitation_id}")
    async def revoke(invitation_id: str, request: Request) -> dict[str, Any]:
        """Revoke an invitation: every later use of it is refused."""
        authorize_admin(rt, request, "revoking invitations")
        try:
            record = await asyncio.to_thread(_invitations(rt).revoke, invitation_id)
        except KeyError:
            raise ApiError(
                404, "unknown_invitation", f"there is no invitation {invitation_id!r}"
            ) from None
        log.info("invitation %s to task %s revoked", record.id, record.task_id)
        text = "the invitation you joined with was revoked; ask for a new one"
        holders = [c for c in rt.connections if getattr(c, "invitation", None) == record.id]
        await asyncio.gather(
            *(
                c.refuse("invitation", "forbidden", text, (4403, "invitation revoked"))
                for c in holders
            )
        )
        return to_json(record, _invitations(rt).clock())

    return router


def _options(body: bytes) -> tuple[str, float]:
    """(label, expires_in_s) from a create request's JSON body (may be empty)."""
    import json

    if len(body) > 4096:
        raise ApiError(413, "too_large", "an invitation request is a small JSON object")
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"label", "expires_in_s"}:
        raise ApiError(
            422, "bad_request", "send a JSON object with at most 'label' and 'expires_in_s'"
        )
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise ApiError(422, "bad_request", f"label must be text of at most {MAX_LABEL} characters")
    expires = data.get("expires_in_s", DEFAULT_EXPIRY_S)
    if (
        isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not 60 <= expires <= MAX_EXPIRY_S
    ):
        raise ApiError(
            422,
            "bad_request",
            f"expires_in_s must be a number of seconds from 60 to {MAX_EXPIRY_S} "
            f"({MAX_EXPIRY_S // 86400} days)",
        )
    return label.strip(), float(expires)
