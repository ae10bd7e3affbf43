"""What Together's fine-tune answers can make is bounded: key lengths, jobs watched at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from exporter.core.scope import Scope
from exporter.engine.poller import Outcome, poll_with_deadline
from exporter.sources.base import Target
from exporter.sources.together.api import TogetherAPI
from exporter.sources.together.finetune import names
from exporter.sources.together.finetune.target import (
    FineTuneDiscovery,
    FineTuneDiscoverySettings,
    JobSettings,
    JobTarget,
)
from exporter.upstream.client import UpstreamStats
from tests.helpers import exposition, mock_clients

NOW = 1_800_000_000.0
JOB = JobSettings(interval=30.0, timeout=5.0, resolution=None, retention=60.0, max_keys=200)
HITS = "inference_exporter_limit_hits_total"


class Together:
    """A Together account on an in-process fake: one job's object and rows, and the job list."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rows: list[dict[str, Any]] = []
        self.listed: list[dict[str, str]] = []
        self.status = "running"
        self.api = TogetherAPI(mock_clients("together", self._answer, UpstreamStats(self.registry)))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/fine-tunes":
            return httpx.Response(200, json={"data": self.listed})
        if path.endswith("/metrics"):
            return httpx.Response(200, json={"metrics": self.rows})
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1], "status": self.status, "model": "m"})

    def hits(self, source: str, limit: str) -> float:
        value = self.registry.get_sample_value(HITS, {"source": source, "limit": limit, "account": "default"})
        return value or 0.0


def poll(target: Target) -> Outcome:
    return asyncio.run(poll_with_deadline(target, NOW))


def test_keys_past_the_length_limit_are_left_out_and_counted() -> None:
    """200 keys of 20,000 characters used to make a 60 MB exposition."""
    together = Together()
    long = {f"{'K' * 19_990}{i:010d}": 0.5 for i in range(200)}
    together.rows = [{"train/global_step": 1, "train/loss": 0.25, **long}]
    outcome = poll(JobTarget(together.api, "ft-a", JOB))
    assert outcome.data is not None, outcome.detail
    text = exposition([outcome.data]).decode()
    assert len(text) < 10_000
    assert 'together_finetune_train_loss{job_id="ft-a",account="default"} 0.25' in text
    assert together.hits("together_finetune", "max_key_length") == 200
    # The limit is the config's; a key at it is kept.
    longer = JobSettings(30.0, 5.0, None, 60.0, 200, max_key_length=20_000)
    together.rows = [{"train/global_step": 1, "K" * 20_000: 1.0}]
    outcome = poll(JobTarget(together.api, "ft-b", longer))
    assert outcome.data is not None
    assert any(name.startswith("together_finetune___4b___4b_") for name in outcome.data.lines)


def test_a_reload_that_lowers_the_key_limits_applies_them_to_the_keys_a_job_holds() -> None:
    together = Together()
    together.rows = [
        {"train/global_step": 1, "train/" + "x" * 30: 1.0, **{f"train/k{i}": 0.5 for i in range(5)}}
    ]
    job = JobTarget(together.api, "ft-a", JOB)
    assert len(keys(poll(job))) == 6
    together.rows = []  # nothing new logged: what it shows is what it holds
    assert job.reconfigure(JobTarget(together.api, "ft-a", replace(JOB, max_key_length=20)))
    assert len(keys(poll(job))) == 5
    assert job.reconfigure(JobTarget(together.api, "ft-a", replace(JOB, max_key_length=20, max_keys=2)))
    assert keys(poll(job)) == ["together_finetune_train_k0", "together_finetune_train_k1"]


def test_a_reload_that_lowers_the_series_limit_below_a_finished_jobs_fails_its_next_poll() -> None:
    """Its last series used to be rendered again within the reload, whose target set was
    then left half changed by the limit's error."""
    together = Together()
    together.status = "completed"
    together.rows = [{"train/global_step": 1, **{f"train/k{i}": 0.5 for i in range(5)}}]
    job = JobTarget(together.api, "ft-a", JOB)
    assert len(keys(poll(job))) == 5 and job.finished_at is not None
    assert job.reconfigure(JobTarget(together.api, "ft-a", replace(JOB, scope=Scope(max_series=3))))
    assert poll(job).reason == "too_many_series"
    assert together.hits("together_finetune", "max_series_per_target") == 1
    relabelled = replace(JOB, scope=Scope(labels=(("team", "a"),)))
    assert job.reconfigure(JobTarget(together.api, "ft-a", relabelled))
    outcome = poll(job)
    assert len(keys(outcome)) == 5 and outcome.data is not None
    assert b'team="a"' in outcome.data.lines["together_finetune_train_k0"]


def keys(outcome: Outcome) -> list[str]:
    """The logged keys' families in what a poll yielded."""
    assert outcome.data is not None, outcome.detail
    return sorted(n for n in outcome.data.lines if n.startswith("together_finetune_train_"))


def discovery(together: Together, **kw: Any) -> FineTuneDiscovery:
    return FineTuneDiscovery(
        together.api, FineTuneDiscoverySettings(frozenset({"running"}), 60.0, 5.0, JOB, **kw)
    )


def test_a_list_of_more_running_jobs_than_max_targets_fails_the_discovery_and_keeps_its_jobs() -> None:
    """A list of 20,000 running jobs used to become 20,001 targets."""
    together = Together()
    together.listed = [{"id": f"ft-{i:06d}", "status": "running"} for i in range(3)]
    finder = discovery(together)
    before = poll(finder).found
    assert before is not None and len(before) == 3
    together.listed = [{"id": f"ft-{i:06d}", "status": "running"} for i in range(20_000)]
    refused = poll(finder)
    assert refused.reason == "too_many_targets" and refused.found is None
    assert "found 20000 jobs to watch" in refused.detail and "max_targets (10000)" in refused.detail
    assert together.hits("together_finetune_discovery", "max_targets") == 1
    # Its state is as the last good list left it: the same jobs, the same objects.
    assert list(finder.jobs.values()) == before
    together.listed = together.listed[:4]
    after = poll(finder).found
    assert after is not None and after[:3] == before and len(after) == 4


def test_max_targets_is_the_configs() -> None:
    together = Together()
    together.listed = [{"id": f"ft-{i:06d}", "status": "running"} for i in range(5)]
    assert len(poll(discovery(together, max_targets=5)).found or []) == 5
    assert poll(discovery(together, max_targets=4)).reason == "too_many_targets"


def test_long_keys_are_named_without_filling_the_name_caches() -> None:
    """The name of each key used to be kept whatever its length (8,192 names of any size)."""
    before = names._cached_name.cache_info().currsize, names._cached_family.cache_info().currsize
    key = "A" * 5_000
    assert names.metric_name(key) == names.PREFIX + "__41_" * 5_000
    assert names.key_family(key).name == names.metric_name(key)
    after = names._cached_name.cache_info().currsize, names._cached_family.cache_info().currsize
    assert after == before
