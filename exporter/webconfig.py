"""``--web.config.file``: TLS and basic auth in the format of Prometheus's exporter-toolkit.

Operators already write this file for node_exporter and friends, so the same file
works here::

    tls_server_config:
      cert_file: server.crt          # relative paths: relative to this file
      key_file: server.key
      client_ca_file: ca.crt         # optional; needs a client_auth_type that uses it
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Differences from the Go implementation, all on the strict side: a client
certificate that is asked for is always verified against ``client_ca_file`` (Python's
ssl cannot request one without checking it), so ``RequestClientCert`` behaves like
``VerifyClientCertIfGiven`` and ``RequireAnyClientCert`` like
``RequireAndVerifyClientCert``; cipher and curve settings are not supported (an
error names them). The file is read at start-up and again on every reload (SIGHUP,
``POST /-/reload``): new users, passwords, headers and certificates apply without a
restart; turning TLS on or off needs one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import Field, ValidationError, field_validator

from exporter import yamlpos
from exporter.config import duplicate_keys
from exporter.config.common import Strict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_REQUIRED = {"RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert"}
_OPTIONAL = {"RequestClientCert", "VerifyClientCertIfGiven"}
# Checked against when the user is unknown, so a wrong user costs as much as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(10))


class WebConfigError(ValueError):
    """The web config is unusable; the message says where and why (never a password)."""


class TlsServerConfig(Strict):
    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_ca_file: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion | None = None


class HttpServerConfig(Strict):
    headers: dict[str, str] = Field(default_factory=dict)
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1


class WebConfig(Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"the password of {user!r} must be a bcrypt hash ($2y$...)")
        return users


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the file; a key written twice is an error, as in the main config."""
    try:
        loaded = yamlpos.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yamlpos.YamlSyntaxError as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise WebConfigError(f"{where}: invalid YAML: {exc.message}") from None
    twice = duplicate_keys(str(path), loaded)
    if twice:
        raise WebConfigError("\n".join(str(p) for p in twice))
    try:
        return WebConfig.model_validate(loaded.data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = "unknown or unsupported key" if first["type"] == "extra_forbidden" else first["msg"]
        raise WebConfigError(f"{path}: {where}: {msg}") from None


def ssl_context(cfg: TlsServerConfig, base: Path, ctx: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A server context for ``cfg``; with ``ctx``, reconfigure that one (new handshakes use it)."""

    def resolve(p: str) -> str:
        return str(p if Path(p).is_absolute() else base / p)

    ctx = ctx or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    if cfg.max_version is not None:
        ctx.maximum_version = _VERSIONS[cfg.max_version]
    try:
        ctx.load_cert_chain(resolve(cfg.cert_file), resolve(cfg.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"cannot load cert_file/key_file: {exc}") from None
    if cfg.client_ca_file:
        if cfg.client_auth_type == "NoClientCert":
            raise WebConfigError("client_ca_file is set but client_auth_type is NoClientCert")
        try:
            ctx.load_verify_locations(resolve(cfg.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"cannot load client_ca_file: {exc}") from None
    elif cfg.client_auth_type != "NoClientCert":
        raise WebConfigError(f"client_auth_type {cfg.client_auth_type} needs a client_ca_file")
    if cfg.client_auth_type in _REQUIRED:
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif cfg.client_auth_type in _OPTIONAL:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching verdicts.

    bcrypt is slow on purpose; a scraper sends the same
    credentials every few seconds, so verdicts are cached under a digest of user,
    password and hash (never the password itself), and checks run off the event loop.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {u: h.encode() for u, h in users.items()}
        self._verdicts: dict[bytes, bool] = {}

    def set_users(self, users: dict[str, str]) -> None:
        self.users = {u: h.encode() for u, h in users.items()}
        self._verdicts = {}

    async def check(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        digest = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed or b""])).digest()
        verdict = self._verdicts.get(digest)
        if verdict is None:
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed or _DUMMY_HASH)
            verdict = ok and hashed is not None
            if len(self._verdicts) > 1000:
                self._verdicts.clear()
            self._verdicts[digest] = verdict
        return verdict

    def middleware(self) -> Middleware:
        @web.middleware
        async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.users and not await self.check(request.headers.get("Authorization", "")):
                return web.Response(
                    status=401,
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="inference-exporter"'},
                )
            return await handler(request)

        return mw


def headers_middleware(headers: dict[str, str]) -> Middleware:
    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        resp.headers.update(headers)
        return resp

    return mw


class WebSecurity:
    """What the server needs from the web config: an SSL context and middlewares.

    The middlewares are always installed and read the current settings, so a reload
    can change users and headers in place; the SSL context is reconfigured in place.
    """

    def __init__(self, cfg: WebConfig, path: Path) -> None:
        self.path = path
        self.ssl: ssl.SSLContext | None = (
            ssl_context(cfg.tls_server_config, path.parent) if cfg.tls_server_config else None
        )
        self.headers: dict[str, str] = dict(cfg.http_server_config.headers)
        self.auth = BasicAuth(cfg.basic_auth_users)
        self.middlewares: list[Middleware] = [headers_middleware(self.headers), self.auth.middleware()]

    @classmethod
    def from_file(cls, path: Path) -> WebSecurity:
        return cls(load_web_config(path), path)

    def prepare_reload(self) -> Callable[[], None]:
        """Read the file again; raise WebConfigError if unusable, else return how to apply it."""
        cfg = load_web_config(self.path)
        tls = cfg.tls_server_config
        if (tls is None) != (self.ssl is None):
            raise WebConfigError(f"{self.path}: turning TLS on or off needs a restart")
        if tls is not None:
            ssl_context(tls, self.path.parent)  # fails here, before anything changes

        def apply() -> None:
            if tls is not None and self.ssl is not None:
                ssl_context(tls, self.path.parent, self.ssl)
            self.headers.clear()
            self.headers.update(cfg.http_server_config.headers)
            self.auth.set_users(cfg.basic_auth_users)

        return apply
