"""The server's configuration: defaults → file (TOML/JSON) → ``DISCO_*`` environment → flags.

Task creation (``POST /api/tasks``) is guarded by ``admin_token``: when it is set, requests must
carry ``Authorization: Bearer <token>``. When it is None, creation is disabled unless
``allow_open_creation`` is True, in which case anyone who can reach the server may create tasks
(meant for a private machine or a trusted network).

With ``access = "invitation"`` the server is a private instance: listing tasks, reading a task and
joining its session need an invitation for that task (`disco.server.invitations`), which only the
admin can make, so ``admin_token`` is required.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from disco.errors import ConfigError
from disco.protocol import DEFAULT_MAX_FRAME
from disco.server.addresses import check_forwarded_allow_ips

__all__ = ["ENV_PREFIX", "LogFormat", "LogLevel", "ServerConfig"]

ENV_PREFIX = "DISCO_"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LogFormat = Literal["text", "json"]


class ServerConfig(BaseModel):
    """Everything `disco serve` needs to know; immutable once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="interface to listen on")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port; 0 picks a free one")
    data_dir: Path = Field(default=Path("disco-data"), description="SQLite file and weight files")
    admin_token: str | None = Field(
        default=None, min_length=8, description="bearer token that allows creating tasks"
    )
    allow_open_creation: bool = Field(
        default=False, description="without admin_token, let anyone create tasks"
    )
    access: Literal["public", "invitation"] = Field(
        default="public",
        description="who may list and join tasks: anyone, or only holders of an invitation "
        "(a private instance; needs admin_token to make invitations)",
    )
    max_frame_bytes: int = Field(
        default=DEFAULT_MAX_FRAME, ge=1024, description="largest WebSocket frame accepted"
    )
    keep_rounds: int = Field(default=3, ge=1, description="global model files kept per task")
    seed_catalog: bool = Field(default=True, description="store missing built-in tasks at start")
    web_dir: Path | None = Field(
        default=None, description="web app served at / (default: the packaged build)"
    )
    cross_origin_isolation: bool = Field(
        default=True,
        description="serve the web app with COOP/COEP headers, so that browsers train on "
        "several threads (off: one thread, for pages embedded in another origin)",
    )
    log_level: LogLevel = "info"
    # -- limits (disco.server.limits; 0 turns a rate off) ------------------------------------
    max_participants: int = Field(
        default=10_000, ge=1, description="participants one task's session takes at most"
    )
    requests_per_minute: int = Field(
        default=6000, ge=0, description="REST requests (/api, /metrics) per client address"
    )
    connections_per_minute: int = Field(
        default=1200, ge=0, description="WebSocket connections opened per client address"
    )
    # -- operations (docs/operations.md) ---------------------------------------------------
    log_format: LogFormat = Field(
        default="text", description="log lines as plain text, or one JSON object a line"
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        min_length=1,
        description="trust X-Forwarded-For/-Proto from these proxies only: IPs or networks, "
        "comma-separated, or '*' (default: from nobody)",
    )
    # -- TLS (disco.server.tls) --------------------------------------------------------------
    tls_cert: Path | None = Field(
        default=None, description="serve https/wss with this certificate (PEM, chain included)"
    )
    tls_key: Path | None = Field(
        default=None,
        validate_default=True,  # so that a certificate without its key is caught
        description="the certificate's private key (PEM, unencrypted)",
    )

    @field_validator("tls_key")
    @classmethod
    def _tls_pair(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert" not in info.data:  # the certificate itself was invalid
            return key
        if info.data["tls_cert"] is not None and key is None:
            raise ValueError(
                "a TLS certificate (tls_cert) needs its private key: give tls_key too "
                "(--tls-key or DISCO_TLS_KEY), or neither for plain http"
            )
        if info.data["tls_cert"] is None and key is not None:
            raise ValueError(
                "a TLS key needs its certificate: give tls_cert too (--tls-cert or "
                "DISCO_TLS_CERT), or neither for plain http"
            )
        return key

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str | None) -> str | None:
        return None if value is None else check_forwarded_allow_ips(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _invitations_need_admin(self) -> Self:
        if self.access == "invitation" and self.admin_token is None:
            raise ValueError(
                "access = 'invitation' needs admin_token: only the admin can make invitations"
            )
        return self

    @classmethod
    def load(
        cls,
        file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        """Merge defaults, `file`, ``DISCO_*`` variables of `env` and `overrides` (None = unset).

        `env` defaults to ``os.environ``; pass ``{}`` to ignore the environment. A bad value
        raises `ConfigError` naming the field and where the value came from.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}

        def layer(source: str, items: Mapping[str, Any]) -> None:
            for key, value in items.items():
                if key not in cls.model_fields:
                    known = ", ".join(cls.model_fields)
                    raise ConfigError(f"{source}: unknown setting {key!r} (known: {known})")
                values[key] = value
                origin[key] = source

        if file is not None:
            layer(f"config file {file}", _read_file(Path(file)))
        layer(
            "environment",
            {
                f"{name}": value
                for name in cls.model_fields
                if (value := env.get(ENV_PREFIX + name.upper())) is not None
            },
        )
        layer("command line", {k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "config"
                where = origin.get(field, "defaults")
                if where == "environment":
                    where = f"environment variable {ENV_PREFIX}{field.upper()}"
                problems.append(f"{field} (from {where}): {err['msg']}")
            raise ConfigError("invalid server configuration: " + "; ".join(problems)) from exc


def _read_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML or JSON file; a ``[server]`` table is used when present."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"config file {path} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    section = data.get("server", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [server] must be a table")
    return section
