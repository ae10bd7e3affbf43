"""Metric families of the fine-tune source, and the names given to logged keys.

Key → metric name (``metric_name``), collision-free by construction:

1. A *plain* key — a lowercase namespace, one ``/``, a lowercase snake_case name
   (``train/loss``, ``eval/accuracy``, ``train/learning_rate``) — becomes
   ``together_finetune_<namespace>_<name>``, unless that is one of this source's own
   metric names or ends in a suffix Prometheus reserves (``_total``, ``_count``,
   ``_sum``, ``_bucket``, ``_info``, ``_created``).
2. Every other key is *escaped*: ``a-z`` and ``0-9`` are kept, and every other
   character becomes ``__<hex code point>_`` (``/`` → ``__2f_``, ``_`` → ``__5f_``,
   ``A`` → ``__41_``); if the result ends in a reserved suffix, ``__`` is appended.

Plain names never contain ``__`` and always contain an ``_``; escaped names contain
``__`` unless the key is a single ``[a-z0-9]+`` word (no ``_`` at all); and escaping is
decodable left to right. So two different keys never share a name, and no key takes
the name of one of the fixed families here (all of which have an ``_`` after the
prefix and no ``__``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from exporter.core.exposition import Family

PREFIX = "together_finetune_"

JOB_INFO = Family(
    "together_finetune_job_info",
    "gauge",
    "Fine-tune job metadata that does not change, value 1 (Together GET /fine-tunes/{id}: model,"
    " model_output_name).",
    labels=("job_id", "base_model", "output_name"),
)
JOB_STATUS = Family(
    "together_finetune_job_status",
    "gauge",
    "1 for the job's current status, 0 for every other documented one (Together GET /fine-tunes/{id}"
    " field status); an undocumented status is a series of its own with 1.",
    labels=("job_id", "status"),
)
REMAINING = Family(
    "together_finetune_remaining_seconds",
    "gauge",
    "Estimated seconds until the job's next state (Together progress.seconds_remaining, "
    "present only while progress.estimate_available is true).",
    labels=("job_id",),
)
EPOCHS_COMPLETED = Family(
    "together_finetune_epochs_completed",
    "gauge",
    "Epochs completed (Together field epochs_completed).",
    labels=("job_id",),
)
EPOCHS_CONFIGURED = Family(
    "together_finetune_epochs_configured",
    "gauge",
    "Epochs the job was configured for (Together field n_epochs).",
    labels=("job_id",),
)
QUEUE_DEPTH = Family(
    "together_finetune_queue_depth",
    "gauge",
    "Jobs ahead of this one in Together's queue (field queue_depth).",
    labels=("job_id",),
)
GLOBAL_STEP = Family(
    "together_finetune_global_step",
    "gauge",
    "Highest train/global_step among the job's logged rows (Together GET /fine-tunes/{id}/metrics).",
    labels=("job_id",),
)
STEP_FIRST_SEEN = Family(
    "together_finetune_global_step_first_seen_timestamp_seconds",
    "gauge",
    "Unix time at which the exporter first read a row of the job's current global step (the vendor's"
    " rows carry no time of their own).",
    labels=("job_id",),
)
SKIPPED_ROWS = Family(
    "together_finetune_skipped_rows_total",
    "counter",
    "Metric rows ignored by reason: not_an_object, missing_global_step (no integer train/global_step) "
    "or non_numeric_value.",
    labels=("job_id", "reason"),
)
DROPPED_VALUES = Family(
    "together_finetune_dropped_values_total",
    "counter",
    "Logged values dropped because the job already has max_keys distinct keys.",
    labels=("job_id",),
)
KEY_LIMIT = Family(
    "together_finetune_key_limit_reached",
    "gauge",
    "1 once the job logged more distinct keys than max_keys (the extra keys are not exported), else 0.",
    labels=("job_id",),
)
LISTED_JOBS = Family(
    "together_finetune_listed_jobs",
    "gauge",
    "Fine-tune jobs listed by Together GET /fine-tunes, by status.",
    labels=("status",),
)

# Every family of a job and of the job list with a name of its own (keys make the others).
FAMILIES = (
    JOB_INFO,
    JOB_STATUS,
    REMAINING,
    EPOCHS_COMPLETED,
    EPOCHS_CONFIGURED,
    QUEUE_DEPTH,
    GLOBAL_STEP,
    STEP_FIRST_SEEN,
    SKIPPED_ROWS,
    DROPPED_VALUES,
    KEY_LIMIT,
    LISTED_JOBS,
)
FIXED_NAMES = frozenset(f.name for f in FAMILIES)
_RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_info", "_created")
_PLAIN_KEY = re.compile(r"^([a-z][a-z0-9]*)/([a-z0-9]+(?:_[a-z0-9]+)*)$")


# Keys up to this long have their name and family kept (real keys are tens of
# characters), so that what the caches hold stays small whatever the keys are.
_CACHED_KEY_LENGTH = 128


def metric_name(key: str) -> str:
    """The metric name for a logged key (see the module docstring for the rules)."""
    return _cached_name(key) if len(key) <= _CACHED_KEY_LENGTH else _name(key)


def key_family(key: str) -> Family:
    return _cached_family(key) if len(key) <= _CACHED_KEY_LENGTH else _family(key)


def _name(key: str) -> str:
    m = _PLAIN_KEY.match(key)
    if m is not None:
        name = f"{PREFIX}{m[1]}_{m[2]}"
        if name not in FIXED_NAMES and not name.endswith(_RESERVED_SUFFIXES):
            return name
    escaped = "".join(ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else f"__{ord(ch):x}_" for ch in key)
    name = PREFIX + escaped
    if name.endswith(_RESERVED_SUFFIXES):
        name += "__"
    return name


def _family(key: str) -> Family:
    help_key = key if len(key) <= 100 else key[:100] + "…"
    return Family(
        metric_name(key),
        "gauge",
        f"Latest logged value of key {help_key!r} (Together GET /fine-tunes/{{id}}/metrics).",
        labels=("job_id",),
    )


_cached_name = lru_cache(maxsize=4096)(_name)
_cached_family = lru_cache(maxsize=4096)(_family)
