"""Targets built from the config: one frozen settings object each, compared on reload."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_config
from exporter.sources.base import Target
from exporter.targets import build_targets
from exporter.upstream import Clients
from tests.helpers import write_yaml

CONFIG = """\
together:
  base_url: http://127.0.0.1:1/v1
  api_key_env: TOGETHER_TEST_KEY
  queues:
    - model: org/q
      poll_interval: {queue_interval}
  probes:
    - model: org/p
      payload: {{prompt: ping}}
  fine_tunes:
    jobs:
      - id: ft-a
    discovery:
      enabled: true
      statuses: [{statuses}]
baseten:
  api_key_env: BASETEN_TEST_KEY
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
