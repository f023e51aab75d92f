"""TLS for `disco serve`: the certificate and key files, checked before the server starts.

With ``tls_cert`` and ``tls_key`` (``--tls-cert``/``--tls-key``, ``DISCO_TLS_CERT``/
``DISCO_TLS_KEY``) uvicorn serves https and wss on the same port. `tls_options` loads the pair
once with `ssl.SSLContext.load_cert_chain` first, so that a missing file, a file that is not PEM,
an encrypted key or a key that does not belong to the certificate stops the server with one
`ConfigError` naming the files, rather than an OpenSSL traceback from uvicorn's thread.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.errors import ConfigError

if TYPE_CHECKING:
    from disco.server.config import ServerConfig

__all__ = ["scheme", "tls_options"]


def scheme(config: ServerConfig) -> str:
    """``https`` when `config` serves over TLS, else ``http``."""
    return "https" if config.tls_cert is not None else "http"


def _no_password() -> bytes:
    """Answer an encrypted key's password prompt (which would otherwise read the terminal)."""
    raise ConfigError("the key is encrypted")


def tls_options(config: ServerConfig) -> dict[str, Any]:
    """uvicorn's ``ssl_certfile``/``ssl_keyfile`` for `config` (empty without TLS), checked."""
    cert, key = config.tls_cert, config.tls_key
    if cert is None or key is None:
        return {}
    for what, setting, path in (("certificate", "tls_cert", cert), ("key", "tls_key", key)):
        if not Path(path).is_file():
            raise ConfigError(f"TLS {what} file {path} does not exist ({setting})")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ConfigError:
        raise ConfigError(
            f"TLS key {key} is encrypted: give the server an unencrypted key file "
            "(e.g. `openssl pkey -in KEY -out plain-key.pem`), readable only by its user"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        why = exc.strerror or str(exc)
        if "KEY_VALUES_MISMATCH" in why:
            raise ConfigError(
                f"TLS key {key} is not the private key of certificate {cert} ({why}): give the "
                "key that was made with this certificate"
            ) from exc
        raise ConfigError(
            f"cannot use TLS certificate {cert} with key {key} ({why}): both must be PEM files "
            "(-----BEGIN CERTIFICATE----- and -----BEGIN PRIVATE KEY-----)"
        ) from exc
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
