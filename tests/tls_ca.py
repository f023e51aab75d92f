"""A throwaway certificate authority for the TLS tests: a CA and a server certificate it signed.

`make_authority(folder)` writes, under `folder`:

- ``ca.pem``: the CA's certificate — what a participant trusts (``--ca-file``, ``DISCO_CA_FILE``);
- ``server.pem`` / ``server-key.pem``: a certificate for ``127.0.0.1`` and ``localhost`` signed by
  that CA, and its unencrypted private key (``disco serve --tls-cert … --tls-key …``).

`Authority.spki_sha256` is the base64 SHA-256 of the server certificate's public key
(SubjectPublicKeyInfo), the form Chromium's ``--ignore-certificate-errors-spki-list`` takes: a
browser launched with it trusts that one certificate and nothing else it would not trust anyway.

Not a test module: both tests/server and tests/web import it (each puts tests/ on sys.path).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Authority", "make_authority"]


@dataclass(frozen=True)
class Authority:
    """The files of a test CA and of the server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    spki_sha256: str
    """base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate."""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "disco tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """A CA signs certificates; a server's key signs its TLS handshakes."""
    flags = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
        **flags,
    )


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> Any:
    """A certificate of `key` for `subject`, valid from an hour ago for a week."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_authority(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Authority:
    """A new CA and a server certificate for `hosts` (IP addresses or DNS names), as files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"disco test CA {folder.name}")
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs_certificates=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    cert = (
        _builder(_name(hosts[0]), ca_name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    authority = Authority(
        ca_file=folder / "ca.pem",
        cert_file=folder / "server.pem",
        key_file=folder / "server-key.pem",
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )
    authority.ca_file.write_bytes(_pem(ca))
    authority.cert_file.write_bytes(_pem(cert))
    authority.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return authority
