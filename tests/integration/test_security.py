"""--web.config.file (TLS, client certificates, basic auth), secrets never emitted, the image."""

from __future__ import annotations

import functools
import json
import re
import signal
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.sources.together.finetune import names
from tests.helpers import (
    REPO,
    Proc,
    add_fault,
    need_binary,
    parse,
    promtool_check_metrics,
    run_cli,
    scrape,
    start_daemon,
    start_simulator,
    wait_until,
    write_yaml,
)
from tests.integration.queue_config import KEY_ENV, queue_config, target
from tests.pki import issue, make_ca

PATH = "/v1/queue/metrics"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([need_binary("openssl"), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)  # fmt: skip


def tls_client(d: Path, *, cert: bool, auth: tuple[str, str] | None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(d / "client.crt"), str(d / "client.key"))
    return httpx.Client(verify=ctx, auth=auth, timeout=5)


@pytest.mark.integration
def test_tls_client_certs_and_basic_auth(tmp_path: Path, simulator: Proc) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=8)).decode().replace("$2b$", "$2y$", 1)
    web = pki / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"
        "  key_file: server.key\n"
        "  client_ca_file: ca.crt\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "http_server_config:\n"
        "  headers:\n"
        "    X-Content-Type-Options: nosniff\n"
        "basic_auth_users:\n"
        f"  prometheus: {hashed}\n"
    )
    config = queue_config(tmp_path, simulator.url, ["sec/m"])
    good = tls_client(pki, cert=True, auth=("prometheus", "s3cret-pass"))
    daemon = start_daemon(
        tmp_path,
        config,
        env={KEY_ENV: "sim-test-key-5f1c2a"},
        extra_args=["--web.config.file", str(web)],
        client=good,
        scheme="https",
    )
    try:
        assert daemon.url.startswith("https://")
        resp = good.get(daemon.url + "/metrics")
        assert resp.status_code == 200 and "inference_exporter_target_up" in resp.text
        assert resp.headers["x-content-type-options"] == "nosniff"
        # Wrong password, unknown user, no credentials: 401 with a challenge.
        for auth in (("prometheus", "wrong"), ("nobody", "s3cret-pass"), None):
            r = tls_client(pki, cert=True, auth=auth).get(daemon.url + "/metrics")
            assert r.status_code == 401, auth
            assert r.headers["www-authenticate"].startswith("Basic")
            assert "inference_exporter" not in r.text
        # Every path is protected, /targets and reload included.
        assert tls_client(pki, cert=True, auth=None).get(daemon.url + "/targets").status_code == 401
        assert tls_client(pki, cert=True, auth=None).post(daemon.url + "/-/reload").status_code == 401
        # Without a client certificate the TLS handshake itself fails.
        with pytest.raises(httpx.HTTPError):
            tls_client(pki, cert=False, auth=("prometheus", "s3cret-pass")).get(daemon.url + "/metrics")
        # Plain HTTP on the TLS port gets Go's 400 and nothing else.
        plain = httpx.get(daemon.url.replace("https://", "http://") + "/metrics", timeout=5)
        assert plain.status_code == 400 and plain.text == "Client sent an HTTP request to an HTTPS server.\n"
        assert "s3cret-pass" not in daemon.log()
    finally:
        assert daemon.stop() == 0


@pytest.mark.integration
def test_basic_auth_users_change_on_reload(tmp_path: Path, simulator: Proc) -> None:
    def hashed(pw: bytes) -> str:
        return bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4)).decode()

    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed(b'old-pass')}\n")
    config = queue_config(tmp_path, simulator.url, ["sec/m"])
    old = httpx.Client(auth=("prom", "old-pass"), timeout=5)
    new = httpx.Client(auth=("prom", "new-pass"), timeout=5)
    daemon = start_daemon(
        tmp_path,
        config,
        env={KEY_ENV: "sim-test-key-5f1c2a"},
        extra_args=["--web.config.file", str(web)],
        client=old,
    )
    try:
        assert old.get(daemon.url + "/metrics").status_code == 200
        assert new.get(daemon.url + "/metrics").status_code == 401
        # An unusable web config fails the reload and changes nothing.
        web.write_text("basic_auth_users:\n  prom: new-pass\n")
        r = old.post(daemon.url + "/-/reload")
        assert r.status_code == 500 and "web config is invalid" in r.text and "new-pass" not in r.text
        assert "bcrypt hash" in daemon.log() and "new-pass" not in daemon.log()
        assert old.get(daemon.url + "/metrics").status_code == 200
        s = parse(old.get(daemon.url + "/metrics").text)
        assert s.value("inference_exporter_config_last_reload_successful") == 0
        # A good one applies on SIGHUP: the old password stops working at once.
        web.write_text(f"basic_auth_users:\n  prom: {hashed(b'new-pass')}\n")
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(
            lambda: new.get(daemon.url + "/metrics").status_code == 200, timeout=10, what="new password"
        )
        assert old.get(daemon.url + "/metrics").status_code == 401
        s = parse(new.get(daemon.url + "/metrics").text)
        assert s.value("inference_exporter_config_last_reload_successful") == 1
    finally:
        assert daemon.stop() == 0


@pytest.mark.integration
def test_tls_reload_drops_a_removed_client_ca(tmp_path: Path, simulator: Proc) -> None:
    ca, cca1, cca2 = make_ca("server-ca"), make_ca("cca1"), make_ca("cca2")
    issue(ca, "server", ips=["127.0.0.1"]).write(tmp_path, "server")
    c1 = issue(cca1, "c1", usage="client").write(tmp_path, "c1")
    c2 = issue(cca2, "c2", usage="client").write(tmp_path, "c2")
    (tmp_path / "cca1.crt").write_text(cca1.cert_pem)
    (tmp_path / "cca2.crt").write_text(cca2.cert_pem)
    web = tmp_path / "web.yml"
    tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    web.write_text(tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: cca1.crt\n")

    def client(cert: tuple[Path, Path]) -> httpx.Client:
        ctx = ssl.create_default_context(cadata=ca.cert_pem)
        ctx.load_cert_chain(*cert)
        return httpx.Client(verify=ctx, timeout=5)

    config = queue_config(tmp_path, simulator.url, ["sec/m"])
    daemon = start_daemon(
        tmp_path,
        config,
        env={KEY_ENV: "sim-test-key-5f1c2a"},
        extra_args=["--web.config.file", str(web)],
        client=client(c1),
        scheme="https",
    )
    try:
        text = client(c1).get(daemon.url + "/metrics", headers={"Accept-Encoding": "identity"}).text
        s = parse(text)
        expiry = "inference_exporter_web_tls_certificate_expiry_timestamp_seconds"
        assert s.value(expiry, certificate="client_ca") == cca1.cert.not_valid_after_utc.timestamp()
        assert s.value(expiry, certificate="server") is not None
        assert promtool_check_metrics(text) == ""
        with pytest.raises(httpx.HTTPError):
            client(c2).get(daemon.url + "/metrics")
        web.write_text(tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: cca2.crt\n")
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: _accepts(client(c2), daemon.url), timeout=10, what="the new client CA")
        # The removed CA is no longer trusted on new connections.
        with pytest.raises(httpx.HTTPError):
            client(c1).get(daemon.url + "/metrics")
    finally:
        assert daemon.stop() == 0


def _accepts(c: httpx.Client, url: str) -> bool:
    try:
        return c.get(url + "/-/healthy").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.integration
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "basic_auth_users:\n  u: plaintext\n",
            "web.yml:2: basic_auth_users.u: the password hash of user 'u'",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n",
            "web.yml:1: tls_server_config: missing one of key or key_file",
        ),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "nope.crt: cannot read"),
        ("cipher_suites: [x]\n", "web.yml:1: cipher_suites: unknown key"),
    ],
)
def test_invalid_web_config_refuses_to_start(
    tmp_path: Path, simulator: Proc, content: str, message: str
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(content)
    config = queue_config(tmp_path, simulator.url, ["sec/m"])
    res = run_cli(
        "--config.file",
        str(config),
        "--web.config.file",
        str(web),
        "--web.listen-address",
        "127.0.0.1:0",
        timeout=30,
        env={KEY_ENV: "k"},
    )
    assert res.returncode == 1
    assert message in res.stderr, res.stderr


LEAKY_KEY = "sk-leakcheck-6a1f0e9b7c2d4e8f"


@pytest.mark.integration
def test_api_key_never_appears_in_anything_the_daemon_emits(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path, [LEAKY_KEY])
    try:
        models = ["leak/echo", "leak/drift", "leak/fine", "leak/reset"]
        # A vendor that echoes the key back in its error message, as some do.
        add_fault(sim, path=PATH, match={"model": "leak/echo"}, kind="status", status=401,
                  message=f"Invalid API key provided: {LEAKY_KEY}")  # fmt: skip
        add_fault(sim, path=PATH, match={"model": "leak/drift"}, kind="json",
                  json={"messages_waiting": LEAKY_KEY, "messages_running": 1})  # fmt: skip
        add_fault(sim, path=PATH, match={"model": "leak/reset"}, kind="reset")
        config = queue_config(tmp_path, sim.url, models)
        daemon = start_daemon(tmp_path, config, env={KEY_ENV: LEAKY_KEY})
        emitted: list[str] = []
        try:
            wait_until(
                lambda: "unauthorized" in httpx.get(daemon.url + "/targets?format=json", timeout=5).text,
                timeout=10,
                what="echo target down",
            )
            for path in ("/metrics", "/", "/targets", "/targets?format=json", "/-/ready", "/-/healthy"):
                emitted.append(httpx.get(daemon.url + path, timeout=5).text)
            emitted.append(httpx.post(daemon.url + "/-/reload", timeout=10).text)
            # A reload that fails must not echo the key either.
            config.write_text(config.read_text().replace("poll_interval: 1s", f"poll_interval: {LEAKY_KEY}"))
            emitted.append(httpx.post(daemon.url + "/-/reload", timeout=10).text)
            targets = json.loads(emitted[3])["targets"]
            echo = next(t for t in targets if t["id"] == target("leak/echo")["target"])
        finally:
            daemon.stop()
        emitted.append(daemon.log())
    finally:
        sim.stop()
    # The vendor's message got through, with the key cut out of it.
    assert "Invalid API key provided: <redacted>" in echo["last_error_detail"]
    assert "level=debug" in emitted[-1]  # the log was at debug level
    for text in emitted:
        assert LEAKY_KEY not in text
        assert LEAKY_KEY[3:15] not in text


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    hadolint = need_binary("hadolint")
    dockerfile = REPO / "Dockerfile"
    res = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE)
    assert users, "the image must set USER"
    assert users[-1] not in ("root", "0", "0:0")


# Longer than every cut a translation makes of a vendor string (40, 64 characters), so
# a key that was only scrubbed after being cut would leave a fragment behind.
ECHOED_KEY = "skecho" + "0f3a9c6e1b7d4f2a8c5e9b1d3f7a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5a"
ECHO_CONFIG = """\
global:
  poll_interval: 1s
  timeout: 1s
  start_spread: 300ms
together:
  base_url: {url}/v1
  api_key_env: ECHO_KEY
  probes:
    - model: echo/probe
      payload: {{prompt: ping}}
      interval: 3s
      timeout: 1s
      status_poll_interval: 200ms
  fine_tunes:
    jobs:
      - id: ft-status
    discovery:
      enabled: true
      refresh_interval: 1s
baseten:
  base_url: {url}
  api_key_env: ECHO_KEY
  delay: 2s
  counter_window: 61s
  discovery:
    - refresh_interval: 1s
"""


def echo_the_key(sim: Proc, key: str) -> None:
    """Vendors that echo the key in data fields: names, statuses, a logged key, ids."""
    post = functools.partial(httpx.post, timeout=5)
    post(sim.url + "/_sim/fine-tunes", json={"action": "reset"}).raise_for_status()
    job = {"action": "add", "id": "ft-echo", "model": f"org/{key}", "output_name": f"org/out-{key}"}
    row = {"step": 1, "row": {f"eval/{key}": 0.5, "train/global_step": 1}}
    post(
        sim.url + "/_sim/fine-tunes", json=job | {"step_seconds": 0.3, "extra_rows": [row]}
    ).raise_for_status()
    post(
        sim.url + "/_sim/fine-tunes", json={"action": "add", "id": "ft-status", "status": key}
    ).raise_for_status()
    deployments = [
        {"id": "decho", "name": f"prod-{key}", "environment": key, "is_production": True},
        {"id": f"d{key}", "name": "plain"},
    ]
    catalog = [{"id": "mecho", "name": f"llama-{key}", "deployments": deployments}]
    post(sim.url + "/_sim/baseten", json={"catalog": catalog, "min_step": 1, "lag": 1}).raise_for_status()
    add_fault(sim, path="/v1/queue/status", kind="json", json={"status": key, "retries": 0})


# How the vendor writes the key it echoes: as it is, or spelled with JSON escapes that
# the raw bytes do not show (the key of the last one holds a "/", written "\/").
ECHO_STYLES: dict[str, tuple[str, Callable[[str], str]]] = {
    "plain": (ECHOED_KEY, lambda k: k),
    "unicode-escape": (ECHOED_KEY, lambda k: "\\u0073" + k[1:]),
    "solidus-escape": (ECHOED_KEY[:30] + "/" + ECHOED_KEY[30:], lambda k: k.replace("/", "\\/")),
}


@pytest.mark.integration
@pytest.mark.parametrize("style", ECHO_STYLES)
def test_a_key_echoed_in_vendor_data_appears_nowhere(tmp_path: Path, style: str) -> None:
    key, spelled = ECHO_STYLES[style]
    sim = start_simulator(tmp_path, [key])
    config = write_yaml(tmp_path, ECHO_CONFIG.format(url=sim.url))
    try:
        echo_the_key(sim, key)
        if spelled(key) != key:
            rule = {"find": key, "replace": spelled(key)}
            httpx.post(sim.url + "/_sim/rewrites", json=rule, timeout=5).raise_for_status()
        daemon = start_daemon(tmp_path, config, env={"ECHO_KEY": key})
        emitted: list[str] = []
        try:

            def echoed() -> bool:
                s = scrape(daemon.url)
                probes = s.value("together_queue_probes_total", model="echo/probe", result="unknown_status")
                return (
                    (s.value("together_finetune_global_step", job_id="ft-echo") or 0) >= 2
                    and bool(s.series("baseten_deployment_info"))
                    and (probes or 0) >= 1
                )

            wait_until(echoed, timeout=20, what="every echo translated")
            for path in ("/metrics", "/", "/targets", "/targets?format=json"):
                emitted.append(httpx.get(daemon.url + path, timeout=5).text)
        finally:
            daemon.stop()
        emitted.append(daemon.log())
    finally:
        sim.stop()
    for text in emitted:
        assert key not in text
        for i in range(0, len(key) - 12, 6):
            assert key[i : i + 12] not in text, (i, text[:200])
    s = parse(emitted[0])
    # The data still arrives, with the key cut out of it.
    assert s.value(names.metric_name("eval/<redacted>"), job_id="ft-echo") == 0.5
    job = {"job_id": "ft-echo", "base_model": "org/<redacted>", "output_name": "org/out-<redacted>"}
    assert s.value("together_finetune_job_info", **job) == 1
    assert s.value("together_finetune_job_status", job_id="ft-echo", status="running") == 1
    (status,) = [
        labels["status"]
        for labels, v in s.series("together_finetune_job_status")
        if labels["job_id"] == "ft-status" and v == 1
    ]
    assert status == "<redacted>"
    assert s.value("together_finetune_listed_jobs", status="<redacted>") == 1
    info = {"model_id": "mecho", "deployment_id": "decho", "model_name": "llama-<redacted>"}
    assert (
        s.value(
            "baseten_deployment_info",
            **info,
            deployment_name="prod-<redacted>",
            environment="<redacted>",
            is_production="true",
        )
        == 1
    )
    assert s.value("baseten_deployment_status", model_id="mecho", deployment_id="decho", status="ACTIVE") == 1
    # A deployment whose id holds the key is a target named without it.
    targets = {t["id"]: t for t in json.loads(emitted[3])["targets"]}
    assert "baseten/mecho/d<redacted>" in targets
    assert "last status '<redacted>' is not a documented value" in emitted[-1]  # the probe's log
    assert promtool_check_metrics(emitted[0]) == ""
