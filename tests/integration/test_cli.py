"""The command line as users run it: check-config, a bad config at start, demo, reload."""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import SIM_KEY
from tests.helpers import REPO, Proc, free_port, need_binary, run_cli, scrape, start_daemon, wait_until
from tests.integration.test_queue_daemon import write_config


def test_check_config_valid_and_invalid(tmp_path: Path) -> None:
    ok = run_cli(
        "check-config",
        str(REPO / "config.example.yaml"),
        env={"TOGETHER_API_KEY": "abc123", "BASETEN_API_KEY": "def456"},
    )
    assert ok.returncode == 0, ok.stderr
    assert "config is valid" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("together:\n  api_key_env: UNSET_FOR_TEST\n  queues:\n    - model: a\n      every: 5s\n")
    res = run_cli("check-config", str(bad), env={"UNSET_FOR_TEST": ""})
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert f"{bad}:5: together.queues[0].every: unknown key" in lines
    assert f"{bad}:2: together.api_key_env: environment variable UNSET_FOR_TEST is not set or empty" in lines
    # Without secrets, only the structural problem remains.
    res = run_cli("check-config", "--no-secrets", str(bad))
    assert res.returncode == 1 and "UNSET_FOR_TEST" not in res.stderr


def test_the_command_in_the_example_header_passes_without_api_keys() -> None:
    header = (REPO / "config.example.yaml").read_text().splitlines()[:5]
    (line,) = [h for h in header if "inference-exporter check-config" in h]
    argv = shlex.split(line.split("inference-exporter", 1)[1])
    res = run_cli(*argv, env={"TOGETHER_API_KEY": "", "BASETEN_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    assert res.stdout == "config.example.yaml: config is valid\n"
    # Without --no-secrets the missing keys are named, with the way to check the file alone.
    res = run_cli("check-config", "config.example.yaml", env={"TOGETHER_API_KEY": "", "BASETEN_API_KEY": ""})
    assert res.returncode == 1
    assert res.stderr.splitlines()[-1] == (
        "config.example.yaml: --no-secrets checks the file without reading the API keys"
    )
    assert "environment variable BASETEN_API_KEY is not set or empty" in res.stderr


def test_a_config_that_watches_nothing_is_valid_with_a_warning(tmp_path: Path) -> None:
    for text in ("", "# all commented out\n", "global:\n  poll_interval: 10s\n"):
        path = tmp_path / "idle.yaml"
        path.write_text(text)
        res = run_cli("check-config", str(path))
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"{path}: config is valid\n"
        assert res.stderr == (
            f"{path}: warning: no targets and no discovery: the exporter would export only its own metrics\n"
        )


def test_check_config_does_not_load_the_http_stack() -> None:
    # Checking a config (in CI, an init container, a pre-commit hook) must stay cheap.
    example = str(REPO / "config.example.yaml")
    script = (
        "import sys\n"
        "from exporter.cli import main\n"
        f"code = main(['check-config', '--no-secrets', {example!r}])\n"
        "print(code, sorted(m for m in ('aiohttp', 'httpx') if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"{example}: config is valid", "0 []"], res.stdout


def test_daemon_refuses_to_start_on_an_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("global:\n  poll_interval: never\n")
    port = free_port()
    res = run_cli("--config.file", str(bad), "--web.listen-address", f"127.0.0.1:{port}", timeout=20)
    assert res.returncode == 1
    assert f"{bad}:2: global.poll_interval:" in res.stderr
    try:
        httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=1)
        raise AssertionError("a daemon with an invalid config must not serve")
    except httpx.ConnectError:
        pass


def test_demo_serves_simulated_queues(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as logf:
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", "demo", "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
    proc = Proc(popen, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: _ready(proc.url), timeout=30, what="demo ready", proc=proc)
        s = scrape(proc.url)
        waiting = s.series("together_queue_jobs_waiting")
        assert {lbls["model"] for lbls, _ in waiting} >= {
            "demo-org/video-generator",
            "demo-org/image-upscaler",
        }
        ups = s.series("inference_exporter_target_up")
        assert ups and all(v == 1 for _, v in ups)
        assert f"Open http://127.0.0.1:{port}/ (metrics at http://127.0.0.1:{port}/metrics)" in proc.log()
    finally:
        assert proc.stop() == 0


def test_flags_before_the_command_apply_and_the_real_address_is_shown(tmp_path: Path) -> None:
    # Port 0: the address printed and logged must be the one really bound.
    log = tmp_path / "demo.log"
    before = ["--web.listen-address", "127.0.0.1:0", "--log.level", "debug", "--log.format", "json"]
    with log.open("w") as logf:
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", *before, "demo", "--web.telemetry-path", "/m"],
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
    proc = Proc(popen, "", log)
    try:
        wait_until(lambda: "Open http" in proc.log(), timeout=30, what="the demo's URL", proc=proc)
        opened = re.search(r"^Open (http://127\.0\.0\.1:(\d+))/ \(metrics at \1/m\)$", proc.log(), re.M)
        assert opened is not None, proc.log()
        url, port = opened.group(1), opened.group(2)
        assert port != "0"
        wait_until(lambda: _ready(url), timeout=30, what="demo ready", proc=proc)
        assert scrape(url, "/m").series("inference_exporter_target_up")
        records = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
        assert any(r["level"] == "debug" for r in records)
        (listening,) = [r for r in records if r["msg"] == "listening"]
        assert listening["address"] == f"127.0.0.1:{port}"
    finally:
        assert proc.stop() == 0


def _taken_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, int(sock.getsockname()[1])


def _error_lines(stderr: str) -> list[str]:
    """The error lines, without their time stamps."""
    assert "Traceback" not in stderr, stderr
    return [line.split(" ", 1)[1] for line in stderr.splitlines() if "level=error" in line]


def test_a_taken_port_is_one_line_and_a_failure(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("global: {}\n")
    sock, port = _taken_port()
    with sock:
        for argv in (
            ["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"],
            ["simulate", "--web.listen-address", f"127.0.0.1:{port}"],
        ):
            res = run_cli(*argv, timeout=30)
            assert res.returncode == 1, res.stderr
            assert res.stdout == ""
            assert _error_lines(res.stderr) == [
                f'level=error logger=exporter msg="cannot listen" address=127.0.0.1:{port}'
                ' reason="the address is already in use (another process listens on this port)"'
            ]


def test_an_address_this_machine_lacks_is_one_line_and_a_failure() -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine; nothing is sent.
    res = run_cli("--web.listen-address", "192.0.2.1:10230", "demo", timeout=30)
    assert res.returncode == 1
    (line,) = _error_lines(res.stderr)
    assert 'address=192.0.2.1:10230 reason="this machine has no such address"' in line
    assert "Open http" not in res.stdout


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_sighup_and_post_reload_apply_or_reject(tmp_path: Path, simulator: Proc) -> None:
    config = write_config(tmp_path, simulator.url, ["acme/one"])
    daemon = start_daemon(tmp_path, config, env={"TEST_TOGETHER_KEY": SIM_KEY})
    try:
        assert scrape(daemon.url).value("together_queue_jobs_waiting", model="acme/two") is None
        config.write_text(config.read_text() + "    - model: acme/two\n")
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(
            lambda: scrape(daemon.url).value("together_queue_jobs_waiting", model="acme/two") is not None,
            timeout=10,
            what="acme/two after SIGHUP",
        )
        good = config.read_text()
        config.write_text(good.replace("poll_interval: 1s", "poll_interval: later"))
        r = httpx.post(daemon.url + "/-/reload", timeout=10)
        assert r.status_code == 500 and "1 problem(s)" in r.text and "later" not in r.text
        s = scrape(daemon.url)
        assert s.value("inference_exporter_config_last_reload_successful") == 0
        assert s.value("together_queue_jobs_waiting", model="acme/two") is not None  # old config still runs
        config.write_text(good.replace("    - model: acme/one\n", ""))
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        s = scrape(daemon.url)
        assert s.value("inference_exporter_config_last_reload_successful") == 1
        # A removed target's series go at once.
        assert s.value("together_queue_jobs_waiting", model="acme/one") is None
        assert (
            s.value("inference_exporter_target_up", target="together_queue/acme/one", source="together_queue")
            is None
        )
    finally:
        daemon.stop()


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    hadolint = need_binary("hadolint")
    res = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    text = (REPO / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "EXPOSE 10230" in text
