"""``inference-exporter demo --prometheus``: the demo's alerts without Docker.

A real Prometheus from PATH, started by the demo with the rules installed next to the
demo config, scrapes the demo; the demo says where to look, and takes Prometheus and
its temporary directory away when it stops.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.demo import prometheus as local
from mixin.config import DEFAULT
from mixin.generate import DEMO_ALERTS_PATH, DEMO_SLOS_PATH, repo_root
from tests.helpers import REPO, Proc, free_port, need_binary, wait_until

SECRET = "tk-demo-prometheus-3f9e1c0a"
ANNOUNCED = re.compile(
    r"^Prometheus at (http://127\.0\.0\.1:\d+)/ with the demo's alert rules: alert states at (\1/\S+) ", re.M
)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def prometheus_environ(workdir: Path) -> str | None:
    """The environment of the Prometheus whose config is in ``workdir`` (None without /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for pid in proc.iterdir():
        try:
            if str(workdir).encode() in (pid / "cmdline").read_bytes():
                return (pid / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
    raise AssertionError(f"no process runs with {workdir}")


def _rule_groups(rel: str) -> set[str]:
    return {g["name"] for g in yaml.safe_load((repo_root() / rel).read_text(encoding="utf-8"))["groups"]}


def test_the_scrape_job_is_the_one_the_alerts_watch() -> None:
    assert DEFAULT.exporter_job == local.JOB
    compose = yaml.safe_load((REPO / "deploy/compose/prometheus.yml").read_text(encoding="utf-8"))
    assert compose["global"] == {"scrape_interval": local.INTERVAL, "evaluation_interval": local.INTERVAL}
    assert [f"exporter/demo/{name}" for name in local.RULE_FILES] == [DEMO_ALERTS_PATH, DEMO_SLOS_PATH]


@pytest.mark.e2e
def test_demo_runs_prometheus_with_its_rules_and_takes_it_away(tmp_path: Path) -> None:
    need_binary("prometheus")
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as logf:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "demo",
                "--prometheus",
                "--web.listen-address",
                f"127.0.0.1:{port}",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, "TMPDIR": str(tmp_path), "TOGETHER_API_KEY": SECRET},
        )
    demo = Proc(popen, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: ANNOUNCED.search(demo.log()), 40, "Prometheus announced", proc=demo)
        found = ANNOUNCED.search(demo.log())
        assert found is not None
        prom_url, page = found.group(1), found.group(2)
        assert (r := _get(page)) is not None and r.status_code == 200
        assert f"Open http://127.0.0.1:{port}/" in demo.log()
        # The demo's rules, as installed with the package: TogetherQueueDepthHigh held 2m.
        groups = httpx.get(prom_url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in groups} == _rule_groups(DEMO_ALERTS_PATH) | _rule_groups(DEMO_SLOS_PATH)
        (depth,) = [r for g in groups for r in g["rules"] if r["name"] == "TogetherQueueDepthHigh"]
        assert depth["duration"] == 120
        # It scrapes the demo under the job the alerts watch.

        def scraped() -> bool:
            r = _get(prom_url + "/api/v1/targets")
            active = r.json()["data"]["activeTargets"] if r is not None else []
            return any(
                t["labels"]["job"] == DEFAULT.exporter_job
                and t["scrapeUrl"] == f"http://127.0.0.1:{port}/metrics"
                and t["health"] == "up"
                for t in active
            )

        wait_until(scraped, 40, "Prometheus scraping the demo", proc=demo, interval=0.5)
        (workdir,) = tmp_path.glob("inference-exporter-demo-prometheus-*")
        # No key reaches Prometheus: neither the demo's nor one exported in the same shell.
        environ = prometheus_environ(workdir)
        if environ is not None:
            assert SECRET not in environ and "INFERENCE_EXPORTER_DEMO" not in environ
            assert "PATH=" in environ
    finally:
        popen.send_signal(signal.SIGINT)
        code = popen.wait(20)
    assert code == 0, demo.log()
    # Prometheus went with it, and so did its directory.
    assert _get(prom_url + "/-/ready") is None
    assert not list(tmp_path.glob("inference-exporter-demo-*"))
    assert "Traceback" not in demo.log()


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "demo", "--prometheus", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_without_prometheus_on_path_the_demo_says_so_and_does_not_start(tmp_path: Path) -> None:
    res = _demo("--web.listen-address", "127.0.0.1:0", env={"PATH": str(tmp_path)})
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "inference-exporter demo: --prometheus needs the prometheus binary on PATH "
        "(https://prometheus.io/download/, or Debian's and Ubuntu's prometheus package)"
    )
    assert "Open http" not in res.stdout


def test_prometheus_and_a_web_config_do_not_go_together() -> None:
    res = _demo("--web.config.file", "web.yml")
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1] == (
        "inference-exporter: error: --prometheus scrapes the demo over plain HTTP: leave out --web.config.file"
    )
