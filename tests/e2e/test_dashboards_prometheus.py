"""End to end: a real Prometheus scrapes the daemon running the bundled demo config against
the simulator and evaluates the alert and SLO rules; every dashboard query returns data,
the queue-depth alert goes pending and fires on the demo's own backlog, and the probe's
fast-burn alert fires on failing jobs."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.simulator import scenario
from mixin import alerts as alert_rules
from mixin import lint, slo
from mixin.config import DEFAULT
from mixin.generate import repo_root
from tests.e2e.demo import DEMO_ENV, KEY, STAGING_KEY, demo_doc, write_config
from tests.e2e.prom import alerts, api, query, start_prometheus
from tests.helpers import Proc, scrape, start_daemon, start_simulator, wait_until

pytestmark = pytest.mark.e2e

ROOT = repo_root()
# Alerts keep their thresholds but hold for seconds instead of minutes.
FAST = dataclasses.replace(DEFAULT, queue_depth_high_for="5s", slo_page_for="1s")


def demo_config(tmp_path: Path, sim_url: str) -> tuple[Path, dict[str, Any]]:
    """The bundled demo config, pointed at ``sim_url``, polling every second."""
    doc = demo_doc(sim_url)
    return write_config(tmp_path, doc), doc


def grafana_substitute(expr: str) -> str:
    """What Grafana sends with every filter on "All" (``.+``) and the rate interval resolved."""
    expr = expr.replace("$__rate_interval", "15s").replace("$__interval", "1s").replace("$__range", "1m")
    return re.sub(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?", ".+", expr)


def dashboards() -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "grafana/dashboards").glob("*.json"))
    ]


def empty_panel_queries(prom: Proc) -> list[str]:
    missing = []
    for d in dashboards():
        for title, expr in lint.panel_queries(d):
            if not query(prom, grafana_substitute(expr)):
                missing.append(f"{d['title']} / {title}: {expr}")
        for name, sel, label in lint.variable_queries(d):
            matched = api(prom, "series", **{"match[]": grafana_substitute(sel or "up")})
            if not any(label in s for s in matched):
                missing.append(f"{d['title']} / ${name}: no {label} values")
    return missing


def query_metric_names() -> set[str]:
    """Every metric a dashboard query, variable or rule reads, but those the rules record."""
    exprs = [e for d in dashboards() for _, e in lint.panel_queries(d)]
    exprs += [sel for d in dashboards() for _, sel, _ in lint.variable_queries(d) if sel]
    exprs += [a.expr for g in alert_rules.groups(DEFAULT) for a in g.alerts]
    exprs += [str(r["expr"]) for o in slo.objectives(DEFAULT) for r in slo.recording_rules(DEFAULT, o)]
    names = {str(lint.metric_name(sel)) for e in exprs for sel, _, _ in lint.selectors(lint.parse(e))}
    return names - slo.recorded_names(DEFAULT)


def set_queue(sim: Proc, **doc: object) -> None:
    httpx.post(sim.url + "/_sim/queue", json=doc, timeout=5).raise_for_status()


def set_jobs(sim: Proc, **doc: object) -> None:
    httpx.post(sim.url + "/_sim/jobs", json=doc, timeout=5).raise_for_status()


def firing(prom: Proc, name: str) -> list[dict[str, str]]:
    return [a["labels"] for a in alerts(prom) if a["labels"]["alertname"] == name and a["state"] == "firing"]


def rfc3339(value: str) -> float:
    """A Prometheus API timestamp (nanoseconds, ``Z``) as Unix seconds."""
    whole, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (frac or "0"))


def test_dashboards_have_data_and_alerts_fire(tmp_path: Path) -> None:
    started = time.time()
    sim = start_simulator(tmp_path, [KEY], orgs={"staging": STAGING_KEY})
    procs: list[Proc] = [sim]
    try:
        config_path, doc = demo_config(tmp_path, sim.url)
        prod = doc["together"]["accounts"][0]
        assert prod["name"] == "prod"
        models = [q["model"] for q in prod["queues"]]
        failing_model = models[-1]
        assert scenario.BACKLOG_MODEL in models[:-1]
        # One failing target gives the error panels something to show.
        set_queue(sim, model=failing_model, kind="error", status=503)
        # The probe's jobs are quick, so that one completes every two seconds.
        (probe_model,) = [p["model"] for p in prod["probes"]]
        set_jobs(sim, model=probe_model, claim_delay=0.1, run_seconds=0.3)
        daemon = start_daemon(tmp_path, config_path, env=DEMO_ENV)
        procs.append(daemon)

        # Every metric the dashboards and alerts read shows up in the daemon's real exposition
        # (fine-tune keys appear once a job has logged them).
        def unexposed() -> set[str]:
            exposed = {name for name, _ in scrape(daemon.url).samples}
            return query_metric_names() - exposed - lint.PROMETHEUS_SERIES

        deadline = time.monotonic() + 30
        while unexposed() and time.monotonic() < deadline:
            time.sleep(1)
        assert unexposed() == set()

        rules = tmp_path / "alerts.yaml"
        rules.write_text(alert_rules.render(FAST), encoding="utf-8")
        slo_rules = tmp_path / "slos.yaml"
        slo_rules.write_text(slo.render(FAST), encoding="utf-8")
        target = daemon.url.removeprefix("http://")
        prom = start_prometheus(tmp_path, [target], DEFAULT.exporter_job, [rules, slo_rules])
        procs.append(prom)

        assert all(any(lint.panel_queries(d)) for d in dashboards())
        wait_until(
            lambda: query(prom, f'up{{job="{DEFAULT.exporter_job}"}} == 1'), 20, "first scrape", proc=prom
        )
        # Rates and derivatives need a few scrapes; give every query up to 40s to show data.
        deadline = time.monotonic() + 40
        missing = empty_panel_queries(prom)
        while missing and time.monotonic() < deadline:
            time.sleep(2)
            missing = empty_panel_queries(prom)
        assert not missing, "queries without data:\n" + "\n".join(missing)

        # The demo's own backlog, unscripted, passes the threshold under a minute in: the
        # alert goes pending then fires, for that model only.
        depth = "TogetherQueueDepthHigh"
        wait_until(lambda: firing(prom, depth), 90, f"{depth} firing", proc=prom)
        fired = [a for a in alerts(prom) if a["labels"]["alertname"] == depth]
        assert [a["labels"]["model"] for a in fired] == [scenario.BACKLOG_MODEL]
        assert (fired[0]["labels"]["severity"], fired[0]["labels"]["job"]) == (
            "critical",
            DEFAULT.exporter_job,
        )
        assert 30 <= rfc3339(fired[0]["activeAt"]) - started <= 75, fired[0]["activeAt"]
        pending = query(prom, f'count_over_time(ALERTS{{alertname="{depth}",alertstate="pending"}}[10m])')
        assert [(p["metric"]["account"], p["metric"]["model"]) for p in pending] == [
            ("prod", scenario.BACKLOG_MODEL)
        ]
        calm = query(
            prom, f'max_over_time(together_queue_jobs_waiting{{model!="{scenario.BACKLOG_MODEL}"}}[10m])'
        )
        assert calm and all(float(c["value"][1]) < DEFAULT.queue_depth_high for c in calm)

        # The probe's jobs succeed so far; then the model fails every job it runs, and the
        # failures soon burn the success objective's budget at over 14.4 times its rate.
        burn = "TogetherQueueProbeSuccessBudgetBurnFast"
        good = (
            f'slo:sli_error:ratio_rate1h{{slo="together-probe-success",account="prod",model="{probe_model}"}}'
            " == 0"
        )
        assert query(prom, good), "the probe was failing before the fault"
        assert firing(prom, burn) == []
        set_jobs(sim, model=probe_model, mode="fail")
        wait_until(lambda: firing(prom, burn), 60, f"{burn} firing", proc=prom)
        (page,) = firing(prom, burn)
        assert (page["account"], page["model"], page["severity"], page["slo"]) == (
            "prod",
            probe_model,
            "critical",
            "together-probe-success",
        )
        failed = scrape(daemon.url).value(
            "together_queue_probes_total",
            account="prod",
            team=prod["labels"]["team"],
            model=probe_model,
            result="job_failed",
        )
        assert failed is not None and failed > 0
    finally:
        for p in reversed(procs):
            p.stop()
