"""The CA that signs stations' certificate requests, named by ``lightson serve``'s
``--station-ca-cert``/``--station-ca-key`` or by the program file's ``station_ca`` key
(files relative to the program file; each option wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lightson.cli import main
from lightson.cli.serve import _station_ca_files
from lightson.cli.tls import station_ca
from lightson.config import load_program
from lightson.domain.errors import ConfigError
from tls_support import Authority


def _program(tmp_path: Path, section: str) -> Path:
    text = (resources.files("lightson") / "examples" / "example.yaml").read_text()
    path = tmp_path / "program.yaml"
    path.write_text(text.replace("\nsites:\n", f"\n{section}\nsites:\n", 1))
    return path


def _ca_files(folder: Path) -> Authority:
    folder.mkdir()
    ca = Authority(folder)
    (folder / "ca.key").write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca


def test_the_program_files_station_ca_signs_and_each_option_wins(tmp_path: Path) -> None:
    ca = _ca_files(tmp_path / "pki")
    program = _program(tmp_path, f"station_ca:\n  cert: pki/{ca.path.name}\n  key: pki/ca.key\n")
    load_program(program)  # the section is part of the program file's schema
    files = _station_ca_files(str(program), None, None)
    assert files == (tmp_path / "pki" / ca.path.name, tmp_path / "pki" / "ca.key")
    other = tmp_path / "other.pem"
    assert _station_ca_files(str(program), other, None) == (other, files[1])
    assert _station_ca_files("example", None, None) == (None, None)

    signer = station_ca(*files)
    assert signer is not None
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cs-9")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    leaf = x509.load_pem_x509_certificates(
        signer.sign(csr, "cs-9", datetime(2026, 7, 15, tzinfo=UTC)).encode()
    )[0]
    leaf.verify_directly_issued_by(ca.certificate)


def test_a_wrong_station_ca_is_named_before_the_server_starts(tmp_path: Path) -> None:
    program = _program(tmp_path, "station_ca:\n  cert: ca.pem\n")
    with pytest.raises(ConfigError) as refused:
        load_program(program)
    assert ("station_ca.key", "is required") in refused.value.issues
    program = _program(tmp_path, "station_ca:\n  cert: missing.pem\n  key: missing.key\n")
    database = f"sqlite:///{tmp_path / 'serve.db'}"
    result = CliRunner().invoke(
        main, ["serve", "--program", str(program), "--db", database, "--port", "9"]
    )
    assert result.exit_code == 2
    assert "missing.pem" in result.output and "Traceback" not in result.output
