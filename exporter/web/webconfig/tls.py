"""TLS for the exporter's server: one fresh SSL context per web config, chosen per connection.

Every load of the web config builds a new ``ssl.SSLContext`` from nothing, so what the
file says is exactly what is enforced: a client CA that was removed is no longer
trusted, a replaced certificate or key type is not served next to the new one, and
changed protocol bounds apply. Sessions cannot be resumed across a reload either
(ticket keys belong to a context), so a resumed session never skips the new checks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.web.webconfig.model import CURVES, TlsServerConfig, WebConfigError, read_regular_file

# Go's default TLS 1.2 suites: ECDHE key exchange and AEAD ciphers only.
DEFAULT_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's ssl cannot ask for a certificate without verifying it: RequestClientCert (asked,
# never checked, so every client is let in) is served by not asking; RequireAnyClientCert
# verifies against client_ca_file (the config is refused without one).
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_SAN_KINDS = {"DNS", "IP Address", "email", "URI"}


@dataclass(frozen=True)
class TlsSettings:
    """What one load of ``tls_server_config`` enforces; replaced whole on reload."""

    context: ssl.SSLContext
    allowed_sans: frozenset[str] | None
    server_expiry: float  # Unix time at which the first certificate of the served chain expires
    client_ca_expiry: float | None
    warnings: tuple[str, ...] = ()

    def client_allowed(self, peercert: Any) -> bool:
        """False if ``client_allowed_sans`` is set and the verified client certificate has none of them."""
        if self.allowed_sans is None:
            return True
        names = peercert.get("subjectAltName", ()) if isinstance(peercert, dict) else ()
        return any(kind in _SAN_KINDS and _san(value) in self.allowed_sans for kind, value in names)


def _san(value: str) -> str:
    # An IP address can be written several ways (Python prints IPv6 SANs uncompressed).
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value


def build_tls(cfg: TlsServerConfig, base: Path) -> TlsSettings:
    """A new server context for ``cfg`` (relative paths are relative to ``base``)."""

    def source(text: str, path: str, what: str) -> bytes:
        # As in exporter-toolkit, the file wins when both the file and inline text are given.
        if path:
            full = Path(path) if Path(path).is_absolute() else base / path
            return read_regular_file(full, what)
        return text.encode()

    cert_pem = source(cfg.cert, cfg.cert_file, "cert_file")
    key_pem = source(cfg.key, cfg.key_file, "key_file")
    ca_pem = (
        source(cfg.client_ca, cfg.client_ca_file, "client_ca_file")
        if cfg.client_ca_file or cfg.client_ca
        else None
    )
    auth = cfg.client_auth_type or "NoClientCert"
    if ca_pem is not None and auth == "NoClientCert":
        raise WebConfigError(
            "tls_server_config: a client CA is configured without a client_auth_type that uses it"
        )

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.maximum_version = _VERSIONS[cfg.max_version]
    ciphers = cfg.openssl_ciphers
    if cfg.cipher_suites and not ciphers:
        # Only TLS 1.3 names: as in Go, no TLS 1.2 suite is left.
        if cfg.max_version != "TLS13":
            raise WebConfigError(
                "tls_server_config.cipher_suites: no TLS 1.2 suite listed and max_version is TLS12"
            )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.set_ciphers(":".join(ciphers) if ciphers else DEFAULT_TLS12_CIPHERS)
    if cfg.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if len(set(cfg.curve_preferences)) == 1:
        ctx.set_ecdh_curve(CURVES[cfg.curve_preferences[0]])
    ctx.set_alpn_protocols(["http/1.1"])

    # Reading certificates takes cryptography (Python's ssl cannot parse a certificate
    # file), which only a web config with TLS needs: it is loaded here, not at start.
    from exporter.web.webconfig import certs

    chain = certs.certificates(cert_pem, "cert_file" if cfg.cert_file else "cert")
    with _as_file(cert_pem) as cert_path, _as_file(key_pem) as key_path:
        try:
            ctx.load_cert_chain(cert_path, key_path, password=_no_password)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(
                f"tls_server_config: cannot use the certificate and key: {_reason(exc)}"
            ) from None

    warnings: list[str] = []
    ca_expiry = None
    if ca_pem is not None:
        cas = certs.certificates(ca_pem, "client_ca_file" if cfg.client_ca_file else "client_ca")
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
        except ssl.SSLError as exc:
            raise WebConfigError(f"tls_server_config: cannot use the client CA: {_reason(exc)}") from None
        ca_expiry = min(certs.not_after(c) for c in cas)
        warnings += certs.eku_warnings(cas)
    elif _VERIFY_MODES[auth] != ssl.CERT_NONE:
        # Go verifies client certificates against the system's CAs when no client CA is given.
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = _VERIFY_MODES[auth]
    if cfg.cert_file and cfg.cert:
        warnings.append("tls_server_config: both cert and cert_file are set; cert_file is used")
    if cfg.key_file and cfg.key:
        warnings.append("tls_server_config: both key and key_file are set; key_file is used")
    sans = None
    if cfg.client_allowed_sans is not None:
        sans = frozenset(_san(s) for s in cfg.client_allowed_sans)
    return TlsSettings(ctx, sans, min(certs.not_after(c) for c in chain), ca_expiry, tuple(warnings))


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise WebConfigError(
        "tls_server_config: the private key is encrypted; exporter-toolkit cannot use one either"
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, WebConfigError):
        return str(exc).removeprefix("tls_server_config: ")
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def expiry_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open holding ``data``: an anonymous in-memory file where the OS has them.

    ``load_cert_chain`` only takes paths; inline keys (and keys read once, to parse the
    same bytes that are served) must not be written to disk.
    """
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("web-config-pem", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="inference-exporter-tls-") as d:
        path = Path(d) / "pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        yield str(path)
