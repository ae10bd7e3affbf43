"""Three shards against one simulator serve, together, exactly what one unsharded exporter serves."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SIM_KEY
from tests.helpers import Proc, Scrape, promtool_check_metrics, running, scrape, start_daemon, wait_until
from tests.integration.test_queue_daemon import write_config

MODELS = [f"acme/model-{i:02d}" for i in range(24)]

# Per-process families: every replica has its own, so they are not split between shards.
PER_PROCESS = (
    "process_",
    "python_",
    "inference_exporter_build_info",
    "inference_exporter_config_",
    "inference_exporter_upstream_",
    "inference_exporter_http_",
    "inference_exporter_asyncio_tasks",
    "inference_exporter_shard_",
    "inference_exporter_total_shards",
)

Series = set[tuple[str, frozenset[tuple[str, str]]]]


def target_series(s: Scrape) -> Series:
    return {key for key in s.samples if not key[0].startswith(PER_PROCESS)}


def all_polled(p: Proc, expected_targets: int) -> bool:
    s = scrape(p.url)
    ups = s.series("inference_exporter_target_up")
    return len(ups) == expected_targets and all(v == 1 for _, v in ups)


def test_three_shards_split_the_targets_without_overlap(tmp_path: Path, simulator: Proc) -> None:
    config = write_config(tmp_path, simulator.url, MODELS, interval="1s")
    env = {"TEST_TOGETHER_KEY": SIM_KEY}
    whole = start_daemon(tmp_path, config, env=env)
    shards = [
        start_daemon(tmp_path, config, env=env, extra_args=["--shard", "0", "--total-shards", "3"]),
        start_daemon(tmp_path, config, env=env, extra_args=["--shard", "1", "--total-shards", "3"]),
        # The third takes its ordinal from a StatefulSet-style pod name.
        start_daemon(
            tmp_path,
            config,
            env={**env, "POD_NAME": "inference-exporter-2"},
            extra_args=["--shard.from-pod-name", "--total-shards", "3"],
        ),
    ]
    with running(whole, *shards):
        wait_until(lambda: all_polled(whole, len(MODELS)), timeout=15, what="unsharded polls")
        counts = []
        for p in shards:
            s = scrape(p.url)
            counts.append(len(s.series("inference_exporter_target_up")))
        assert sum(counts) == len(MODELS) and all(c > 0 for c in counts), counts
        for p, n in zip(shards, counts, strict=True):
            wait_until(lambda p=p, n=n: all_polled(p, n), timeout=15, what="shard polls")

        expected = target_series(scrape(whole.url))
        parts = [target_series(scrape(p.url)) for p in shards]
        assert parts[0] | parts[1] | parts[2] == expected
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert sum(len(p) for p in parts) == len(expected)

        for ordinal, p in enumerate(shards):
            s = scrape(p.url)
            assert s.value("inference_exporter_shard_ordinal") == ordinal
            assert s.value("inference_exporter_total_shards") == 3
            assert s.value("inference_exporter_shard_targets") == counts[ordinal]
            assert promtool_check_metrics(s.text) == ""
        w = scrape(whole.url)
        assert w.value("inference_exporter_shard_ordinal") == 0
        assert w.value("inference_exporter_total_shards") == 1
