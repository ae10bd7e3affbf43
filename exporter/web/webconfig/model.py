"""The ``--web.config.file`` format of Prometheus's exporter-toolkit: parsing and validation.

Operators copy the file they already use for node_exporter, so this module accepts
what exporter-toolkit accepts and refuses what it refuses, with errors that name the
file, the line and the key. What the file says is only read here; building the TLS
context and checking passwords happen in the sibling modules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.config import files, yamlpos
from exporter.config.modelerrors import document_path, plain_message

# Larger than any sensible web config, certificate bundle or key; a bigger file is a mistake.
MAX_FILE_BYTES = files.MAX_CONFIG_BYTES

# Go's cipher suite names (crypto/tls) and the OpenSSL names of the same suites.
TLS12_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are valid names in Go but not configurable there either: accepted, no effect.
TLS13_CIPHERS = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
# Go's HTTP/2 server refuses a TLS 1.2 cipher list without one of these.
HTTP2_REQUIRED_CIPHERS = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# The only response headers the file may set, and the values allowed where the header is an enumeration.
HEADER_VALUES: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

_BCRYPT = re.compile(r"^\$2([abxy])\$(\d\d)\$([./A-Za-z0-9]{53})$")
# bcrypt's base64 packs 16 salt bytes into 22 characters and 23 digest bytes into 31: the
# last character of each carries only 2 (resp. 4) bits, so only these characters are valid there.
_SALT_LAST = frozenset(".Oeu")
_DIGEST_LAST = frozenset(".CGKOSWaeimquy26")
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WebConfigError(ValueError):
    """The web config is unusable; the message says where and why (never a secret)."""


class _TextLoader(yaml.SafeLoader):
    """Plain scalars stay text, as Go's YAML decoder hands them to string fields.

    ``X-XSS-Protection: 1`` is the header value ``1``, not a number; only ``null``/``~``
    and merge keys keep their meaning. Booleans and integers are parsed from that text
    by the model, where a bool or an int is expected.
    """

    yaml_implicit_resolvers = {
        first: [
            (tag, rx) for tag, rx in resolvers if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _none_means_default(data: Any) -> Any:
    # Go's decoder leaves a field at its default when the file says null.
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _none_means_default(data)


class TlsServerConfig(_Section):
    cert: str = ""
    key: str = Field(default="", repr=False)
    client_ca: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: str = ""
    client_ca_file: str = ""
    client_allowed_sans: list[str] | None = None
    cipher_suites: list[str] = Field(default_factory=list)
    curve_preferences: list[str] = Field(default_factory=list)
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True

    @property
    def enabled(self) -> bool:
        """exporter-toolkit's rule: any certificate, key, client CA or client auth setting turns TLS on."""
        return any(
            (
                self.cert_file,
                self.cert,
                self.key_file,
                self.key,
                self.client_ca_file,
                self.client_ca,
                self.client_auth_type,
            )
        )

    @property
    def openssl_ciphers(self) -> list[str]:
        return [TLS12_CIPHERS[c] for c in self.cipher_suites if c in TLS12_CIPHERS]


class HttpServerConfig(_Section):
    http2: bool = True  # accepted; this server speaks HTTP/1.1 only
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers", mode="before")
    @classmethod
    def _values_as_text(cls, headers: Any) -> Any:
        if not isinstance(headers, dict):
            return headers
        # Go's server turns line breaks in a header value into spaces (a folded YAML
        # string ends with one); a value written as a YAML number or bool is its text.
        return {
            k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
            .replace("\r", " ")
            .replace("\n", " ")
            for k, v in headers.items()
        }


class RateLimitConfig(_Section):
    interval: float = 0.0  # seconds between requests; 0 turns the limiter off
    burst: int = Field(default=0, ge=0)

    @field_validator("interval", mode="before")
    @classmethod
    def _go_duration(cls, value: Any) -> float:
        return parse_go_duration(value)


class WebConfig(_Section):
    tls_server_config: TlsServerConfig = Field(default_factory=TlsServerConfig)
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict, repr=False)


def parse_go_duration(value: Any) -> float:
    """A Go duration (``1s``, ``1m30s``, ``250ms``) in seconds; ``0`` alone needs no unit."""
    text = str(value).strip()
    if text in ("0", "0s"):
        return 0.0
    if text.startswith("-"):
        raise ValueError("must not be negative")
    seconds, rest = 0.0, text
    while rest:
        m = _GO_DURATION.match(rest)
        if m is None:
            raise ValueError(f"expected a duration with a unit such as 1s, 500ms or 1m, got {text!r}")
        number = re.match(r"[\d.]+", m.group(0))
        assert number is not None
        seconds += float(number.group(0)) * _GO_UNITS[m.group(0)[number.end() :]]
        rest = rest[m.end() :]
    return seconds


def bcrypt_cost(hashed: str) -> int:
    """The cost of a bcrypt hash that Python's bcrypt can check; ValueError says why not."""
    if hashed.startswith("$2$"):
        raise ValueError(
            "the $2$ bcrypt variant is not supported: hash the password again (htpasswd -nBC 10 USER)"
        )
    m = _BCRYPT.match(hashed)
    if m is None:
        raise ValueError(
            "is not a bcrypt hash ($2y$<cost>$ and 53 characters): htpasswd -nBC 10 USER makes one"
        )
    cost, encoded = int(m.group(2)), m.group(3)
    if not 4 <= cost <= 31:
        raise ValueError(f"bcrypt cost {cost} is outside 4..31")
    if encoded[21] not in _SALT_LAST or encoded[52] not in _DIGEST_LAST:
        raise ValueError("is not a valid bcrypt hash (its salt or digest is mis-encoded)")
    return cost


def read_regular_file(path: Path, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most MAX_FILE_BYTES (see ``exporter.config.files``)."""
    try:
        return files.read_bytes(path, MAX_FILE_BYTES)
    except files.FileProblem as exc:
        raise WebConfigError(f"{what} {path}: {exc.message}") from None


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the web config; WebConfigError lists every problem with its line."""
    try:
        text = files.read_text(path, MAX_FILE_BYTES)
    except files.FileProblem as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise WebConfigError(f"{where}: {exc.message}") from None
    try:
        loaded = yamlpos.load(text, _TextLoader)
    except yamlpos.YamlSyntaxError as exc:
        raise WebConfigError(f"{exc.where(str(path))}: invalid YAML: {exc.message}") from None
    lines = {p: line for p, line in loaded.duplicates}
    problems = [(p, "duplicate key") for p, _ in loaded.duplicates]
    data = loaded.data if loaded.data is not None else {}
    if not isinstance(data, dict):
        raise WebConfigError(f"{path}:1: (top level): the web config must be a mapping of keys")
    cfg = None
    try:
        cfg = WebConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = document_path(err["loc"])
            problems.append((loc, plain_message(err, WebConfig)))
    if cfg is not None:
        problems += semantic_problems(cfg)
    if problems:
        out = []
        for loc, msg in problems:
            line = lines.get(loc) if msg == "duplicate key" else loaded.line_for(loc)
            out.append(f"{path}:{line}: {yamlpos.format_path(loc)}: {msg}" if line else f"{path}: {msg}")
        raise WebConfigError("\n".join(out))
    assert cfg is not None
    return cfg


def semantic_problems(cfg: WebConfig) -> list[tuple[yamlpos.Path, str]]:
    """What exporter-toolkit refuses beyond the shape of the file, with where it is."""
    out: list[tuple[yamlpos.Path, str]] = []
    for user, hashed in cfg.basic_auth_users.items():
        try:
            bcrypt_cost(hashed)
        except ValueError as exc:
            out.append((("basic_auth_users", user), f"the password hash of user {user!r} {exc}"))
    for name, value in cfg.http_server_config.headers.items():
        where = ("http_server_config", "headers", name)
        if name not in HEADER_VALUES:
            out.append(
                (where, f"HTTP header {name!r} can not be configured (allowed: {', '.join(HEADER_VALUES)})")
            )
        elif HEADER_VALUES[name] and value not in HEADER_VALUES[name]:
            allowed = " or ".join(repr(v) for v in HEADER_VALUES[name])
            out.append((where, f"invalid value for {name}: expected {allowed}, got {value!r}"))
    out += _tls_problems(cfg)
    return out


def _tls_problems(cfg: WebConfig) -> list[tuple[yamlpos.Path, str]]:
    tls, base = cfg.tls_server_config, ("tls_server_config",)
    out: list[tuple[yamlpos.Path, str]] = []
    for i, name in enumerate(tls.cipher_suites):
        if name not in TLS12_CIPHERS and name not in TLS13_CIPHERS:
            out.append(((*base, "cipher_suites", i), f"unknown cipher {name!r}"))
    for i, name in enumerate(tls.curve_preferences):
        if name not in CURVES:
            out.append(
                ((*base, "curve_preferences", i), f"unknown curve {name!r} (known: {', '.join(CURVES)})")
            )
    if all(c in CURVES for c in tls.curve_preferences) and 1 < len(set(tls.curve_preferences)) < len(CURVES):
        out.append(
            (
                (*base, "curve_preferences"),
                "Python's ssl can restrict the handshake to one curve, not to a subset: list one curve, or all four",
            )
        )
    for key in ("min_version", "max_version"):
        version = getattr(tls, key)
        if version not in TLS_VERSIONS:
            out.append(((*base, key), f"unknown TLS version {version!r} (known: TLS12, TLS13)"))
        elif version in ("TLS10", "TLS11"):
            out.append(
                (
                    (*base, key),
                    f"{version} is not supported: OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security "
                    "level (and RFC 8996 retires them); use TLS12 or TLS13",
                )
            )
    versions = (tls.min_version, tls.max_version)
    if all(v in TLS_VERSIONS for v in versions) and TLS_VERSIONS.index(versions[0]) > TLS_VERSIONS.index(
        versions[1]
    ):
        out.append(((*base, "min_version"), "min_version is above max_version: no client could connect"))
    if not tls.enabled:
        return out
    if not tls.cert_file and not tls.cert:
        out.append((base, "missing one of cert or cert_file"))
    if not tls.key_file and not tls.key:
        out.append((base, "missing one of key or key_file"))
    if out:
        return out
    auth = tls.client_auth_type or "NoClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        return [
            (
                (*base, "client_auth_type"),
                f"invalid client_auth_type {auth!r} (one of {', '.join(CLIENT_AUTH_TYPES)})",
            )
        ]
    if auth in ("RequireAnyClientCert", "RequireClientCert") and not (tls.client_ca_file or tls.client_ca):
        out.append(
            (
                (*base, "client_auth_type"),
                f"{auth} without client_ca_file cannot work here: Python's ssl verifies every client "
                "certificate it asks for; put the clients' CA (or their self-signed certificates) in client_ca_file",
            )
        )
    if tls.client_allowed_sans is not None and auth in ("NoClientCert", "RequestClientCert"):
        out.append(
            (
                (*base, "client_allowed_sans"),
                f"needs a client_auth_type that verifies client certificates, not {auth}",
            )
        )
    if (
        cfg.http_server_config.http2
        and tls.cipher_suites
        and tls.min_version != "TLS13"
        and not any(c in tls.cipher_suites for c in HTTP2_REQUIRED_CIPHERS)
    ):
        out.append(
            (
                (*base, "cipher_suites"),
                "with http2 enabled, cipher_suites must include TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or "
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (as exporter-toolkit requires), or set http2: false",
            )
        )
    return out
