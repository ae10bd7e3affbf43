"""Targets built from the config: one frozen settings object each, compared on reload."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.engine.targets import build_targets
from exporter.sources.base import Target
from exporter.sources.baseten import discovery as baseten_discovery
from exporter.sources.baseten import target as baseten
from exporter.sources.baseten.api import BasetenAPI
from exporter.sources.baseten.descriptors import Limits
from exporter.sources.baseten.discovery import DeploymentDiscoverySettings
from exporter.sources.baseten.target import DeploymentSettings
from exporter.sources.together.finetune.target import FineTuneDiscoverySettings, JobSettings
from exporter.upstream.api import Clients
from tests.helpers import write_yaml

CONFIG = """\
together:
  base_url: http://127.0.0.1:1/v1
  api_key_env: TOGETHER_TEST_KEY
  labels: {{team: {team}}}
  queues:
    - model: org/q
      poll_interval: {queue_interval}
  probes:
    - model: org/p
      payload: {{prompt: ping}}
      buckets: [{buckets}]
  fine_tunes:
    jobs:
      - id: ft-a
    discovery:
      enabled: true
      statuses: [{statuses}]
baseten:
  api_key_env: BASETEN_TEST_KEY
  labels: {{team: {team}}}
  delay: {delay}
  deployments:
    - model_id: m1
      deployment_id: d1
  discovery:
    - model_names: [{names}]
"""
DEFAULTS = {
    "queue_interval": "30s",
    "statuses": "running, queued",
    "delay": "3m",
    "names": "llama, whisper",
    "team": "a",
    "buckets": "1, 10",
}


def built(tmp_path: Path, **changes: str) -> dict[str, Target]:
    text = CONFIG.format(**(DEFAULTS | changes))
    cfg = load_config(write_yaml(tmp_path, text), read_secrets=False).config
    return {t.id: t for t in build_targets(cfg, Clients())}


def test_every_target_type_has_a_frozen_hashable_settings_object(tmp_path: Path) -> None:
    targets = built(tmp_path)
    assert sorted(targets) == [
        "baseten/m1/d1",
        "baseten_discovery/0",
        "together_finetune/ft-a",
        "together_finetune_discovery/fine-tunes",
        "together_queue/org/q",
        "together_queue_probe/org/p",
    ]
    for t in targets.values():
        hash(t.settings)
        params = getattr(type(t.settings), "__dataclass_params__", None)
        assert params is not None and params.frozen, t.id
        # A target's schedule is read from its settings object.
        assert vars(t.settings)["interval"] == t.interval


def test_an_equal_config_gives_equal_settings_and_a_change_only_its_targets(tmp_path: Path) -> None:
    before = built(tmp_path)
    same = built(tmp_path, statuses="queued, running", names="whisper, llama")
    # Order within a set of statuses or names does not change what a target does.
    assert {i: t.settings for i, t in same.items()} == {i: t.settings for i, t in before.items()}
    changed = {
        "together_queue/org/q": built(tmp_path, queue_interval="45s"),
        "together_finetune_discovery/fine-tunes": built(tmp_path, statuses="running"),
        "baseten_discovery/0": built(tmp_path, names="llama"),
    }
    for tid, after in changed.items():
        assert [i for i in before if after[i].settings != before[i].settings] == [tid]
    # A section-wide request setting reaches both the explicit deployment and the rule.
    after = built(tmp_path, delay="2m")
    assert [i for i in before if after[i].settings != before[i].settings] == [
        "baseten/m1/d1",
        "baseten_discovery/0",
    ]


def test_the_limits_in_the_config_reach_their_targets(tmp_path: Path) -> None:
    defaults = built(tmp_path)
    text = CONFIG.format(**DEFAULTS).replace(
        "  fine_tunes:\n", "  max_series_per_target: 900\n  fine_tunes:\n    max_key_length: 64\n"
    )
    text = text.replace("      statuses:", "      max_targets: 30\n      statuses:")
    text = text.replace(
        "  delay:",
        "  max_series_per_target: 800\n  max_families_per_target: 70\n  max_label_value_length: 50\n  delay:",
    )
    text = text.replace("    - model_names:", "    - max_targets: 20\n      model_names:")
    cfg = load_config(write_yaml(tmp_path, text), read_secrets=False).config
    targets = {t.id: t for t in build_targets(cfg, Clients())}
    assert {t.scope.max_series for t in defaults.values()} == {50_000}
    assert {i: t.scope.max_series for i, t in targets.items()} == {
        i: 900 if i.startswith("together") else 800 for i in targets
    }
    job, jobs = (
        targets["together_finetune/ft-a"].settings,
        targets["together_finetune_discovery/fine-tunes"].settings,
    )
    assert isinstance(job, JobSettings) and isinstance(jobs, FineTuneDiscoverySettings)
    assert (job.max_key_length, jobs.jobs.max_key_length, jobs.max_targets) == (64, 64, 30)
    dep, rule = targets["baseten/m1/d1"].settings, targets["baseten_discovery/0"].settings
    assert isinstance(dep, DeploymentSettings) and isinstance(rule, DeploymentDiscoverySettings)
    assert dep.limits == rule.deployments.limits == Limits(800, 70, 50)
    assert rule.max_targets == 20


def test_every_target_takes_new_settings_in_place(tmp_path: Path) -> None:
    """A new label and delay reach every target, kept with its state; a discovery hands its
    new settings to what it found."""
    before = built(tmp_path)
    after = built(tmp_path, team="b", delay="2m", queue_interval="45s")
    for tid, target in before.items():
        assert target.settings != after[tid].settings
        assert target.reconfigure(after[tid]), tid
        assert target.settings == after[tid].settings and target.scope.labels == (("team", "b"),)
        for name, value in vars(after[tid]).items():  # what each copies from its settings
            if name in ("opts", "req", "meta_refresh", "statuses", "job_settings"):
                assert vars(target)[name] == value, (tid, name)
    assert before["together_queue/org/q"].interval == 45.0
    discovery = before["baseten_discovery/0"]
    assert isinstance(discovery, baseten_discovery.DeploymentDiscovery)
    settings = built(tmp_path)["baseten/m1/d1"].settings
    assert isinstance(settings, baseten.DeploymentSettings)
    found = baseten.DeploymentTarget(BasetenAPI(Clients()), "m9", "d9", settings)
    rebuilt = discovery.rebuild(found)
    assert isinstance(rebuilt, baseten.DeploymentTarget) and rebuilt.settings == discovery.opts.deployments
    assert found.reconfigure(rebuilt) and found.scope.labels == (("team", "b"),)


def test_new_probe_buckets_replace_the_probe(tmp_path: Path) -> None:
    probe = built(tmp_path)["together_queue_probe/org/p"]
    assert not probe.reconfigure(built(tmp_path, buckets="1, 20")["together_queue_probe/org/p"])
    assert probe.reconfigure(built(tmp_path, team="c")["together_queue_probe/org/p"])
