"""The TLS options ``lightson csms`` and ``lightson serve`` share (``docs/operations.md``,
"Deploying"): one certificate for the charger WebSocket and the HTTP API, and the CA whose
client certificates the chargers must present (OCPP security profile 3)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lightson.csms.certificates import StationCertificateAuthority
from lightson.csms.tls import server_context
from lightson.domain.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def tls_options(command: F) -> F:
    """Add ``--tls-cert``, ``--tls-key``, ``--station-ca-cert``, ``--station-ca-key`` and
    ``--tls-client-ca`` to a command."""
    options = [
        click.option(
            "--tls-cert",
            type=_FILE,
            default=None,
            help="PEM certificate chain: chargers connect over wss:// (OCPP security profile "
            "2) and the HTTP API over https://. Needs --tls-key.",
        ),
        click.option("--tls-key", type=_FILE, default=None, help="PEM key of --tls-cert."),
        click.option(
            "--station-ca-cert",
            type=_FILE,
            default=None,
            help="PEM certificate of the CA that signs chargers' certificate requests "
            "(SignCertificate, for profile 3; usually the same as --tls-client-ca).",
        ),
        click.option(
            "--station-ca-key", type=_FILE, default=None, help="PEM key of --station-ca-cert."
        ),
        click.option(
            "--tls-client-ca",
            type=_FILE,
            default=None,
            help="PEM CA certificates: every charger must present a certificate they signed, "
            "whose common name is its station id (security profile 3; no password asked).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def tls_context(
    cert: Path | None, key: Path | None, client_ca: Path | None
) -> ssl.SSLContext | None:
    """The chargers' TLS context from the options (``None``: plain ws://, profile 1)."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError.at("--tls-client-ca", "client certificates need --tls-cert too")
        return None
    if cert is None:
        raise ConfigError.at("--tls-cert", "--tls-key was given without its certificate")
    if key is None:
        raise ConfigError.at("--tls-key", "--tls-cert was given without its key")
    return server_context(cert, key, client_ca)


def station_ca(cert: Path | None, key: Path | None) -> StationCertificateAuthority | None:
    """The CA that signs chargers' certificate requests (``None``: they are refused)."""
    if cert is None and key is None:
        return None
    if cert is None:
        raise ConfigError.at("--station-ca-cert", "--station-ca-key was given without it")
    if key is None:
        raise ConfigError.at("--station-ca-key", "--station-ca-cert was given without its key")
    return StationCertificateAuthority(cert, key)
