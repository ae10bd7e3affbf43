"""Reading the web config's certificates: the chain's and the client CAs' expiry, and key usage.

Python's ssl cannot parse a certificate file, so this takes cryptography, and only a
web config with TLS imports it (``tls.build_tls``): a daemon serving plain HTTP never
loads cryptography.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.web.webconfig.model import WebConfigError


def certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise WebConfigError(f"tls_server_config.{what}: no PEM certificate found")
    return certs


def not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def eku_warnings(cas: list[x509.Certificate]) -> list[str]:
    """CAs whose extended key usage lacks clientAuth: OpenSSL refuses the client certificates they sign."""
    out = []
    for ca in cas:
        try:
            eku = ca.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            out.append(
                f"client CA {ca.subject.rfc4514_string()!r} has an extended key usage without clientAuth: "
                "OpenSSL refuses the client certificates it signs (Go accepts anyExtendedKeyUsage); "
                "reissue the CA without extended key usage, or with clientAuth in it"
            )
    return out
