"""Throw-away certificates for TLS tests, made with the `openssl` command line (Debian's openssl package).

`make_test_pki(directory)`: a CA, a server certificate for 127.0.0.1/localhost signed by it, and a second,
unrelated CA (to show that a wrong CA fails). Nothing here is trusted outside the test that made it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True, slots=True)
class LocalPKI:
    ca_file: Path  # the CA that signed server_cert
    server_cert: Path
    server_key: Path
    other_ca_file: Path  # a CA that signed nothing here


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl not found: apt-get install openssl", pytrace=False)
    result = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN=llmpulse test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return cert, key


def make_test_pki(directory: Path) -> LocalPKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(directory, "ca")
    other_ca, _ = _make_ca(directory, "other-ca")
    server_key, csr, server_cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(server_key), "-out", str(csr),
             "-subj", "/CN=127.0.0.1", cwd=directory)
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(server_cert), "-days", "2", "-extfile", str(extensions), cwd=directory)
    return LocalPKI(ca_file=ca_cert, server_cert=server_cert, server_key=server_key, other_ca_file=other_ca)


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPKI:
    return make_test_pki(tmp_path_factory.mktemp("pki"))
