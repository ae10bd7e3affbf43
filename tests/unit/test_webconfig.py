"""The web config (exporter-toolkit format) and its TLS context, without a server (basic auth:
test_webconfig_auth.py)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import bcrypt
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.web.webconfig import WebConfigError, WebSecurity, bcryptlane, load_web_config
from exporter.web.webconfig.auth import Verdict
from exporter.web.webconfig.model import TlsServerConfig, bcrypt_cost, parse_go_duration
from exporter.web.webconfig.tls import build_tls
from tests.pki import issue, make_ca, self_signed

HASH4 = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


def load(tmp_path: Path, text: str) -> str:
    """The error message for ``text`` as a web config (fails the test if it loads)."""
    f = tmp_path / "web.yml"
    f.write_text(text)
    with pytest.raises(WebConfigError) as err:
        WebSecurity.from_file(f).close()
    return str(err.value)


def test_full_file_parses_with_go_scalar_rules(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text(
        "tls_server_config:\n  min_version: TLS13\n  prefer_server_cipher_suites: false\n"
        "http_server_config:\n  http2: false\n  headers:\n    X-XSS-Protection: 1\n"
        "    Content-Security-Policy: >\n      default-src 'self'\n"
        "rate_limit:\n  interval: 1m30s\n  burst: 20\n"
        f"basic_auth_users:\n  alice: {HASH4}\n  1234: {HASH4}\n"
    )
    cfg = load_web_config(f)
    assert cfg.tls_server_config.min_version == "TLS13" and not cfg.tls_server_config.enabled
    assert cfg.tls_server_config.prefer_server_cipher_suites is False
    assert cfg.http_server_config.http2 is False
    # A YAML number is the header's text; a folded string's line break becomes a space (as in Go).
    assert cfg.http_server_config.headers == {
        "X-XSS-Protection": "1",
        "Content-Security-Policy": "default-src 'self' ",
    }
    assert cfg.rate_limit.interval == 90 and cfg.rate_limit.burst == 20
    assert list(cfg.basic_auth_users) == ["alice", "1234"]


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n",
            [":1: (top level): the web config must be a mapping"],
        ),
        (
            "tls_server_config:\n  cert_filse: a.crt\n",
            [":2: tls_server_config.cert_filse: unknown key; did you mean 'cert_file'?"],
        ),
        ("basic_auth_users: [1]\n", [":1: basic_auth_users:"]),
        ("a: [\n", ["invalid YAML"]),
        (
            "basic_auth_users:\n  john: doe\n",
            [":2: basic_auth_users.john: ", "'john'", "is not a bcrypt hash"],
        ),
        (f"basic_auth_users:\n  ann: {HASH4}\n  ann: {HASH4}\n", [":3: basic_auth_users.ann: duplicate key"]),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            ["invalid value for X-Cont"],
        ),
        ("http_server_config:\n  headers:\n    X-Frame-Options: foo\n", [":3:", "'deny' or 'sameorigin'"]),
        (
            "http_server_config:\n  headers:\n    Content-Type: foo\n",
            ["'Content-Type' can not be configured"],
        ),
        ("http_server_config:\n  headers:\n    x-frame-options: deny\n", ["'x-frame-options' can not be"]),
        (
            "tls_server_config:\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n",
            ["unknown cipher"],
        ),
        ("tls_server_config:\n  curve_preferences: [CurveP257]\n", ["unknown curve 'CurveP257'"]),
        ("tls_server_config:\n  curve_preferences: [CurveP256, X25519]\n", ["list one curve, or all four"]),
        ("tls_server_config:\n  min_version: TLS111\n", [":2: tls_server_config.min_version: unknown TLS"]),
        ("tls_server_config:\n  min_version: TLS10\n", ["TLS10 is not supported", "use TLS12 or TLS13"]),
        ("tls_server_config:\n  max_version: TLS11\n", ["TLS11 is not supported"]),
        (
            "tls_server_config:\n  min_version: TLS13\n  max_version: TLS12\n",
            ["min_version is above max_version"],
        ),
        ("tls_server_config:\n  cert_file: ''\n  key_file: s.key\n", ["missing one of cert or cert_file"]),
        ("tls_server_config:\n  cert: ''\n  key_file: s.key\n", ["missing one of cert or cert_file"]),
        ("tls_server_config:\n  cert_file: s.crt\n  key_file: ''\n", ["missing one of key or key_file"]),
        ("tls_server_config:\n  cert_file: s.crt\n  key: ''\n", ["missing one of key or key_file"]),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: ''\n  client_auth_type: x\n",
            ["missing one of cert"],
        ),
        (
            "tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: Sometimes\n",
            ["invalid client_auth_type"],
        ),
        ("rate_limit:\n  interval: 5\n", ["expected a duration with a unit"]),
        ("rate_limit:\n  interval: 1s\n  burst: -1\n", [":3: rate_limit.burst:"]),
    ],
)
def test_bad_files_are_explained_with_file_line_and_key(
    tmp_path: Path, text: str, messages: list[str]
) -> None:
    message = load(tmp_path, text)
    assert message.startswith(str(tmp_path / "web.yml"))
    for part in messages:
        assert part in message
    assert "doe" not in message  # a password (hash) is never echoed


def test_keys_written_twice_are_reported_as_in_the_main_config(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    hashed = "$2y$10$abcdefghijklmnopqrstuuJc7Yx5nVsqQ7yqBq5Y2s3kQ7U0n5W1e"
    # A second entry for a user would silently replace the first password.
    f.write_text(
        f"basic_auth_users:\n  alice: {hashed}\n  alice: {hashed}\n"
        "http_server_config: {}\nhttp_server_config: {}\n"
    )
    with pytest.raises(WebConfigError) as err:
        load_web_config(f)
    assert str(err.value).splitlines() == [
        f"{f}:3: basic_auth_users.alice: duplicate key",
        f"{f}:5: http_server_config: duplicate key",
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text("basic_auth_users:\n  a: [\n")
    with pytest.raises(WebConfigError) as err:
        load_web_config(f)
    assert str(err.value) == (
        f"{f}:2:6: invalid YAML: this '[' is never closed: the file ends before its ']' "
        "(YAML said: expected the node content, but found '<stream end>')"
    )


@pytest.mark.parametrize(
    ("hashed", "reason"),
    [
        ("$2y$10$short", "is not a bcrypt hash"),
        ("$2y$03$" + "a" * 53, "cost 3 is outside 4..31"),
        ("$2y$32$" + "a" * 53, "cost 32 is outside 4..31"),
        ("$2$10$" + "a" * 53, "$2$ bcrypt variant"),
        ("$2y$10$" + "a" * 53, "mis-encoded"),
        ("plain", "is not a bcrypt hash"),
    ],
)
def test_invalid_bcrypt_hashes_are_refused(hashed: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("$", r"\$")):
        bcrypt_cost(hashed)


def test_valid_bcrypt_hashes_of_every_prefix_load() -> None:
    for prefix in ("$2a$", "$2b$", "$2x$", "$2y$"):
        assert bcrypt_cost(HASH4.replace("$2b$", prefix, 1)) == 4


def test_missing_and_special_files(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read: No such file"):
        load_web_config(tmp_path / "nope.yml")
    with pytest.raises(WebConfigError, match="not a regular file"):
        load_web_config(Path("/dev/zero"))


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text("")
    sec = WebSecurity.from_file(f)
    assert sec.tls is None and not sec.auth.users and not sec.headers and sec.limiter is None
    sec.close()


@pytest.mark.parametrize(
    ("fields", "enabled"),
    [
        ({}, False),
        ({"min_version": "TLS12", "prefer_server_cipher_suites": True}, False),
        ({"cert_file": "s.crt", "key_file": "s.key"}, True),
        ({"cert": "c", "key": "k"}, True),
        ({"client_ca_file": "ca.crt"}, True),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, True),
    ],
)
def test_which_settings_turn_tls_on(fields: dict[str, object], enabled: bool) -> None:
    assert TlsServerConfig.model_validate(fields).enabled is enabled


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("0s", 0.0), ("1s", 1.0), ("250ms", 0.25), ("1h2m", 3720.0), ("1.5s", 1.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


# --- TLS contexts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca("unit-ca")
    issue(ca, "server", ips=["127.0.0.1"]).write(d, "server")
    (d / "ca.crt").write_text(ca.cert_pem)
    (d / "empty.pem").write_text("")
    return d


def tls(pki: Path, **fields: object) -> ssl.SSLContext:
    cfg = TlsServerConfig.model_validate({"cert_file": "server.crt", "key_file": "server.key", **fields})
    return build_tls(cfg, pki).context


@pytest.mark.parametrize(
    ("auth_type", "ca", "mode"),
    [
        ("NoClientCert", False, ssl.CERT_NONE),
        ("RequestClientCert", False, ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", False, ssl.CERT_OPTIONAL),
        ("VerifyClientCertIfGiven", True, ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", False, ssl.CERT_REQUIRED),
        ("RequireAndVerifyClientCert", True, ssl.CERT_REQUIRED),
        ("RequireAnyClientCert", True, ssl.CERT_REQUIRED),
        ("RequireClientCert", True, ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_modes(pki: Path, auth_type: str, ca: bool, mode: ssl.VerifyMode) -> None:
    ctx = tls(pki, client_auth_type=auth_type, client_ca_file="ca.crt" if ca else "")
    assert ctx.verify_mode == mode
    # Without a client CA, verifying modes trust the system's CAs, as Go does.
    assert (ctx.cert_store_stats()["x509_ca"] > 0) == (ca or mode != ssl.CERT_NONE)


def test_client_ca_rules(pki: Path, tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="client CA is configured without a client_auth_type"):
        tls(pki, client_ca_file="empty.pem")
    with pytest.raises(WebConfigError, match=r"client_ca_file .*somefile: cannot read: No such file"):
        tls(pki, client_ca_file="somefile")
    with pytest.raises(WebConfigError, match="no PEM certificate found"):
        tls(pki, client_ca_file="empty.pem", client_auth_type="RequireAndVerifyClientCert")
    for bad in ({"cert_file": "somefile"}, {"key_file": "somefile"}):
        with pytest.raises(WebConfigError, match="somefile: cannot read: No such file"):
            tls(pki, **bad)


def test_default_tls12_suites_are_ecdhe_aead_only(pki: Path) -> None:
    names = {c["name"] for c in tls(pki).get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in names)
    assert tls(pki).minimum_version == ssl.TLSVersion.TLSv1_2


def test_cipher_names_map_to_openssl_and_tls13_names_are_accepted(pki: Path) -> None:
    ctx = tls(pki, cipher_suites=["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"])
    assert {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"} == {"ECDHE-RSA-AES256-SHA"}
    only13 = tls(pki, cipher_suites=["TLS_AES_128_GCM_SHA256"])
    assert only13.minimum_version == ssl.TLSVersion.TLSv1_3
    assert tls(pki, prefer_server_cipher_suites=False).options & ssl.OP_CIPHER_SERVER_PREFERENCE == 0
    assert tls(pki).options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_inline_cert_key_and_client_ca(pki: Path) -> None:
    ca = make_ca("inline-ca")
    leaf = issue(ca, "inline")
    cfg = TlsServerConfig.model_validate(
        {
            "cert": leaf.cert_pem,
            "key": leaf.key_pem,
            "client_ca": ca.cert_pem,
            "client_auth_type": "RequireAndVerifyClientCert",
        }
    )
    built = build_tls(cfg, pki)
    assert built.context.cert_store_stats()["x509_ca"] == 1
    assert built.client_ca_expiry == pytest.approx(ca.cert.not_valid_after_utc.timestamp())
    assert built.server_expiry == pytest.approx(leaf.cert.not_valid_after_utc.timestamp())


def test_encrypted_key_is_refused_without_prompting(pki: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    leaf = issue(make_ca("enc"), "enc")
    encrypted = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    cfg = TlsServerConfig.model_validate({"cert": leaf.cert_pem, "key": encrypted})
    with pytest.raises(WebConfigError, match="encrypted"):
        build_tls(cfg, pki)


def test_ca_whose_key_usage_lacks_client_auth_is_warned_about(pki: Path) -> None:
    anyeku = make_ca("any-eku", eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    cfg = TlsServerConfig.model_validate(
        {
            "cert_file": "server.crt",
            "key_file": "server.key",
            "client_ca": anyeku.cert_pem + make_ca("plain").cert_pem,
            "client_auth_type": "RequireAndVerifyClientCert",
        }
    )
    warnings = build_tls(cfg, pki).warnings
    assert len(warnings) == 1 and "any-eku" in warnings[0] and "clientAuth" in warnings[0]


def test_client_allowed_sans_match_any_kind() -> None:
    leaf = self_signed("c")
    cfg = TlsServerConfig.model_validate(
        {
            "cert": leaf.cert_pem,
            "key": leaf.key_pem,
            "client_ca": leaf.cert_pem,
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_allowed_sans": ["one", "2001:db8::1", "spiffe://x/y"],
        }
    )
    settings = build_tls(cfg, Path("."))
    assert settings.client_allowed({"subjectAltName": (("DNS", "one"),)})
    assert settings.client_allowed({"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1\n"),)})
    assert settings.client_allowed({"subjectAltName": (("URI", "spiffe://x/y"),)})
    assert not settings.client_allowed({"subjectAltName": (("DNS", "two"), ("email", "one@x"))})
    assert not settings.client_allowed({})


def test_reload_builds_a_new_context_and_applies_only_a_valid_file(pki: Path) -> None:
    f = pki / "web.yml"
    f.write_text(
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  a: {HASH4}\n"
    )
    sec = WebSecurity.from_file(f)
    first = sec.tls
    assert first is not None
    f.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  max_version: TLS12\nbasic_auth_users:\n  b: {HASH4}\n"
    )
    apply = sec.prepare_reload()
    assert sec.tls is first and list(sec.auth.users) == [b"a"]  # nothing changes before apply
    apply()
    assert sec.tls is not first and sec.tls is not None
    # The old context is untouched (connections made with it keep it); the new one is what the file says.
    assert (
        first.context.verify_mode == ssl.CERT_NONE and first.context.maximum_version == ssl.TLSVersion.TLSv1_3
    )
    assert sec.tls.context.verify_mode == ssl.CERT_REQUIRED
    assert sec.tls.context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert list(sec.auth.users) == [b"b"]
    f.write_text("basic_auth_users:\n  carol: plain\n")
    with pytest.raises(WebConfigError, match="carol"):
        sec.prepare_reload()
    f.write_text("")
    with pytest.raises(WebConfigError, match="needs a restart"):
        sec.prepare_reload()
    assert list(sec.auth.users) == [b"b"]
    sec.close()


def test_a_reload_keeps_the_rate_limit_it_does_not_change(tmp_path: Path) -> None:
    """Reloading an unchanged rate limit does not refill its bucket."""
    f = tmp_path / "web.yml"
    f.write_text("rate_limit:\n  interval: 1h\n  burst: 1\n")
    sec = WebSecurity.from_file(f)
    assert sec.limiter is not None and sec.limiter.allow() and not sec.limiter.allow()
    sec.prepare_reload()()
    assert not sec.limiter.allow()  # the bucket is as it was
    f.write_text("rate_limit:\n  interval: 1h\n  burst: 2\n")
    sec.prepare_reload()()
    assert sec.limiter.allow()  # a new limit starts full
    f.write_text("")
    sec.prepare_reload()()
    assert sec.limiter is None
    sec.close()


def test_a_reload_keeps_the_logins_of_users_it_does_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reloading unchanged users does not make every scraper's next request pay a bcrypt
    check again."""
    checks: list[bytes] = []

    def counted(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return bcrypt.checkpw(password, hashed)

    monkeypatch.setattr(bcryptlane, "checkpw", counted)
    f = tmp_path / "web.yml"
    f.write_text(f"basic_auth_users:\n  a: {HASH4}\n")
    sec = WebSecurity.from_file(f)
    login = "Basic " + base64.b64encode(b"a:pw").decode()

    async def logins() -> None:
        assert await sec.auth.check(login) is Verdict.OK
        await asyncio.sleep(0.1)  # the other lane's check of it, if any, is over

    asyncio.run(logins())
    checked = len(checks)
    sec.prepare_reload()()
    asyncio.run(logins())
    assert len(checks) == checked  # the login is still known
    f.write_text(f"basic_auth_users:\n  a: {HASH4}\n  b: {HASH4}\n")
    sec.prepare_reload()()
    asyncio.run(logins())
    assert len(checks) > checked  # new users: logins are checked again
    sec.close()


def test_documented_example_lists_keys_the_loader_accepts(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/reliability-and-security.md").read_text()
    section = page[page.index("- **`--web.config.file`**") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("  ```\n", 10)]
    text = "\n".join(line.removeprefix("  ") for line in block.splitlines())
    f = tmp_path / "web.yml"
    f.write_text(text.replace("$2y$10$...", HASH4))
    cfg = load_web_config(f)
    documented = set(cfg.tls_server_config.model_fields_set) - {"cert", "key", "client_ca"}
    assert documented | {"cert", "key", "client_ca"} == set(TlsServerConfig.model_fields)
    assert cfg.rate_limit.burst == 20 and len(cfg.http_server_config.headers) == 5
