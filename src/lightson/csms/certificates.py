"""The certificate authority that signs charging stations' certificates (OCPP 2.0.1 and 2.1
use cases A02/A03, the 1.6 security extension's ``SignCertificate``).

Security profile 3 needs each station to hold a client certificate that names it. A station
makes its own key pair and sends a certificate signing request (``SignCertificate``, PEM,
RFC 2986); the CSMS checks it (a valid self-signature, its subject's common name is the
station's own id) and has it signed by the CA the operator configures (``--station-ca-cert``/
``--station-ca-key``), then sends the chain back (``CertificateSigned``). The same CA is the
one the server trusts for client certificates (``--tls-client-ca``), so the station can
connect with it at once.

Certificates for ISO 15118 (``V2GCertificate``) come from the V2G PKI, not from us: such a
request is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lightson.domain.errors import ConfigError

DEFAULT_VALIDITY = timedelta(days=365)
_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class CsrRefusedError(ValueError):
    """A signing request we do not sign; the message says why (sent to the station)."""


class StationCertificateAuthority:
    """The operator's CA (PEM certificate and key) that signs station certificates."""

    def __init__(self, cert: Path, key: Path, validity: timedelta = DEFAULT_VALIDITY) -> None:
        try:
            self.certificate = x509.load_pem_x509_certificate(cert.read_bytes())
            loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError.at(
                "--station-ca-cert", f"cannot load the CA {cert} with its key {key}: {error}"
            ) from None
        if not isinstance(loaded, _SIGNING_KEYS):
            raise ConfigError.at("--station-ca-key", f"{key} is not a key that can sign")
        self.key: CertificateIssuerPrivateKeyTypes = loaded
        self.validity = validity
        self.chain_pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, station_id: str, now: datetime) -> str:
        """The station's certificate for ``csr_pem``, followed by ours (the chain, leaf
        first, PEM). Refused (:class:`CsrRefusedError`) unless the request is well formed,
        its signature verifies, and its one common name is ``station_id``. The request's
        extensions are not copied: the certificate is for client authentication, not a CA."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise CsrRefusedError("not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise CsrRefusedError("its signature does not verify")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) > 1:
            # Readers differ on which of several names counts (we take the first, others the
            # last): a certificate naming two stations must not exist.
            raise CsrRefusedError(f"it names {len(names)} common names; one is allowed")
        named = str(names[0].value) if names else None
        if named != station_id:
            raise CsrRefusedError(f"it names {named!r}, not the station {station_id!r}")
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        algorithm = (
            None
            if isinstance(self.key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
            else hashes.SHA256()
        )
        leaf = builder.sign(self.key, algorithm)
        return leaf.public_bytes(serialization.Encoding.PEM).decode() + self.chain_pem


__all__ = ["CsrRefusedError", "StationCertificateAuthority"]
