# -*- test-case-name: tests.test_tls -*-
"""
TLS settings for SAMP over https: one object carrying certificate, key, CA
bundle, certificate requirement and minimum protocol version, turned into
pyOpenSSL connection creators for Twisted.  Hostnames are checked through
service-identity, as Twisted's :func:`~twisted.internet.ssl.optionsForClientTLS`
does.
"""

from __future__ import annotations

import copy
import ipaddress
import ssl
from typing import TYPE_CHECKING, Any, Union

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address
from twisted.internet import ssl as tssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

if TYPE_CHECKING:
    from constantly import NamedConstant
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = ["TLSOptions", "usable_as_client_certificate", "verifying_copy"]

_DEFAULT_PROTOCOLS = {ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS_SERVER}
_OBSOLETE_NAMES = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1_0", "TLSv1.1", "TLSv1_1"}
_VERSION_NAMES: dict[str, NamedConstant] = {"TLSv1.2": tssl.TLSVersion.TLSv1_2, "TLSv1_2": tssl.TLSVersion.TLSv1_2,
                  "TLSv1.3": tssl.TLSVersion.TLSv1_3, "TLSv1_3": tssl.TLSVersion.TLSv1_3}

# The private keys pyOpenSSL can hand to OpenSSL for TLS.
_TLSKey = Union[
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
]
_TLS_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


def minimum_tls_version(ssl_version: object) -> NamedConstant | None:
    """
    Map the seeds' ``ssl_version`` to a minimum TLS version.

    :param ssl_version: ``None``; an :mod:`ssl` ``PROTOCOL_*`` constant; an
        :class:`ssl.TLSVersion` or :class:`twisted.internet.ssl.TLSVersion`;
        or a name such as ``"TLSv1.3"``.
    :return: a :class:`twisted.internet.ssl.TLSVersion`, or ``None`` for
        Twisted's default (TLS 1.2).
    :raises ValueError: SSLv2, SSLv3, TLS 1.0 and 1.1 are obsolete and
        refused; anything else unknown is refused too.
    """
    if ssl_version is None or ssl_version in _DEFAULT_PROTOCOLS:
        return None
    if ssl_version == ssl.PROTOCOL_TLSv1_2:
        return _VERSION_NAMES["TLSv1.2"]
    if ssl_version in (ssl.PROTOCOL_TLSv1, ssl.PROTOCOL_TLSv1_1):
        # Given as the constant or its int value (which has no name).
        name: object = "TLSv1" if ssl_version == ssl.PROTOCOL_TLSv1 else "TLSv1_1"
    else:
        name = ssl_version.name if hasattr(ssl_version, "name") else ssl_version
    if isinstance(name, str):
        if name.replace("PROTOCOL_", "") in _OBSOLETE_NAMES:
            raise ValueError(
                f"ssl_version={ssl_version!r} is obsolete and insecure; use "
                f"ssl.PROTOCOL_TLS (the default, TLS 1.2 or newer) or TLSv1.3"
            )
        if name in _VERSION_NAMES:
            return _VERSION_NAMES[name]
    if isinstance(ssl_version, int) and ssl_version in (0, 1):  # SSLv2, SSLv3
        raise ValueError(f"ssl_version={ssl_version!r} (SSLv2/SSLv3) is obsolete and refused")
    raise ValueError(f"ssl_version={ssl_version!r} is not a TLS version this library knows")


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _load_certificates(data: bytes, path: str, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError(f"{what} {path} holds no PEM certificate")
    return certificates


def _load_key(data: bytes, path: str, passphrase: str | bytes | None) -> _TLSKey:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise ValueError(f"the private key in {path} is encrypted: give its passphrase") from None
        raise ValueError(f"the private key in {path} is not encrypted but a passphrase was given") from None
    except ValueError:
        if passphrase is not None:
            raise ValueError(f"wrong passphrase for the private key in {path} (or a damaged key)") from None
        raise ValueError(f"{path} holds no usable PEM private key") from None
    if not isinstance(key, _TLS_KEY_TYPES):
        raise ValueError(f"the private key in {path} is of a kind TLS cannot use ({type(key).__name__})")
    return key


def _same_public_key(key: _TLSKey, certificate: x509.Certificate) -> bool:
    encoding, form = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(encoding, form) == certificate.public_key().public_bytes(encoding, form)


def _twisted_certificate(cert: x509.Certificate) -> tssl.Certificate:
    return tssl.Certificate(crypto.X509.from_cryptography(cert))


# OpenSSL X509_V_ERR_* codes worth a plain explanation.
_VERIFY_ERRORS = {
    9: "is not yet valid",
    10: "has expired",
    18: "is self-signed and not trusted",
    19: "chains to a self-signed certificate that is not trusted",
    20: "is not issued by a trusted CA",
    21: "is not issued by a trusted CA",
    26: "is not meant for this role (its extended key usage lacks serverAuth or clientAuth)",
}


class TLSVerificationError(Exception):
    """The other side's certificate was refused."""


def _check_peer_identity(certificate: x509.Certificate, host: str) -> None:
    """Check the server certificate *certificate* names *host*."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        verify_certificate_hostname(certificate, host)
    else:
        verify_certificate_ip_address(certificate, str(address))


@implementer(IOpenSSLClientConnectionCreator)
class _StrictHostnameCheck:
    """
    Twisted's client creator with a stricter host name check.

    Twisted (26.10) logs but accepts a trusted server certificate without
    subjectAltName, because service-identity raises ``CertificateError``
    rather than ``VerificationError`` for it.  This verify callback refuses
    the connection for both.
    """

    def __init__(self, inner: IOpenSSLClientConnectionCreator, host: str) -> None:
        self._inner = inner
        self._host = host

    def clientConnectionForTLS(self, tls_protocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = self._inner.clientConnectionForTLS(tls_protocol)
        host = self._host

        def refuse(text: str) -> bool:
            tls_protocol.failVerification(Failure(TLSVerificationError(f"the certificate of {host} {text}")))
            return False

        def verify(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
            if not ok:
                return refuse(_VERIFY_ERRORS.get(errno, f"failed verification (OpenSSL error {errno})"))
            if depth != 0:
                return True
            try:
                _check_peer_identity(cert.to_cryptography(), host)
            except CertificateError:
                return refuse("has no subjectAltName to check the host name against")
            except VerificationError:
                return refuse(f"does not name {host} in its subjectAltName")
            return True

        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
        return connection


@implementer(IPolicyForHTTPS)
class _ClientPolicy:
    """Gives Agent one connection creator per host from :class:`TLSOptions`."""

    def __init__(self, options: TLSOptions) -> None:
        self._options = options
        self._creators: dict[str, IOpenSSLClientConnectionCreator] = {}

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        host = hostname.decode("ascii").strip("[]")
        creator = self._creators.get(host)
        if creator is None:
            creator = self._creators[host] = self._options.client_creator(host)
        return creator


class TLSOptions:
    """
    TLS settings for https hubs and callback servers.

    Files are read and checked when the object is made, so a missing file,
    a wrong passphrase or a key that does not match its certificate is an
    error at once, not at the first connection.

    :param str cert_file: PEM certificate identifying this side (it may
        hold the private key too).
    :param str key_file: PEM private key, when not in *cert_file*.
    :param str ca_certs: PEM bundle of CA certificates (all of them are
        used) to verify the other side with.
    :param cert_reqs: :data:`ssl.CERT_NONE`, :data:`ssl.CERT_OPTIONAL`,
        :data:`ssl.CERT_REQUIRED`, or ``None`` for the safe default of each
        role.  As a client, the server's certificate is verified (chain and
        host name) unless it is ``CERT_NONE``, the explicit opt-out.  As a
        server, ``None`` and ``CERT_NONE`` ask for no client certificate,
        ``CERT_OPTIONAL`` verifies one if sent, ``CERT_REQUIRED`` refuses
        clients without a certificate from *ca_certs*.
    :param ssl_version: the minimum protocol version (see
        :func:`minimum_tls_version`); SSLv2, SSLv3, TLS 1.0 and 1.1 are
        refused.
    :param passphrase: the passphrase of an encrypted private key.
    :raises ValueError: a file is missing or unreadable, a key does not
        match its certificate, a passphrase is wrong, or the settings
        contradict each other.
    """

    def __init__(self, cert_file: str | None = None, key_file: str | None = None,
                 ca_certs: str | None = None, cert_reqs: int | None = None,
                 ssl_version: object = None, passphrase: str | bytes | None = None) -> None:
        if cert_reqs not in (None, ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ValueError(f"cert_reqs={cert_reqs!r} is not ssl.CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED")
        if key_file and not cert_file:
            raise ValueError("key_file needs cert_file: a key alone identifies nobody")
        self.cert_file = cert_file
        self.key_file = key_file
        self.ca_certs = ca_certs
        self.cert_reqs = cert_reqs
        self.minimum_version = minimum_tls_version(ssl_version)
        self._certificate: x509.Certificate | None = None
        self._key: _TLSKey | None = None
        if cert_file:
            self._load_identity(cert_file, key_file, passphrase)
        self._authorities: list[x509.Certificate] = []
        if ca_certs:
            self._authorities = _load_certificates(_read(ca_certs, "CA bundle"), ca_certs, "CA bundle")
        self._policy: _ClientPolicy | None = None

    @classmethod
    def from_arguments(cls, key_file: str | None = None, cert_file: str | None = None,
                       cert_reqs: int | None = None, ca_certs: str | None = None,
                       ssl_version: object = None,
                       passphrase: str | bytes | None = None) -> TLSOptions | None:
        """
        Build from the seeds' keyword arguments, or ``None`` when none is
        given.  ``cert_reqs=None`` means not given; ``ssl.CERT_NONE`` is
        an explicit choice (for a client: do not verify the server).
        """
        if all(value is None for value in (key_file, cert_file, cert_reqs, ca_certs, ssl_version)):
            return None
        return cls(cert_file, key_file, ca_certs, cert_reqs, ssl_version, passphrase)

    def with_cert_reqs(self, cert_reqs: int | None) -> TLSOptions:
        """
        A copy of these settings with another certificate requirement, for
        example the hub's own settings made to verify the callback servers
        it calls, whatever it asks of its clients.

        :param cert_reqs: as for :class:`TLSOptions`.
        :rtype: TLSOptions
        """
        if cert_reqs not in (None, ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ValueError(f"cert_reqs={cert_reqs!r} is not ssl.CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED")
        other = copy.copy(self)
        other.cert_reqs = cert_reqs
        other._policy = None  # its creators follow the new requirement
        return other

    def _load_identity(self, cert_file: str, key_file: str | None, passphrase: str | bytes | None) -> None:
        cert_pem = _read(cert_file, "certificate file")
        certificate = _load_certificates(cert_pem, cert_file, "certificate file")[0]
        key_path = key_file or cert_file
        key_pem = _read(key_file, "key file") if key_file else cert_pem
        if b"PRIVATE KEY-----" not in key_pem:
            raise ValueError(f"no private key in {key_path}: give key_file")
        key = _load_key(key_pem, key_path, passphrase)
        if not _same_public_key(key, certificate):
            raise ValueError(f"the private key in {key_path} does not match the certificate in {cert_file}")
        self._certificate, self._key = certificate, key

    @property
    def verifies_server(self) -> bool:
        """Whether, as a client, the server's certificate is checked."""
        return self.cert_reqs != ssl.CERT_NONE

    @property
    def has_certificate(self) -> bool:
        """Whether a certificate and key were given."""
        return self._certificate is not None

    def _version_options(self) -> dict[str, NamedConstant]:
        if self.minimum_version is None:
            return {}
        return {"raiseMinimumTo": self.minimum_version}

    def private_certificate(self) -> tssl.PrivateCertificate | None:
        """
        This side's certificate and key for Twisted, or ``None``.

        :rtype: twisted.internet.ssl.PrivateCertificate
        """
        if self._certificate is None or self._key is None:
            return None
        key = tssl.KeyPair(crypto.PKey.from_cryptography_key(self._key))
        identity: tssl.PrivateCertificate = tssl.PrivateCertificate.fromCertificateAndKeyPair(
            _twisted_certificate(self._certificate), key
        )
        return identity

    def trust_root(self) -> IOpenSSLTrustRoot:
        """
        The CA certificates to trust, or the platform's when none were given.

        :rtype: twisted.internet.ssl.IOpenSSLTrustRoot
        """
        root: IOpenSSLTrustRoot
        if not self._authorities:
            root = tssl.platformTrust()
        else:
            root = tssl.trustRootFromCertificates([_twisted_certificate(c) for c in self._authorities])
        return root

    def client_creator(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """
        A connection creator for a TLS client connecting to *hostname*.

        :param str hostname: the server's host name or IP address, checked
            against its certificate's subjectAltName.
        """
        identity = self.private_certificate()
        if not self.verifies_server:
            kwargs: dict[str, Any] = {}
            if identity is not None:
                kwargs = {"privateKey": identity.privateKey.original, "certificate": identity.original}
            return tssl.CertificateOptions(verify=False, **kwargs, **self._version_options())
        creator = tssl.optionsForClientTLS(
            hostname,
            trustRoot=self.trust_root(),
            clientCertificate=identity,
            extraCertificateOptions=self._version_options(),
        )
        return _StrictHostnameCheck(creator, hostname)

    def client_policy(self) -> IPolicyForHTTPS:
        """
        An :class:`~twisted.web.iweb.IPolicyForHTTPS` for Agent, so https
        requests use these settings (client certificate included).
        """
        if self._policy is None:
            self._policy = _ClientPolicy(self)
        return self._policy

    def server_options(self) -> tssl.CertificateOptions:
        """
        Options for a TLS server (callback server or hub).

        :rtype: twisted.internet.ssl.CertificateOptions
        :raises ValueError: no certificate, or client certificates are to be
            checked but no CA bundle was given.
        """
        identity = self.private_certificate()
        if identity is None:
            raise ValueError("a TLS server needs cert_file (and key_file unless the key is in it)")
        kwargs: dict[str, Any] = {"privateKey": identity.privateKey.original, "certificate": identity.original}
        if self.cert_reqs in (ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED) and not self._authorities:
            raise ValueError("checking client certificates needs ca_certs")
        if self.cert_reqs == ssl.CERT_REQUIRED:
            kwargs["trustRoot"] = self.trust_root()
        elif self.cert_reqs == ssl.CERT_OPTIONAL:
            kwargs.update(
                verify=True,
                requireCertificate=False,
                caCerts=[crypto.X509.from_cryptography(c) for c in self._authorities],
            )
        return tssl.CertificateOptions(**kwargs, **self._version_options())


def verifying_copy(tls: TLSOptions) -> TLSOptions:
    """
    *tls* as the hub uses it to call https callbacks: the same certificate
    (presented as a client certificate), CA bundle and minimum version, but
    always verifying the callback server, whatever *tls* asks of the hub's
    own clients.
    """
    if tls.cert_reqs is None:
        return tls
    return tls.with_cert_reqs(None)


def usable_as_client_certificate(tls: TLSOptions) -> bool:
    """
    Whether *tls*'s certificate may identify a TLS client: OpenSSL refuses a
    certificate whose extended key usage lacks ``clientAuth``.
    """
    identity = tls.private_certificate()
    if identity is None:
        return False
    certificate = identity.original.to_cryptography()
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage
