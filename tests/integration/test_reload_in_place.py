"""Reloads that change part of the config are a non-event for everything else.

The daemon runs against the simulator with two Together accounts (queues, a probe,
fine-tune discovery) and one Baseten account (an explicit deployment, discovery, labels,
a deny rule). One kind of edit is applied per case and the daemon is scraped every
200 ms across the reload: no series that both configs serve may be missing from any
scrape, a relabelled series carries its new labels from the first scrape after the
reload, no counter goes down, no target is dropped, and the simulator's request log
shows no fine-tune history read again.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exporter.simulator.state import key_fingerprint
from tests.helpers import Proc, Scrape, parse, request_log, start_daemon, start_simulator, wait_until

KEY, ROTATED_KEY, STAGING_KEY = "prod-key-0c4e1b", "prod-key-rotated-9a7f3d", "staging-key-5e2d81"
ENV = {"ACC_STAGING_KEY": STAGING_KEY}
FT_METRICS = "/v1/fine-tunes/{id}/metrics"
JOBS = ("ft-alpha", "ft-beta")
SCRAPE_EVERY = 0.2
# Scrapes before the reload, and how long after it: a few polls of every target, and
# more than one discovery refresh.
BEFORE_SECONDS, AFTER_SECONDS = 1.5, 4.0

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


def config(
    sim_url: str,
    key_file: Path,
    *,
    interval: str = "1s",
    prod_team: str = "platform",
    staging_team: str = "research",
    baseten_deny: tuple[str, ...] = ("baseten_request_size_.*",),
    together_deny: tuple[str, ...] = (),
) -> str:
    return f"""\
global:
  poll_interval: {interval}
  timeout: 1s
  start_spread: 300ms
together:
  accounts:
    - name: prod
      base_url: {sim_url}/v1
      api_key_file: {key_file}
      labels: {{team: {prod_team}}}
      metric_filter: {{deny: {list(together_deny)}}}
      queues: [{{model: org/shared}}]
      probes:
        - model: org/probed
          payload: {{prompt: ping}}
          interval: 2s
          timeout: 1500ms
          status_poll_interval: 100ms
      fine_tunes:
        logged_at_overlap: 1s
        discovery: {{enabled: true, refresh_interval: 1s}}
    - name: staging
      base_url: {sim_url}/v1
      api_key_env: ACC_STAGING_KEY
      labels: {{team: {staging_team}}}
      queues: [{{model: org/shared}}]
baseten:
  accounts:
    - name: prod
      base_url: {sim_url}
      api_key_file: {key_file}
      labels: {{team: {prod_team}}}
      delay: 1s
      counter_window: 65s
      metric_filter: {{deny: {list(baseten_deny)}}}
      metrics: [baseten_replicas_active, baseten_request_size_bytes, baseten_inference_requests_total,
                baseten_gpu_utilization]
      deployments: [{{model_id: m2whisper, deployment_id: d2prod}}]
      discovery: [{{model_names: [llama-chat], refresh_interval: 1s}}]
"""


@dataclass(frozen=True)
class Edit:
    """One kind of config edit: the new config's settings, the new key (if rotated),
    how the reload is asked for, and what the new config legitimately changes."""

    settings: dict[str, Any] = field(default_factory=dict)
    key: str = KEY
    signal: bool = False
    # Label values the edit replaces (old → new): series are compared with the new ones.
    renamed: dict[str, str] = field(default_factory=dict)
    # Families the new config no longer serves, by the account whose filter removes them.
    dropped: tuple[tuple[str, str], ...] = ()


EDITS = {
    "labels": Edit({"prod_team": "platform-2"}, renamed={"platform": "platform-2"}),
    "filter": Edit(
        {
            "baseten_deny": ("baseten_request_size_.*", "baseten_gpu_utilization"),
            "together_deny": ("together_queue_jobs_running",),
        },
        dropped=(("baseten_gpu_utilization", "prod"), ("together_queue_jobs_running", "prod")),
    ),
    "interval": Edit({"interval": "1500ms"}),
    "key_rotation": Edit(key=ROTATED_KEY, signal=True),
    "other_account": Edit({"staging_team": "research-2"}, renamed={"research": "research-2"}),
    "no_op": Edit(),
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Proc]:
    proc = start_simulator(tmp_path, [KEY, ROTATED_KEY], orgs={"staging": STAGING_KEY})

    def post(path: str, doc: dict[str, object]) -> None:
        httpx.post(proc.url + path, json=doc, timeout=5).raise_for_status()

    post("/_sim/queue", {"model": "org/shared", "kind": "fixed", "waiting": 3, "running": 1})
    post("/_sim/queue?org=staging", {"model": "org/shared", "kind": "fixed", "waiting": 7, "running": 2})
    post("/_sim/jobs", {"model": "org/probed", "claim_delay": 0.05, "run_seconds": 0.1})
    post("/_sim/fine-tunes", {"action": "reset"})
    for job in JOBS:
        post("/_sim/fine-tunes", {"action": "add", "id": job, "step_seconds": 0.3, "eval_every": 3})
    post("/_sim/baseten", {"min_step": 1, "lag": 0})
    yield proc
    proc.stop()


@dataclass(frozen=True)
class Running:
    """The daemon, its config and key files, and its targets once all are up."""

    daemon: Proc
    path: Path
    key_file: Path
    ids: set[str]


@pytest.fixture
def running(tmp_path: Path, sim: Proc) -> Iterator[Running]:
    key_file = tmp_path / "prod.key"
    key_file.write_text(KEY)
    path = tmp_path / "config.yaml"
    path.write_text(config(sim.url, key_file))
    daemon = start_daemon(tmp_path, path, env=ENV)
    try:
        wait_until(lambda: all_up(daemon) and warmed_up(daemon), 30, "every target up and counting", daemon)
        yield Running(daemon, path, key_file, target_ids(daemon))
    finally:
        daemon.stop()


class Scraper:
    """Scrapes every SCRAPE_EVERY seconds in a thread: (start, end, scrape or error)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, float, Scrape | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            for _ in range(500):  # bounded: at most 100 s
                start = time.time()
                try:
                    resp = client.get(self.url + "/metrics")
                    result: Scrape | str = (
                        parse(resp.text) if resp.status_code == 200 else str(resp.status_code)
                    )
                except httpx.HTTPError as exc:
                    result = repr(exc)
                self.results.append((start, time.time(), result))
                if self._stop.wait(SCRAPE_EVERY):
                    return


def target_ids(daemon: Proc) -> set[str]:
    resp = httpx.get(daemon.url + "/targets", params={"format": "json"}, timeout=5)
    return {str(t["id"]) for t in resp.json()["targets"]}


def all_up(daemon: Proc) -> bool:
    resp = httpx.get(daemon.url + "/targets", params={"format": "json"}, timeout=5)
    return all(t["health"] == "up" for t in resp.json()["targets"])


def warmed_up(daemon: Proc) -> bool:
    """Every target up, the discovered ones among them, and counters moving."""
    s = parse(httpx.get(daemon.url + "/metrics", timeout=5).text)
    found_jobs = {lbl["job_id"] for lbl, _ in s.series("together_finetune_global_step")}
    deployments = {lbl["deployment_id"] for lbl, _ in s.series("baseten_replicas_active")}
    counted = [v for _, v in s.series("baseten_inference_requests_total") if v > 0]
    return found_jobs == set(JOBS) and {"d1prod", "d1stage", "d2prod"} <= deployments and bool(counted)


def normalized(s: Scrape, edit: Edit) -> dict[SeriesKey, float]:
    """The scrape's series with the edit's renamed label values replaced by the new ones."""
    return {
        (name, frozenset((k, edit.renamed.get(v, v) if k == "team" else v) for k, v in labels)): value
        for (name, labels), value in s.samples.items()
    }


def dropped(key: SeriesKey, edit: Edit) -> bool:
    """Whether the new config no longer serves this sample."""
    name, account = key[0], dict(key[1]).get("account")
    return any(account == a and (name == d or name.startswith(d + "_")) for d, a in edit.dropped)


def kept_by_both(key: SeriesKey, edit: Edit) -> bool:
    # A target's error_info is there only while it is down.
    return key[0] != "inference_exporter_target_error_info" and not dropped(key, edit)


def counter_like(s: Scrape, name: str) -> bool:
    """A sample of a counter, or a histogram's bucket, count or sum: may never go down."""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix) and s.types.get(name[: -len(suffix)]) in ("counter", "histogram"):
            return True
    return False


def fine_tune_reads(sim: Proc) -> dict[str, list[str | None]]:
    """Per job, the ``logged_at_from`` of each metrics read in order (None: no cursor)."""
    out: dict[str, list[str | None]] = {}
    for e in request_log(sim, route=FT_METRICS):
        parts = urlsplit(str(e["path"]))
        job = parts.path.split("/")[3]
        out.setdefault(job, []).append(parse_qs(parts.query).get("logged_at_from", [None])[0])
    return out


def reload(daemon: Proc, edit: Edit) -> None:
    if not edit.signal:
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        return
    before = daemon.log().count("config reloaded")
    daemon.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.log().count("config reloaded") > before, 10, "SIGHUP reload", proc=daemon)


@pytest.mark.parametrize("edit", EDITS.values(), ids=list(EDITS))
def test_a_reload_changes_only_what_the_file_changed(sim: Proc, running: Running, edit: Edit) -> None:
    daemon, path, key_file, ids = running.daemon, running.path, running.key_file, running.ids
    with Scraper(daemon.url) as scraper:
        time.sleep(BEFORE_SECONDS)
        key_file.write_text(edit.key)
        path.write_text(config(sim.url, key_file, **edit.settings))
        began = time.time()
        reload(daemon, edit)
        applied = time.time()
        time.sleep(AFTER_SECONDS)
    assert target_ids(daemon) == ids  # nothing dropped, nothing rediscovered under a new id
    failed = [r for _, _, r in scraper.results if not isinstance(r, Scrape)]
    assert not failed
    scrapes = [(start, end, r) for start, end, r in scraper.results if isinstance(r, Scrape)]
    last_before = max(i for i, (_, end, _) in enumerate(scrapes) if end < began)
    expected = {k for k in normalized(scrapes[last_before][2], edit) if kept_by_both(k, edit)}
    previous = normalized(scrapes[last_before][2], edit)
    for start, _, s in scrapes[last_before + 1 :]:
        series = normalized(s, edit)
        missing = sorted(expected - series.keys())
        assert not missing, f"{len(missing)} series missing from the scrape at {start - began:+.2f}s"
        decreased = [(k, previous[k], v) for k, v in series.items() if k in previous and v < previous[k]]
        assert not [d for d in decreased if counter_like(s, d[0][0])], decreased
        previous = series
        if start > applied:
            stale = [k for k in s.samples if any(v in edit.renamed for n, v in k[1] if n == "team")]
            assert not stale, f"old labels {stale[:3]} at {start - applied:+.2f}s after the reload"
            gone = [k for k in s.samples if dropped(k, edit)]
            assert not gone, gone[:3]
    # The fine-tune histories were read once: every later read has a cursor, never moving back.
    reads = fine_tune_reads(sim)
    for job in JOBS:
        cursors = [c for c in reads[job][1:] if c is not None]
        assert cursors and len(cursors) == len(reads[job]) - 1, (job, reads[job][:3])
        assert cursors == sorted(cursors), job  # ISO-8601 in UTC: text order is time order
    if edit.key != KEY:
        # New requests use the new key; the old one is not sent after the polls in flight.
        old, new = key_fingerprint(KEY), key_fingerprint(edit.key)
        late = [e for e in request_log(sim, since=applied + 2.0) if e["key"] == old]
        assert not late, late[:3]
        assert request_log(sim, since=applied + 2.0)[-1]["key"] == new
    log = daemon.log()
    assert "Traceback" not in log and "Session is closed" not in log
    assert KEY not in log and ROTATED_KEY not in log and STAGING_KEY not in log


def resources(url: str) -> tuple[float, float]:
    s = parse(httpx.get(url + "/metrics", timeout=5).text)
    rss, fds = s.value("process_resident_memory_bytes"), s.value("process_open_fds")
    assert rss is not None and fds is not None
    return rss, fds


def test_a_hundred_label_reloads_leave_memory_and_descriptors_where_they_were(
    sim: Proc, running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon, path, key_file, ids = running.daemon, running.path, running.key_file, running.ids
    for i in range(102):
        path.write_text(config(sim.url, key_file, prod_team=f"team-{i % 2}"))
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 200
        if i == 1:  # after a first round trip of each label value, as a long-running daemon is
            time.sleep(2)
            rss0, fds0 = resources(daemon.url)
    time.sleep(2)
    rss1, fds1 = resources(daemon.url)
    with capsys.disabled():
        print(
            f"\n100 reloads: rss {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB, fds {fds0:.0f} -> {fds1:.0f}"
        )
    assert rss1 - rss0 < 6 * 2**20 and fds1 - fds0 <= 3
    assert target_ids(daemon) == ids
    assert "Traceback" not in daemon.log()
