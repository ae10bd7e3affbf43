"""``--web.config.file`` measured against exporter-toolkit's behaviour, case by case.

Each case states a web config, what a client does, and what exporter-toolkit does with
it; the test asserts that this exporter does the same, or (where Python's ssl cannot)
the documented difference and its workaround. The certificates are made here, the
server is the daemon's own serving path on a loopback port (tests/integration/live_web.py),
and every case about a handshake makes a real TLS connection.

The cases follow exporter-toolkit's test tables (tls_config_test.go: TestYAMLFiles,
TestServerBehaviour, TestUsers, TestConfigReloading; handler_test.go), then the
differences docs/reliability-and-security.md lists under Security.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.web.limits import DEFAULT_LIMITS
from exporter.web.webconfig import WebConfigError, WebSecurity
from tests.helpers import parse, promtool_check_metrics, wait_until
from tests.integration.live_web import LiveServer, client_context, get, live
from tests.pki import Issued, issue, make_ca, self_signed

pytestmark = pytest.mark.integration

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode().replace("$2b$", "$2y$", 1)


@dataclass
class Pki:
    dir: Path
    ca: Issued  # signs the server certificate (RSA key, SAN 127.0.0.1)
    client: Issued  # self-signed client certificate (its own CA)
    client2: Issued  # self-signed, SAN DNS test3
    users: dict[str, str]  # user -> password; their hashes are in users.yml

    def web(self, name: str, text: str) -> Path:
        path = self.dir / f"{name}.yml"
        path.write_text(text)
        return path

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    @property
    def trust(self) -> ssl.SSLContext:
        return client_context(self.ca.cert_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("conformance")
    ca = make_ca("conformance-ca")
    issue(ca, "server", ips=["127.0.0.1"], key_kind="rsa").write(d, "server")
    client = self_signed("client")
    client.write(d, "client")
    client2 = self_signed("client2", dns=["test3"])
    client2.write(d, "client2")
    (d / "empty").write_text("")
    users = {"alice": "alice123", "bob": "bob123", "carol": "carol123", "dave": "dave123"}
    (d / "users.yml").write_text(
        "basic_auth_users:\n"
        + "".join(f"  {u}: {hashed(p, 4 + i)}\n" for i, (u, p) in enumerate(users.items()))
    )
    return Pki(d, ca, client, client2, users)


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


def start_error(path: Path) -> str:
    with pytest.raises(WebConfigError) as err:
        WebSecurity.from_file(path).close()
    return str(err.value)


# --- TestYAMLFiles: files exporter-toolkit refuses (or accepts) at start ------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("invalid structure", "hWkNKCp3\nTuEjdwNS\n", "must be a mapping"),
        ("invalid key", 'tls_server_config:\n  cert_filse: "server.crt"\n', "cert_filse: unknown key"),
        (
            "cert path empty",
            'tls_server_config:\n  cert_file: ""\n  key_file: server.key\n',
            "missing one of cert ",
        ),
        ("cert empty", 'tls_server_config:\n  cert: ""\n  key_file: server.key\n', "missing one of cert "),
        (
            "key path empty",
            'tls_server_config:\n  cert_file: server.crt\n  key_file: ""\n',
            "missing one of key ",
        ),
        ("key empty", 'tls_server_config:\n  cert_file: server.crt\n  key: ""\n', "missing one of key "),
        (
            "cert path and key path empty",
            'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: x\n',
            "missing one of cert ",
        ),
        (
            "cert path invalid",
            "tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n",
            "No such file",
        ),
        (
            "key path invalid",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: somefile\n",
            "No such file",
        ),
        (
            "both paths invalid",
            "tls_server_config:\n  cert_file: somefile\n  key_file: somefile\n",
            "No such file",
        ),
        ("client CA without policy", TLS + "  client_ca_file: empty\n", "without a client_auth_type"),
        ("client CA path invalid", TLS + "  client_ca_file: somefile\n", "No such file"),
        ("invalid user list", TLS + "basic_auth_users:\n  john: doe\n", "user 'john' is not a bcrypt hash"),
        (
            "bad cipher",
            TLS + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n",
            "unknown cipher",
        ),
        ("bad curve", TLS + "  curve_preferences: [CurveP257]\n", "unknown curve"),
        ("bad TLS version", TLS + "  min_version: TLS111\n", "unknown TLS version"),
        ("invalid ClientAuth", TLS + "  client_auth_type: Sometimes\n", "invalid client_auth_type"),
    ],
)
def test_files_refused_at_start(pki: Pki, name: str, text: str, expected: str) -> None:
    path = pki.web(name.replace(" ", "_"), text)
    assert expected in start_error(path)


def test_missing_file_is_refused(pki: Pki) -> None:
    assert "cannot read: No such file" in start_error(pki.dir / "somefile")


def test_empty_file_serves_plain_http(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("empty_config", "")) as s:
        assert get(s.http + "/-/healthy").status_code == 200


# --- TestServerBehaviour --------------------------------------------------------------


def test_without_web_config_tls_clients_fail(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, None) as s:
        assert get(s.http + "/-/healthy").status_code == 200
        with pytest.raises(ssl.SSLError):
            s.handshake(pki.trust)


GOOD = (
    TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
)  # exporter-toolkit's main good file: no client CA


def test_tls_config_refuses_plain_http_and_serves_tls(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("good", GOOD)) as s:
        # Go's net/http answers plain HTTP on a TLS port with a short 400.
        plain = get(s.http + "/-/healthy")
        assert plain.status_code == 400 and plain.text == "Client sent an HTTP request to an HTTPS server.\n"
        assert get(s.https + "/-/healthy", pki.trust).status_code == 200
        # No client_ca_file: a certificate that is given is verified against the system's CAs, as in Go,
        # so one from a private CA is refused.
        with pytest.raises(OSError):
            s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("client")))


def test_inline_cert_and_key(pki: Pki, tmp_path: Path) -> None:
    leaf = issue(pki.ca, "inline", ips=["127.0.0.1"])
    text = (
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_auth_type: VerifyClientCertIfGiven\n".format(
            "".join(f"    {line}\n" for line in leaf.cert_pem.splitlines()),
            "".join(f"    {line}\n" for line in leaf.key_pem.splitlines()),
        )
    )
    with live(tmp_path, pki.web("inline", text)) as s:
        conn = s.handshake(pki.trust)
        served = conn.server_certificate
        assert served.serial_number == leaf.cert.serial_number
        conn.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1.* is deprecated:DeprecationWarning")
def test_tls11_client_is_refused(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("good", GOOD)) as s:
        with pytest.raises(ssl.SSLError):
            s.handshake(client_context(pki.ca.cert_pem, max_version=ssl.TLSVersion.TLSv1_1))
        # A client that really offers TLS 1.1 gets Go's protocol_version alert.
        old = client_context(
            pki.ca.cert_pem, ciphers="DEFAULT@SECLEVEL=0", max_version=ssl.TLSVersion.TLSv1_1
        )
        old.minimum_version = ssl.TLSVersion.TLSv1
        with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
            s.handshake(old)


ALL_CIPHERS = "\n".join(
    f"  - {c}"
    for c in (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    )
)


def test_all_ciphers(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("all_ciphers", GOOD + "  cipher_suites:\n" + ALL_CIPHERS + "\n")) as s:
        s.handshake(pki.trust).close()
        # The CBC suites listed are really offered in TLS 1.2.
        conn = s.handshake(client_context(pki.ca.cert_pem, ciphers="ECDHE-RSA-AES128-SHA", max_version=TLS12))
        assert conn.cipher == "ECDHE-RSA-AES128-SHA"
        conn.close()


SOME_CIPHERS = GOOD + (
    "  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
    "  min_version: TLS12\n  max_version: TLS12\n"
)
NO_ORDER = GOOD + (
    "  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"
    "  prefer_server_cipher_suites: false\n  min_version: TLS12\n  max_version: TLS12\n"
)
AES128 = "ECDHE-RSA-AES128-GCM-SHA256"
AES256 = "ECDHE-RSA-AES256-GCM-SHA384"


@pytest.mark.parametrize(
    ("name", "text", "client_ciphers", "chosen"),
    [
        ("some ciphers", SOME_CIPHERS, AES128, AES128),
        ("no common cipher", SOME_CIPHERS, "ECDHE-RSA-AES256-SHA", None),
        # The server's order wins by default (prefer_server_cipher_suites: true) ...
        ("server chooses", SOME_CIPHERS, f"{AES256}:{AES128}", AES128),
        # ... and the client's when it is false.
        ("client chooses", NO_ORDER, f"{AES128}:{AES256}", AES128),
        ("server order honoured", NO_ORDER.replace("false", "true"), f"{AES128}:{AES256}", AES256),
    ],
)
def test_cipher_suites(
    pki: Pki, tmp_path: Path, name: str, text: str, client_ciphers: str, chosen: str | None
) -> None:
    with live(tmp_path, pki.web(name.replace(" ", "_"), text)) as s:
        ctx = client_context(pki.ca.cert_pem, ciphers=client_ciphers)
        if chosen is None:
            with pytest.raises(ssl.SSLError, match="SSLV3_ALERT_HANDSHAKE_FAILURE"):
                s.handshake(ctx)
            return
        conn = s.handshake(ctx)
        assert conn.cipher == chosen
        conn.close()


def test_curves(pki: Pki, tmp_path: Path) -> None:
    every = GOOD + "  curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n"
    with live(tmp_path, pki.web("all_curves", every)) as s:
        s.handshake(pki.trust).close()
    one = GOOD + "  min_version: TLS13\n  curve_preferences: [CurveP521]\n"
    with live(tmp_path, pki.web("some_curves", one)) as s:
        s.handshake(client_context(pki.ca.cert_pem, curve="secp521r1")).close()
        with pytest.raises(ssl.SSLError, match="SSLV3_ALERT_HANDSHAKE_FAILURE"):
            s.handshake(client_context(pki.ca.cert_pem, curve="secp384r1"))


NO_HTTP2_CIPHER = (
    GOOD + "  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\n"
)


def test_http2_cipher_rule(pki: Pki, tmp_path: Path) -> None:
    # Go's HTTP/2 server needs an AES-128-GCM suite in a TLS 1.2 list; with http2 off it does not.
    assert "must include TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" in start_error(pki.web("h2", NO_HTTP2_CIPHER))
    text = NO_HTTP2_CIPHER + "http_server_config:\n  http2: false\n"
    with live(tmp_path, pki.web("no_h2", text)) as s:
        conn = s.handshake(pki.trust)
        assert conn.cipher == AES256
        conn.close()


HEADERS = (
    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n"
    "    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n"
    "    Content-Security-Policy: \"default-src 'self' *.test.example.net\"\n"
)
EXPECTED_HEADERS = {
    "x-frame-options": "deny",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1",
    "content-security-policy": "default-src 'self' *.test.example.net",
}


def test_headers_are_set(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("headers", HEADERS)) as s:
        resp = get(s.http + "/metrics")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(
            "text/plain; version=0.0.4"
        )
        assert {k: resp.headers.get(k) for k in EXPECTED_HEADERS} == EXPECTED_HEADERS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("X-Content-Type-Options: sniff", "invalid value for X-Content-Type-Options"),
        ("X-Frame-Options: foo", "invalid value for X-Frame-Options"),
        ("Content-Type: foo", "'Content-Type' can not be configured"),
        ("Content-Length: '1'", "'Content-Length' can not be configured"),
        ("Transfer-Encoding: chunked", "'Transfer-Encoding' can not be configured"),
    ],
)
def test_headers_refused(pki: Pki, header: str, expected: str) -> None:
    text = f"http_server_config:\n  headers:\n    {header}\n"
    assert expected in start_error(pki.web("bad_header", text))


def test_require_any_client_cert(pki: Pki, tmp_path: Path) -> None:
    # exporter-toolkit accepts any certificate here without verifying it; Python's ssl cannot ask for
    # a certificate without verifying it, so the file is refused with the workaround in the message ...
    text = TLS + "  client_auth_type: RequireAnyClientCert\n"
    assert "put the clients' CA (or their self-signed certificates) in client_ca_file" in start_error(
        pki.web("any", text)
    )
    # ... and the workaround works, with the key inline too.
    server_key = "".join(f"    {line}\n" for line in (pki.dir / "server.key").read_text().splitlines())
    for name, body in (
        ("any_ca", text + "  client_ca_file: client.crt\n"),
        (
            "any_inline_key",
            f"tls_server_config:\n  cert_file: server.crt\n  key: |\n{server_key}"
            "  client_auth_type: RequireAnyClientCert\n  client_ca_file: client.crt\n",
        ),
    ):
        with live(tmp_path, pki.web(name, body)) as s:
            s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("client"))).close()
            with pytest.raises(OSError):
                s.handshake(pki.trust)  # no certificate


def test_require_and_verify_client_cert(pki: Pki, tmp_path: Path) -> None:
    text = TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.crt\n"
    with live(tmp_path, pki.web("verify", text)) as s:
        s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("client"))).close()
        # The alerts Go sends (Go 1.21 and later): unknown_ca for a certificate of another CA, and for
        # no certificate certificate_required in TLS 1.3, bad_certificate in TLS 1.2.
        for version in (TLS13, TLS12):
            other_ca = client_context(pki.ca.cert_pem, cert=pki.cert("client2"), max_version=version)
            with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_UNKNOWN_CA"):
                s.handshake(other_ca)
        with pytest.raises(ssl.SSLError, match="TLSV13_ALERT_CERTIFICATE_REQUIRED"):
            s.handshake(pki.trust)
        with pytest.raises(ssl.SSLError, match="SSLV3_ALERT_BAD_CERTIFICATE"):
            s.handshake(client_context(pki.ca.cert_pem, max_version=TLS12))


@pytest.mark.parametrize(("sans", "accepted"), [(["one", "test3", "two"], True), (["bad"], False)])
def test_client_allowed_sans(pki: Pki, tmp_path: Path, sans: list[str], accepted: bool) -> None:
    text = (
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client2.crt\n"
        "  client_allowed_sans:\n" + "".join(f"    - {s}\n" for s in sans)
    )
    with live(tmp_path, pki.web("sans", text)) as s:
        ctx = client_context(pki.ca.cert_pem, cert=pki.cert("client2"))
        if accepted:
            conn = s.handshake(ctx)
            assert conn.status == "HTTP/1.1 200 OK"
            conn.close()
        else:
            with pytest.raises(OSError):
                s.handshake(ctx)
            assert s.security is not None and s.security.refused["client_san"] == 1


def test_rate_limit(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("nonblocking", "rate_limit:\n  interval: 0\n  burst: 0\n")) as s:
        assert {get(s.http + "/-/healthy").status_code for _ in range(10)} == {200}
    with live(tmp_path, pki.web("one_second", HEADERS + 'rate_limit:\n  interval: "1s"\n  burst: 0\n')) as s:
        resp = get(s.http + "/-/healthy")
        assert resp.status_code == 429 and resp.text == "Too Many Requests\n"
        assert resp.headers["x-frame-options"] == "deny"  # configured headers are on a 429 too
    with live(tmp_path, pki.web("burst", "rate_limit:\n  interval: 1h\n  burst: 3\n")) as s:
        assert [get(s.http + "/-/healthy").status_code for _ in range(5)] == [200, 200, 200, 429, 429]


# --- TestUsers ------------------------------------------------------------------------


@pytest.mark.parametrize("use_tls", [False, True])
def test_users(pki: Pki, tmp_path: Path, use_tls: bool) -> None:
    text = (TLS if use_tls else "") + (pki.dir / "users.yml").read_text()
    with live(tmp_path, pki.web(f"users_{use_tls}", text)) as s:
        url, ctx = (s.https, pki.trust) if use_tls else (s.http, None)
        resp = get(url + "/metrics", ctx)
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
        assert "inference_exporter" not in resp.text
        for user, password in pki.users.items():
            assert get(url + "/metrics", ctx, auth=(user, password)).status_code == 200, user
        assert get(url + "/metrics", ctx, auth=("dave", "bad")).status_code == 401
        assert get(url + "/metrics", ctx, auth=("nonexistent", "nonexistent")).status_code == 401


# --- handler_test.go --------------------------------------------------------------------


def test_basic_auth_cache_under_concurrent_logins(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("users_plain", (pki.dir / "users.yml").read_text())) as s:
        assert get(s.http + "/", auth=("alice", "alice123")).status_code == 200
        assert get(s.http + "/", auth=("alice", "alice1234")).status_code == 401
        codes: dict[str, list[int]] = {"good": [], "bad": []}
        start = threading.Event()

        def login(kind: str, password: str) -> None:
            start.wait(5)
            codes[kind].append(get(s.http + "/", auth=("alice", password)).status_code)

        threads = [threading.Thread(target=login, args=("good", "alice123")) for _ in range(40)]
        threads += [threading.Thread(target=login, args=("bad", "alice1234")) for _ in range(40)]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join(30)
    assert codes["good"] == [200] * 40
    # Wrong passwords are never cached, so some find the bcrypt queue full: refused with 503 where
    # exporter-toolkit would queue them (a documented difference); never a 200.
    assert len(codes["bad"]) == 40 and set(codes["bad"]) <= {401, 503} and 401 in codes["bad"]


def test_fake_password_of_the_dummy_hash_never_logs_in(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("users_plain", (pki.dir / "users.yml").read_text())) as s:
        for _ in range(2):  # cold, then whatever was cached
            assert get(s.http + "/", auth=("fakeuser", "fakepassword")).status_code == 401


def test_cache_cannot_be_poisoned_through_the_user_name(pki: Pki, tmp_path: Path) -> None:
    alice_hash = (pki.dir / "users.yml").read_text().split("alice: ")[1].split("\n")[0]
    with live(tmp_path, pki.web("users_plain", (pki.dir / "users.yml").read_text())) as s:
        assert get(s.http + "/", auth=("alice" + alice_hash, "fakepassword")).status_code == 401
        assert get(s.http + "/", auth=("alice", alice_hash + "fakepassword")).status_code == 401


# --- TestConfigReloading --------------------------------------------------------------


def test_config_change_applies_on_reload(pki: Pki, tmp_path: Path) -> None:
    path = pki.web("reloading", TLS + "  client_auth_type: RequireAndVerifyClientCert\n")
    with live(tmp_path, path) as s:
        with pytest.raises(OSError):
            s.handshake(pki.trust)
        # exporter-toolkit reads the file on every handshake; here a reload (SIGHUP, POST /-/reload) applies it.
        path.write_text(GOOD)
        assert s.reload() == (True, "config reloaded")
        s.handshake(pki.trust).close()


# --- the differences one by one: what now matches, and what is documented -----------------


def test_unquoted_scalars_and_numbers_in_headers(pki: Pki, tmp_path: Path) -> None:
    text = "http_server_config:\n  headers:\n    X-XSS-Protection: 0\n    Strict-Transport-Security: 1e3\n"
    with live(tmp_path, pki.web("scalars", text)) as s:
        resp = get(s.http + "/-/healthy")
        assert resp.headers["x-xss-protection"] == "0" and resp.headers["strict-transport-security"] == "1e3"


@pytest.mark.parametrize(
    ("hash_text", "reason"),
    [
        ("$2y$10$short", "is not a bcrypt hash"),
        ("$2y$03$" + "a" * 53, "cost 3"),
        ("$2y$32$" + "a" * 53, "cost 32"),
    ],
)
def test_invalid_bcrypt_hashes_stop_the_start(pki: Pki, hash_text: str, reason: str) -> None:
    message = start_error(pki.web("bad_hash", f"basic_auth_users:\n  zoe: '{hash_text}'\n"))
    assert "basic_auth_users.zoe" in message and "'zoe'" in message and reason in message


def test_long_passwords_compare_their_first_72_bytes(pki: Pki, tmp_path: Path) -> None:
    password = "x" * 72 + "-tail"
    text = f"basic_auth_users:\n  long: {hashed(password[:72])}\n"
    with live(tmp_path, pki.web("long", text)) as s:
        assert get(s.http + "/", auth=("long", password)).status_code == 200
        assert get(s.http + "/", auth=("long", "x" * 72 + "-other-tail")).status_code == 200
        assert get(s.http + "/", auth=("long", "y" * 300)).status_code == 401
        assert get(s.http + "/", auth=("nobody", "y" * 300)).status_code == 401


def test_inline_client_ca(pki: Pki, tmp_path: Path) -> None:
    ca = "".join(f"    {line}\n" for line in pki.client.cert_pem.splitlines())
    text = TLS + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n{ca}"
    with live(tmp_path, pki.web("inline_ca", text)) as s:
        s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("client"))).close()


def test_tls_section_without_certificate_is_plain_http_with_a_warning(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.web")
    with live(tmp_path, pki.web("tls_no_cert", "tls_server_config:\n  min_version: TLS13\n")) as s:
        assert get(s.http + "/-/healthy").status_code == 200
    assert any("serving plain HTTP" in r.getMessage() for r in caplog.records)


def test_configured_headers_on_errors_and_their_status(pki: Pki, tmp_path: Path) -> None:
    text = HEADERS + f"basic_auth_users:\n  u: {hashed('pw')}\n"
    with live(tmp_path, pki.web("errors", text)) as s:
        with httpx.Client(timeout=5, auth=("u", "pw")) as c:
            responses = {
                401: httpx.get(s.http + "/metrics", timeout=5),
                404: c.get(s.http + "/no-such-page"),
                405: c.post(s.http + "/metrics"),
            }

            def broken() -> int:
                raise RuntimeError("a bug")

            s.exporter.unpolled_targets = broken  # type: ignore[method-assign]
            responses[500] = c.get(s.http + "/-/ready")
        for status, resp in responses.items():
            assert resp.status_code == status
            assert {k: resp.headers.get(k) for k in EXPECTED_HEADERS} == EXPECTED_HEADERS, status
        assert responses[405].headers["allow"] == "GET,HEAD"
        assert "a bug" not in responses[500].text


def raw_request(port: int, request: bytes, ctx: ssl.SSLContext | None = None) -> bytes:
    """Send ``request`` and read what the server sends within 2 s (or until it closes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    conn = ctx.wrap_socket(sock, server_hostname="127.0.0.1") if ctx else sock
    with conn:
        conn.sendall(request)
        data = b""
        try:
            while chunk := conn.recv(4096):
                data += chunk
        except (TimeoutError, ssl.SSLError, ConnectionResetError):
            pass
    return data


@pytest.mark.parametrize("path", ["/-/reload", "/no-such-page", "/metrics"])
def test_no_100_continue_before_a_401(pki: Pki, tmp_path: Path, path: str) -> None:
    text = TLS + f"basic_auth_users:\n  u: {hashed('pw')}\n"
    with live(tmp_path, pki.web("expect", text)) as s:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        answer = raw_request(s.port, request, pki.trust)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
        assert b"100 Continue" not in answer
        # Authorised, the final answer also comes without an interim 100 (no route reads a body).
        creds = base64.b64encode(b"u:pw").decode()
        authorised = request.replace(b"Host: x", f"Host: x\r\nAuthorization: Basic {creds}".encode())
        answer = raw_request(s.port, authorised, pki.trust)
        assert b"100 Continue" not in answer and answer.startswith(b"HTTP/1.1 ")


GO_400 = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", GO_400),
        (b"HEAD / HTTP/1.0\r\n\r\n", GO_400),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", GO_400),
        (b"PUT /-/reload HTTP/1.1\r\nHost: x\r\n\r\n", GO_400),
        # Go recognises only those five starts; anything else that is not TLS is closed on, silently.
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", b""),
        (b"\x00\x01 not TLS at all\r\n", b""),
    ],
)
def test_plain_http_on_the_tls_port_gets_gos_400(
    pki: Pki, tmp_path: Path, sent: bytes, answer: bytes
) -> None:
    with live(tmp_path, pki.web("good", GOOD)) as s:
        assert raw_request(s.port, sent) == answer
        s.handshake(pki.trust).close()  # the port still serves TLS


def test_failed_handshakes_are_counted_and_noted_at_most_once_per_interval(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.web")
    with live(tmp_path, pki.web("some_ciphers", SOME_CIPHERS)) as s:
        for _ in range(5):
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                s.handshake(client_context(pki.ca.cert_pem, ciphers="ECDHE-RSA-AES256-SHA"))
            assert raw_request(s.port, b"GET / HTTP/1.1\r\n\r\n") == GO_400
        assert s.security is not None
        wait_until(lambda: s.security is not None and s.security.refused["tls_handshake"] == 10, 5, "counted")
        text = get(s.https + "/metrics", pki.trust, headers={"Accept-Encoding": "identity"}).text
    assert parse(text).value("inference_exporter_web_refusals_total", reason="tls_handshake") == 10
    notes = [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG
    assert getattr(notes[0], "reason", None) == "NO_SHARED_CIPHER"


def test_a_client_that_stops_before_or_during_its_handshake_is_closed_in_time(
    pki: Pki, tmp_path: Path
) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, tls_handshake_timeout=0.5)
    with live(tmp_path, pki.web("good", GOOD), limits) as s:
        for first in (b"\x16\x03", b"\x16\x03\x01\x02\x00\x01"):  # part of a record header, of a ClientHello
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            with sock:
                sock.sendall(first)
                started = time.monotonic()
                assert sock.recv(100) == b""
                assert time.monotonic() - started < 3
        assert s.security is not None
        wait_until(lambda: s.security is not None and s.security.refused["tls_handshake"] == 2, 5, "counted")
        assert s.runner is not None
        assert [len(getattr(site, "pending", ())) for site in s.runner.sites] == [0]


def test_http2_is_not_offered(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("good", GOOD)) as s:
        ctx = pki.trust
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        conn = s.handshake(ctx)
        assert conn.alpn == "http/1.1"
        conn.close()


def test_default_tls12_suites_refuse_cbc_and_rsa_key_exchange(pki: Pki, tmp_path: Path) -> None:
    with live(tmp_path, pki.web("defaults", TLS)) as s:
        for weak in ("ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256"):
            with pytest.raises(ssl.SSLError):
                s.handshake(client_context(pki.ca.cert_pem, ciphers=weak, max_version=TLS12))
        conn = s.handshake(client_context(pki.ca.cert_pem, max_version=TLS12))
        assert conn.version == "TLSv1.2" and conn.cipher == AES128
        conn.close()


def test_client_ca_with_only_any_extended_key_usage(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Go accepts client certificates below a CA whose extended key usage is "any"; OpenSSL refuses
    # them. A warning says so at load, and the documented fix (a CA without that restriction) works.
    caplog.set_level(logging.WARNING, logger="exporter.web")
    for name, eku, accepted in (
        ("any_eku", [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], False),
        ("no_eku", None, True),
    ):
        ca = make_ca(name, eku=eku)
        (pki.dir / f"{name}_ca.crt").write_text(ca.cert_pem)
        issue(ca, f"{name}-client", usage="client").write(pki.dir, f"{name}_client")
        text = TLS + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {name}_ca.crt\n"
        with live(tmp_path, pki.web(name, text)) as s:
            ctx = client_context(pki.ca.cert_pem, cert=pki.cert(f"{name}_client"))
            if accepted:
                s.handshake(ctx).close()
            else:
                with pytest.raises(OSError):
                    s.handshake(ctx)
        warned = any(
            "without clientAuth" in r.getMessage() and name in r.getMessage() for r in caplog.records
        )
        assert warned is not accepted


def test_duplicate_user_is_refused(pki: Pki) -> None:
    text = f"basic_auth_users:\n  ann: {hashed('a')}\n  ann: {hashed('b')}\n"
    assert ":3: basic_auth_users.ann: duplicate key" in start_error(pki.web("dup", text))


# --- reloads replace the TLS context whole ----------------------------------------------


def test_reload_rotates_client_ca_server_certificate_and_protocol_bounds(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cca1, cca2 = make_ca("cca1"), make_ca("cca2")
    (pki.dir / "cca1.crt").write_text(cca1.cert_pem)
    (pki.dir / "cca2.crt").write_text(cca2.cert_pem)
    issue(cca1, "c1", usage="client").write(pki.dir, "c1")
    issue(cca2, "c2", usage="client").write(pki.dir, "c2")
    ca2 = make_ca("server-ca-2")
    issue(ca2, "server2", ips=["127.0.0.1"], key_kind="ec").write(pki.dir, "server2")

    def web(cert: str, client_ca: str, extra: str = "") -> str:
        return (
            f"tls_server_config:\n  cert_file: {cert}.crt\n  key_file: {cert}.key\n"
            f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {client_ca}\n{extra}"
        )

    path = pki.web("rotation", web("server", "cca1.crt"))
    old_trust = client_context(pki.ca.cert_pem, cert=pki.cert("c1"))
    with live(tmp_path, path) as s:
        s.handshake(old_trust).close()
        with pytest.raises(OSError):
            s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("c2")))

        # The client CA is replaced: the removed one is no longer trusted.
        path.write_text(web("server", "cca2.crt"))
        assert s.reload()[0]
        s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("c2"))).close()
        with pytest.raises(OSError):
            s.handshake(old_trust)

        # The server certificate changes key type (RSA to EC): only the new one is served.
        path.write_text(web("server2", "cca2.crt"))
        assert s.reload()[0]
        conn = s.handshake(client_context(ca2.cert_pem, cert=pki.cert("c2")))
        served = conn.server_certificate
        assert isinstance(served.public_key(), ec.EllipticCurvePublicKey)
        conn.close()
        for _ in range(3):
            with pytest.raises(ssl.SSLError):  # the old certificate is never offered again
                s.handshake(client_context(pki.ca.cert_pem, cert=pki.cert("c2")))

        # The protocol bounds change: a TLS 1.3-only client is refused once max_version is TLS12.
        tls13_only = client_context(ca2.cert_pem, cert=pki.cert("c2"), min_version=TLS13)
        s.handshake(tls13_only).close()
        path.write_text(web("server2", "cca2.crt", "  max_version: TLS12\n"))
        assert s.reload()[0]
        with pytest.raises(ssl.SSLError):
            s.handshake(tls13_only)
        conn = s.handshake(client_context(ca2.cert_pem, cert=pki.cert("c2")))
        assert conn.version == "TLSv1.2"
        conn.close()

        # An unusable file changes nothing.
        path.write_text(web("server2", "nope.crt"))
        ok, message = s.reload()
        # The answer says which file failed without echoing it; the log names the file.
        assert not ok and "web config is invalid" in message and "nope.crt" not in message
        assert any("nope.crt" in str(getattr(r, "problem", "")) for r in caplog.records)
        s.handshake(client_context(ca2.cert_pem, cert=pki.cert("c2"))).close()


def test_expired_server_certificate_is_warned_about_and_exported(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.web")
    expired_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    issue(pki.ca, "expired", ips=["127.0.0.1"], not_after=expired_at).write(pki.dir, "expired")
    path = pki.web("expiry", TLS)
    with live(tmp_path, path) as s:
        path.write_text("tls_server_config:\n  cert_file: expired.crt\n  key_file: expired.key\n")
        assert s.reload()[0]  # accepted, as exporter-toolkit does ...
        assert any(
            "server certificate in the web config has expired" in r.getMessage() for r in caplog.records
        )
        # ... and visible: scrape without verifying (the certificate has expired, after all).
        text = get(s.https + "/metrics", client_context(None), headers={"Accept-Encoding": "identity"}).text
        scrape = parse(text)
        value = scrape.value(
            "inference_exporter_web_tls_certificate_expiry_timestamp_seconds", certificate="server"
        )
        assert value == pytest.approx(expired_at.replace(microsecond=0).timestamp())
        assert scrape.value("inference_exporter_web_refusals_total", reason="unauthorized") == 0
        assert promtool_check_metrics(text) == ""


def test_rsa_server_key_is_served_for_rsa_suites(pki: Pki) -> None:
    # The fixture's server key is RSA, so the ECDHE-RSA cases above exercise the suites they name.
    key = (pki.dir / "server.key").read_bytes()
    assert isinstance(load_pem_private_key(key, None), rsa.RSAPrivateKey)


def test_live_server_stops_cleanly(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, None).start()
    server.stop()
    assert not server.thread.is_alive()
