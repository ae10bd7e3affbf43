"""The web config (exporter-toolkit format) and basic auth, without a server."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest

from exporter import webconfig
from exporter.webconfig import BasicAuth, TlsServerConfig, WebConfigError, load_web_config, ssl_context
from tests.helpers import need_binary


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_full_file_parses(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text(
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n"
        "http_server_config:\n  http2: false\n  headers: {X-Frame-Options: deny}\n"
        "basic_auth_users:\n  alice: $2y$10$abcdefghijklmnopqrstuuJc7Yx5nVsqQ7yqBq5Y2s3kQ7U0n5W1e\n"
    )
    cfg = load_web_config(f)
    assert cfg.tls_server_config is not None and cfg.tls_server_config.min_version == "TLS13"
    assert cfg.http_server_config.headers == {"X-Frame-Options": "deny"}
    assert list(cfg.basic_auth_users) == ["alice"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users:\n  bob: hunter2\n", "bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
            "client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
            "unknown or unsupported",
        ),
        ("basic_auth_users: [1]\n", "basic_auth_users"),
        ("a: [\n", "invalid YAML"),
    ],
)
def test_bad_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "web.yml"
    f.write_text(text)
    with pytest.raises(WebConfigError, match=message) as err:
        load_web_config(f)
    assert "hunter2" not in str(err.value)


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
    with pytest.raises(WebConfigError, match=rf"^{f}:3: invalid YAML: "):
        load_web_config(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path / "nope.yml")


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(
        [
            need_binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=t",
            "-keyout",
            "t.key",
            "-out",
            "t.crt",
        ],
        cwd=d,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return d


@pytest.mark.parametrize(
    ("auth", "ca", "mode"),
    [
        ("NoClientCert", False, ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", True, ssl.CERT_OPTIONAL),
        ("RequestClientCert", True, ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", True, ssl.CERT_REQUIRED),
        ("RequireAnyClientCert", True, ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_modes(cert_dir: Path, auth: str, ca: bool, mode: ssl.VerifyMode) -> None:
    cfg = TlsServerConfig.model_validate(
        {
            "cert_file": "t.crt",
            "key_file": "t.key",
            "client_auth_type": auth,
            "client_ca_file": "t.crt" if ca else None,
        }
    )
    assert ssl_context(cfg, cert_dir).verify_mode == mode


def test_client_ca_and_auth_type_go_together(cert_dir: Path) -> None:
    with pytest.raises(WebConfigError, match="client_auth_type is NoClientCert"):
        ssl_context(TlsServerConfig(cert_file="t.crt", key_file="t.key", client_ca_file="t.crt"), cert_dir)
    with pytest.raises(WebConfigError, match="needs a client_ca_file"):
        cfg = TlsServerConfig.model_validate(
            {"cert_file": "t.crt", "key_file": "t.key", "client_auth_type": "RequireAndVerifyClientCert"}
        )
        ssl_context(cfg, cert_dir)
    with pytest.raises(WebConfigError, match="cannot load cert_file"):
        ssl_context(TlsServerConfig(cert_file="x.crt", key_file="x.key"), cert_dir)


def test_empty_file_means_plain_http(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text("")
    sec = webconfig.WebSecurity.from_file(f)
    assert sec.ssl is None and not sec.auth.users and not sec.headers


def test_reload_applies_only_a_valid_file(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    f.write_text(f"basic_auth_users:\n  alice: {hashed}\n")
    sec = webconfig.WebSecurity.from_file(f)
    assert list(sec.auth.users) == ["alice"]
    f.write_text(f"basic_auth_users:\n  bob: {hashed}\nhttp_server_config:\n  headers: {{X-A: b}}\n")
    apply = sec.prepare_reload()
    assert list(sec.auth.users) == ["alice"]  # nothing changes before apply
    apply()
    assert list(sec.auth.users) == ["bob"] and sec.headers == {"X-A": "b"}
    f.write_text("basic_auth_users:\n  carol: plain\n")
    with pytest.raises(WebConfigError):
        sec.prepare_reload()
    f.write_text("tls_server_config:\n  cert_file: a\n  key_file: b\n")
    with pytest.raises(WebConfigError, match="needs a restart"):
        sec.prepare_reload()
    assert list(sec.auth.users) == ["bob"]


def test_basic_auth_checks_and_caches_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({"u": hashed})
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed_pw: bytes) -> bool:
        calls.append(password)
        return real(password, hashed_pw)

    monkeypatch.setattr(bcrypt, "checkpw", counting)

    async def run() -> list[bool]:
        return [
            await auth.check(basic("u", "pw")),
            await auth.check(basic("u", "pw")),
            await auth.check(basic("u", "wrong")),
            await auth.check(basic("nobody", "pw")),
            await auth.check("Bearer abc"),
            await auth.check("Basic !!!notbase64"),
            await auth.check("Basic " + base64.b64encode(b"nocolon").decode()),
        ]

    assert asyncio.run(run()) == [True, True, False, False, False, False, False]
    # The repeated good credentials were verified once; the unknown user still cost a bcrypt check.
    assert calls == [b"pw", b"wrong", b"pw"]


def test_tls_reload_reconfigures_the_live_context(cert_dir: Path) -> None:
    f = cert_dir / "web.yml"
    f.write_text("tls_server_config:\n  cert_file: t.crt\n  key_file: t.key\n")
    sec = webconfig.WebSecurity.from_file(f)
    ctx = sec.ssl
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
    f.write_text(
        "tls_server_config:\n  cert_file: t.crt\n  key_file: t.key\n  client_ca_file: t.crt\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n"
    )
    sec.prepare_reload()()
    live = sec.ssl
    assert live is ctx  # the server keeps its context; new handshakes see the change
    assert live.verify_mode == ssl.CERT_REQUIRED and live.minimum_version == ssl.TLSVersion.TLSv1_3
