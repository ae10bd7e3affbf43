"""The ``together.fine_tunes:`` section: which fine-tune jobs to watch and how.

Jobs are named explicitly (``jobs:``), found through ``GET /fine-tunes`` (``discovery:``),
or both; a job named explicitly is polled once even when discovery finds it too.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from exporter.configkit.common import Duration, Labelled, Schedule, Strict
from exporter.configkit.problems import Finding, Path, duplicates
from exporter.sources.base import DEFAULT_MAX_TARGETS
from exporter.sources.together.finetune.translate import DEFAULT_MAX_KEY_LENGTH
from exporter.sources.together.finetune.vendor import JOB_ID_RE, UNFINISHED_STATUSES, JobStatus


class FineTuneJob(Schedule, Labelled):
    """One job named in the config, polled until it finishes (and for ``retention`` after)."""

    id: str

    @field_validator("id")
    @classmethod
    def _ft_id(cls, v: str) -> str:
        if not JOB_ID_RE.match(v):
            raise ValueError(f"a fine-tune job id starts with 'ft-' (e.g. ft-1a2b3c), got {v!r}")
        return v


class FineTuneDiscoverySection(Labelled):
    """Watching every job that ``GET /fine-tunes`` lists in one of ``statuses``."""

    # Its name in config.schema.json, from before the runtime discovery took the name.
    model_config = ConfigDict(title="FineTuneDiscovery")

    enabled: bool = False
    statuses: list[JobStatus] = Field(default_factory=lambda: list(UNFINISHED_STATUSES), min_length=1)
    # How often the job list is read; new jobs show up (and vanished ones go) at this pace.
    refresh_interval: Duration = 60.0
    timeout: Duration | None = None
    # Most jobs watched at once; a list with more fails the discovery (too_many_targets),
    # which keeps the jobs it found before.
    max_targets: int = Field(default=DEFAULT_MAX_TARGETS, ge=1, le=1_000_000)


class FineTunesConfig(Strict):
    """Settings shared by every fine-tune job, explicit or discovered."""

    # Poll interval and request timeout of each job (explicit jobs may override them).
    poll_interval: Duration | None = None
    timeout: Duration | None = None
    # Number of train rows asked for on a job's first read of its history (uniformly
    # sampled by the vendor; eval rows always come in full). Unset: the whole history.
    resolution: int | None = Field(default=None, ge=1, le=1_000_000)
    # How long a finished job's series stay after its final read.
    retention: Duration = 3600.0
    # Most distinct logged keys exported per job; more are dropped and counted (keys
    # the metric filter removes do not count).
    max_keys: int = Field(default=200, ge=1, le=10_000)
    # Longest logged key exported (characters; a key becomes a metric name): the values
    # of a longer one are dropped and counted.
    max_key_length: int = Field(default=DEFAULT_MAX_KEY_LENGTH, ge=16, le=10_000)
    # Each read asks for rows logged since the previous read (by the vendor's clock)
    # less this much, to catch rows stored a little after the time they carry; rows
    # read twice are applied once. At least 1s (the vendor's clock comes in seconds).
    logged_at_overlap: Duration = Field(default=60.0, ge=1.0, le=86_400.0)
    jobs: list[FineTuneJob] = Field(default_factory=list)
    discovery: FineTuneDiscoverySection = Field(default_factory=FineTuneDiscoverySection)


def fine_tune_checks(root: Path, ft: FineTunesConfig) -> list[Finding]:
    """A job named twice, or a status listed twice, in the ``fine_tunes:`` of the account at ``root``."""
    jobs = (((*root, "fine_tunes", "jobs", i, "id"), j.id) for i, j in enumerate(ft.jobs))
    statuses = (
        ((*root, "fine_tunes", "discovery", "statuses", i), s) for i, s in enumerate(ft.discovery.statuses)
    )
    return [*duplicates(jobs, "fine-tune job id"), *duplicates(statuses, "discovery status")]
