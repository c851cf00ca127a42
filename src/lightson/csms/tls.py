"""TLS for the charger WebSocket (OCPP security profiles) and the HTTP API.

- **Profile 1**: HTTP Basic over plain ``ws://``. For closed networks and tests only: the
  password crosses the wire in the clear.
- **Profile 2**: ``wss://`` with the CSMS's certificate (``--tls-cert``/``--tls-key``); the
  station checks it and still authenticates with HTTP Basic.
- **Profile 3**: ``wss://`` with client certificates (``--tls-client-ca``): the TLS handshake
  requires a station certificate signed by the CA the operator trusts, and the certificate's
  subject common name must be the station id it connects as (OCPP 2.0.1 Part 2, A00: the
  certificate names the station's identity); no password is asked.

TLS 1.2 is the least version offered (OCPP 2.0.1 Part 2 requires at least TLS 1.2).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from lightson.domain.errors import ConfigError


def server_context(
    cert: Path, key: Path, client_ca: Path | None = None, *, field: str = "--tls-cert"
) -> ssl.SSLContext:
    """A server-side TLS context from PEM files: the certificate chain and its key, and, for
    security profile 3, the CA whose client certificates are required. A file that is missing
    or does not hold what it should is a :class:`ConfigError` naming ``field``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError.at(
            field, f"cannot load the certificate {cert} with its key {key}: {error}"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError.at(
                "--tls-client-ca", f"cannot load the CA certificates in {client_ca}: {error}"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def requires_client_certificate(context: ssl.SSLContext | None) -> bool:
    """Whether ``context`` is security profile 3 (stations present certificates)."""
    return context is not None and context.verify_mode == ssl.CERT_REQUIRED


def common_name(peer_certificate: dict[str, Any] | None) -> str | None:
    """The subject common name of a certificate as ``SSLSocket.getpeercert()`` gives it
    (``None`` when there is none, or it has no common name)."""
    if not peer_certificate:
        return None
    for rdn in peer_certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


__all__ = ["common_name", "requires_client_certificate", "server_context"]
