# -*- test-case-name: tests.test_tls -*-
"""
Throw-away certificates for testing TLS: a CA, and server or client
certificates it signs, written as PEM files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_names(hostnames: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


class CertificateAuthority:
    """
    A certificate authority for tests, writing PEM files into *directory*.

    :param str directory: where the files go (created if needed).
    :param str name: the CA's common name.
    """

    def __init__(self, directory: str, name: str = "sampy_twisted test CA") -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self._write(f"{_slug(name)}-ca.pem", self._pem(self._certificate))

    @staticmethod
    def _pem(certificate: x509.Certificate) -> bytes:
        return certificate.public_bytes(serialization.Encoding.PEM)

    def _write(self, filename: str, data: bytes) -> str:
        path = os.path.join(self.directory, filename)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
        return path

    def issue(self, name: str, hostnames: Sequence[str] = ("127.0.0.1", "localhost"),
              client: bool = False, expired: bool = False, passphrase: str | None = None,
              combined: bool = False, self_signed: bool = False,
              both: bool = False) -> tuple[str, str]:
        """
        Issue a certificate and write it and its key.

        :param str name: the common name, also used for the file names.
        :param hostnames: subjectAltNames (IP addresses or DNS names); empty
            for a certificate without subjectAltName.
        :param bool client: a client certificate (else a server one).
        :param bool both: usable as server and client certificate (as a hub
            or a callable client needs: each serves and calls).
        :param bool expired: make it already expired.
        :param passphrase: encrypt the key with this passphrase.
        :param bool combined: put the key in the certificate file.
        :param bool self_signed: sign it with its own key, not the CA's.
        :return: ``(cert_file, key_file)``; *key_file* is the certificate
            file when *combined*.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = (now - 30 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        if both:
            usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        else:
            usages = [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name) if self_signed else self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if hostnames:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hostnames)), critical=False)
        certificate = builder.sign(key if self_signed else self._key, hashes.SHA256())
        encryption = (
            serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
            if passphrase
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        slug = _slug(name)
        if combined:
            path = self._write(f"{slug}.pem", self._pem(certificate) + key_pem)
            return path, path
        return self._write(f"{slug}-cert.pem", self._pem(certificate)), self._write(f"{slug}-key.pem", key_pem)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())
