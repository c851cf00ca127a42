"""Certificates made in the test (``cryptography``): a CA, a server certificate for
127.0.0.1, and station certificates whose common name is a station id."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Authority:
    """A CA that issues certificates into ``folder`` (PEM files)."""

    def __init__(self, folder: Path, name: str = "Lights On test CA") -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            self._builder(subject, self.key.public_key(), subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(
        subject: x509.Name, key: ec.EllipticCurvePublicKey, issuer: x509.Name
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
        )

    def issue(self, common_name: str, *, server: bool = False) -> tuple[Path, Path]:
        """A certificate and its key for ``common_name`` (a server one also names 127.0.0.1
        and ::1), as (certificate file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = self._builder(subject, key.public_key(), self.certificate.subject)
        if server:
            addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(a) for a in addresses]),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        cert_path = self.folder / f"{common_name}.crt.pem"
        key_path = self.folder / f"{common_name}.key.pem"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path
