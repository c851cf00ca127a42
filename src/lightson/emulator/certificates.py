"""What an emulated station holds of certificates (OCPP 2.0.1/2.1 A02-A05, M03-M05; the 1.6
security extension), answering as the standard says a station does:

- ``InstallCertificate``: a PEM certificate of a root type is kept (``Accepted``); text that is
  not one certificate is ``Rejected``;
- ``GetInstalledCertificateIds``: the hash data of the roots of the asked types (all, in 2.x,
  when none is named), or ``NotFound``;
- ``DeleteCertificate``: the root whose hash data match is removed (``Accepted``), else
  ``NotFound``; the station never deletes its own client certificate (``Failed``);
- ``SignCertificate``/``CertificateSigned``: the station makes its own key and CSR (its id as
  the subject's common name) and keeps the chain the CSMS sends back when its leaf carries that
  key (else ``Rejected``).

Hash data are computed as an OCSP request computes them (RFC 6960): the issuer's DER name and
the bit string of its public key, hashed with SHA-256, and the serial number in hex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
    """``certificateHashData`` of ``certificate`` issued by ``issuer`` (a root: itself)."""
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    )
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": request.issuer_name_hash.hex(),
        "issuerKeyHash": request.issuer_key_hash.hex(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


@dataclass
class CertificateStore:
    """The roots a station trusts, by certificate type, and its own client certificate."""

    station_id: str
    roots: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    key: ec.EllipticCurvePrivateKey | None = None  # made for the last CSR
    chain_pem: str | None = None  # our certificate, then its issuers (CertificateSigned)

    def install(self, certificate_type: str, pem: str) -> str:
        try:
            found = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            return "Rejected"
        if len(found) != 1:
            return "Rejected"
        held = self.roots.setdefault(certificate_type, [])
        if all(c.serial_number != found[0].serial_number for c in held):
            held.append(found[0])
        return "Accepted"

    def installed(self, certificate_types: list[str]) -> list[tuple[str, dict[str, str]]]:
        """(type, hash data) of each root of ``certificate_types`` (every type if empty)."""
        return [
            (kind, hash_data(c, c))
            for kind, held in sorted(self.roots.items())
            if not certificate_types or kind in certificate_types
            for c in held
        ]

    def delete(self, wanted: dict[str, str]) -> str:
        keys = ("issuerNameHash", "issuerKeyHash", "serialNumber")
        if self.chain_pem is not None:
            leaf, *issuers = x509.load_pem_x509_certificates(self.chain_pem.encode())
            ours = hash_data(leaf, issuers[0] if issuers else leaf)
            if all(ours[k].lower() == str(wanted.get(k, "")).lower() for k in keys):
                return "Failed"  # A04: the station's own certificate is not deleted this way
        for held in self.roots.values():
            for certificate in held:
                mine = hash_data(certificate, certificate)
                if all(mine[k].lower() == str(wanted.get(k, "")).lower() for k in keys):
                    held.remove(certificate)
                    return "Accepted"
        return "NotFound"

    def new_csr(self) -> str:
        """A new key and a PEM CSR naming this station (the key is kept for the chain)."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.station_id)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject)
        signed = csr.sign(self.key, hashes.SHA256())
        return signed.public_bytes(serialization.Encoding.PEM).decode()

    def signed(self, chain_pem: str) -> str:
        """Keep the chain whose leaf carries the key of our last CSR."""
        try:
            leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
        except (ValueError, IndexError):
            return "Rejected"
        if self.key is None or leaf.public_key() != self.key.public_key():
            return "Rejected"
        self.chain_pem = chain_pem
        return "Accepted"

    def key_pem(self) -> bytes:
        """The private key of our certificate (PEM, unencrypted: the emulator's own files)."""
        if self.key is None:
            raise ValueError(f"{self.station_id} has made no key")
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


__all__ = ["CertificateStore", "hash_data"]
