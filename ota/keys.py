"""Signing keys for RAUC bundles (X.509, made with the openssl command).

A key directory holds a CA and a signing certificate issued by it:

    ca.cert.pem        goes into the device keyring (/etc/rauc/keyring.pem)
    ca.key.pem         signs signing certificates; keep offline (0600)
    signing.cert.pem   put into every bundle by `rauc bundle --cert`
    signing.key.pem    signs bundles (0600)

Release keys are made once by the manufacturer on an offline machine. Development keys are
a separate CA (its name says so), generated on demand into a git-ignored directory of the
build host; an image trusts them only when it is built without a release keyring. Private
keys never enter the repository or the image: the image only gets ca.cert.pem.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ota.errors import OtaError
from ota.tools import run

CA_DAYS = 36500  # the device has no RTC and RAUC checks at the bundle's signing time
SIGNING_DAYS = 3650


class KeyGenError(OtaError):
    """Key generation failed or a key directory is incomplete."""


@dataclass(frozen=True)
class KeyDir:
    path: Path

    @property
    def ca_cert(self) -> Path:
        return self.path / "ca.cert.pem"

    @property
    def ca_key(self) -> Path:
        return self.path / "ca.key.pem"

    @property
    def cert(self) -> Path:
        return self.path / "signing.cert.pem"

    @property
    def key(self) -> Path:
        return self.path / "signing.key.pem"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.cert, self.key))


def _openssl_ext(lines: list[str]) -> Path:
    fd, name = tempfile.mkstemp(suffix=".cnf")
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(["[ext]", *lines]) + "\n")
    return Path(name)


def generate(directory: Path, *, organisation: str, development: bool) -> KeyDir:
    """Make a CA and a signing certificate in `directory` (refuses to overwrite)."""
    keys = KeyDir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    existing = [p.name for p in (keys.ca_cert, keys.ca_key, keys.cert, keys.key) if p.exists()]
    if existing:
        raise KeyGenError(f"{directory} already holds {', '.join(existing)}: not overwriting keys")
    kind = "development" if development else "release"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    old_umask = os.umask(0o077)
    ca_ext = _openssl_ext(["basicConstraints=critical,CA:TRUE",
                           "keyUsage=critical,keyCertSign,cRLSign",
                           "subjectKeyIdentifier=hash"])
    # No extendedKeyUsage: RAUC's default purpose check accepts a certificate without one.
    signer_ext = _openssl_ext(["basicConstraints=critical,CA:FALSE",
                               "keyUsage=critical,digitalSignature",
                               "subjectKeyIdentifier=hash",
                               "authorityKeyIdentifier=keyid"])
    csr = directory / "signing.csr"
    try:
        run(["openssl", "req", "-x509", "-new", *ec, "-keyout", keys.ca_key, "-out", keys.ca_cert,
             "-days", str(CA_DAYS), "-subj", f"/O={organisation}/CN={organisation} OTA {kind} CA",
             "-config", ca_ext, "-extensions", "ext"], error=KeyGenError)
        run(["openssl", "req", "-new", *ec, "-keyout", keys.key, "-out", csr,
             "-subj", f"/O={organisation}/CN={organisation} OTA {kind} signing"], error=KeyGenError)
        run(["openssl", "x509", "-req", "-in", csr, "-CA", keys.ca_cert, "-CAkey", keys.ca_key,
             "-set_serial", str(secrets.randbits(63)), "-days", str(SIGNING_DAYS),
             "-extfile", signer_ext, "-extensions", "ext", "-out", keys.cert], error=KeyGenError)
    finally:
        os.umask(old_umask)
        csr.unlink(missing_ok=True)
        ca_ext.unlink()
        signer_ext.unlink()
    for public in (keys.ca_cert, keys.cert):
        os.chmod(public, 0o644)
    return keys


def ensure_development_keys(directory: Path, organisation: str = "CydYnni Hub") -> KeyDir:
    """The build host's development keys, generated the first time they are needed."""
    keys = KeyDir(directory)
    if keys.complete():
        return keys
    return generate(directory, organisation=organisation, development=True)


def write_keyring(ca_certs: list[Path], out: Path) -> None:
    """Concatenate CA certificates into one PEM keyring (what system.conf [keyring] reads)."""
    if not ca_certs:
        raise KeyGenError("a keyring needs at least one CA certificate")
    pems = []
    for cert in ca_certs:
        text = cert.read_text()
        if "PRIVATE KEY" in text:
            raise KeyGenError(f"{cert} contains a private key: never put it into a keyring")
        if "BEGIN CERTIFICATE" not in text:
            raise KeyGenError(f"{cert} is not a PEM certificate")
        pems.append(text.strip() + "\n")
    out.write_text("".join(pems))
    os.chmod(out, 0o644)
