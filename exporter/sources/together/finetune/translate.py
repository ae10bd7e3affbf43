"""Pure translation of Together fine-tune documents into samples (no I/O, no clock).

Three documents are read:

- ``GET /fine-tunes/{id}/metrics`` → ``{"metrics": [row, …]}``, each row a flat dict of
  numbers, train and eval rows separate even at the same step. ``apply_rows`` folds
  rows into a small per-job ``MetricsState``: the value of each key at the highest
  step it was logged for, the highest ``train/global_step``, when the exporter first
  saw that step (rows carry no logging time), and the read cursor (see
  ``apply_rows``). The whole curve is never kept.
- ``GET /fine-tunes/{id}`` → ``parse_job``: status, base model, output name, progress.
- ``GET /fine-tunes`` → ``parse_list``: ``(id, status)`` per listed job.

A job yields, for example::

    together_finetune_job_info{job_id="ft-1",base_model="m",output_name="o"} 1
    together_finetune_job_status{job_id="ft-1",status="pending"} 0
    together_finetune_job_status{job_id="ft-1",status="running"} 1
    …                                      (one series per documented status)
    together_finetune_global_step{job_id="ft-1"} 140
    together_finetune_global_step_first_seen_timestamp_seconds{job_id="ft-1"} 1.7e9
    together_finetune_train_loss{job_id="ft-1"} 0.42
    together_finetune_eval_loss{job_id="ft-1"} 0.47

Logged keys are named by ``together_finetune_names.metric_name`` (collision-free).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from exporter.core.errors import InvalidResponse
from exporter.core.exposition import Labels, Sample
from exporter.sources.jsonshape import count, json_object, number, required_str, text, whole
from exporter.sources.together.finetune.names import (
    DROPPED_VALUES,
    EPOCHS_COMPLETED,
    EPOCHS_CONFIGURED,
    GLOBAL_STEP,
    JOB_INFO,
    JOB_STATUS,
    KEY_LIMIT,
    LISTED_JOBS,
    QUEUE_DEPTH,
    REMAINING,
    SKIPPED_ROWS,
    STEP_FIRST_SEEN,
    key_family,
)
from exporter.sources.together.finetune.vendor import JOB_ID_RE, KNOWN_STATUSES, TERMINAL_STATUSES

STEP_KEY = "train/global_step"
METRICS_ENDPOINT = "/fine-tunes/{id}/metrics"
JOB_ENDPOINT = "/fine-tunes/{id}"
LIST_ENDPOINT = "/fine-tunes"

TERMINAL: frozenset[str] = TERMINAL_STATUSES
NOT_STARTED = frozenset({"pending", "queued"})
SKIP_REASONS = ("not_an_object", "missing_global_step", "non_numeric_value")

_MAX_LABEL = 200
# Characters of a logged key (``together.fine_tunes.max_key_length``): real keys
# (``eval/mmlu/high_school_physics/acc_norm``) are tens; a key becomes a metric name.
DEFAULT_MAX_KEY_LENGTH = 200
MAX_KEY_LENGTH_KEY = "max_key_length"


@dataclass(frozen=True)
class MetricsState:
    """What one job's rows have told us so far; bounded by ``max_keys`` and the overlap.

    ``cursor`` is the vendor time (Unix seconds) the next read asks from
    (``logged_at_from``). ``seen`` maps the fingerprint of each row read since shortly
    before the cursor to how many rows with it one read returned at most and the vendor
    time of the last read that returned it, so rows that a later, overlapping read
    returns again are recognised and not applied twice.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    value_steps: Mapping[str, int] = field(default_factory=dict)
    last_step: int | None = None
    # When the exporter first read a row of ``last_step`` (exporter time, not the vendor's).
    step_seen_at: float | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    dropped_values: int = 0
    key_limit_reached: bool = False
    cursor: float | None = None
    seen: Mapping[int, tuple[int, float]] = field(default_factory=dict)
    # Keys the metric filter removes: not kept, not counted against max_keys (at most
    # max_keys of them are remembered, for the count on the status page).
    filtered_keys: frozenset[str] = frozenset()
    # Logged values left out because their key is longer than max_key_length.
    long_keys: int = 0


def metric_rows(doc: Any) -> list[Any]:
    """The rows of a metrics response; ``{"metrics": null}`` counts as none."""
    rows = json_object(doc, METRICS_ENDPOINT).get("metrics")
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise InvalidResponse(f"{METRICS_ENDPOINT}: field metrics is not a list")
    return rows


# Every row of every read is fingerprinted: one encoder, built once, instead of one per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


def fingerprint(row: Any) -> int:
    """A row's identity: rows carry no id or time of their own, so their content is it.

    Two rows with the same content at the same step say the same thing, so treating
    them as one loses nothing a gauge could show. The content is the row's canonical
    JSON text, which tells apart what Python's numbers would not: -1 and -2 hash alike,
    and true, 1 and 1.0 are equal.
    """
    return hash(_CANONICAL_JSON.encode(row))


def iso_time(ts: float) -> str:
    """``logged_at_from``'s ISO-8601 form, whole seconds rounded down (never later than ``ts``)."""
    return datetime.fromtimestamp(math.floor(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_rows(
    state: MetricsState,
    rows: list[Any],
    now: float,
    max_keys: int,
    *,
    read_at: float,
    overlap: float,
    keep_key: Callable[[str], bool] | None = None,
    max_key_length: int = DEFAULT_MAX_KEY_LENGTH,
) -> MetricsState:
    """Fold one read's rows (in the vendor's chronological order) into ``state``.

    Reads are windows of the vendor's log time: each asks for rows logged at or after
    ``cursor``, which is the previous read's time ``read_at`` (the vendor's clock, from
    its ``Date`` header) less ``overlap``. The overlap catches rows the vendor stored
    a little after the time they carry; the rows it returns again are recognised by
    their fingerprint and skipped, so every row is applied, and every bad row counted,
    once (identical rows in one read are each applied; an identical row in a later
    read counts as new only beyond as many as one read returned before). Rows are
    asked for by time, not by step, so an eval row that arrives after
    later train rows, or a row for an old step, is still read.

    Each key shows its value at the highest step it was logged for; at the same step
    the row logged last wins. A row for an older step that arrives late therefore sets
    only keys that have no newer value (typically a slow evaluation's ``eval/…`` keys),
    and a gauge never steps back in training: what a training dashboard shows is the
    curve's newest point. ``null`` values are "no data" and leave the previous value
    in place. A row without an integral ``train/global_step`` or with a value that is
    not a number is skipped and counted; one with a step still counts towards the
    highest step. A key ``keep_key`` refuses (the metric filter) is left out before
    ``max_keys`` is applied, so filtered keys take no room; so is a key longer than
    ``max_key_length``, whose values are counted in ``long_keys``.
    """
    cursor = read_at - overlap if state.cursor is None else max(state.cursor, read_at - overlap)
    # Rows last returned before the new cursor less the overlap were logged before the
    # cursor: no later read returns them, so their fingerprints can go.
    seen = {fp: entry for fp, entry in state.seen.items() if entry[1] >= cursor - overlap}
    in_read: dict[int, int] = {}
    values = dict(state.values)
    value_steps = dict(state.value_steps)
    skipped = dict(state.skipped)
    dropped = state.dropped_values
    limit_hit = state.key_limit_reached
    filtered = set(state.filtered_keys)
    long_keys = state.long_keys
    top = state.last_step
    for row in rows:
        fp = fingerprint(row)
        n = in_read[fp] = in_read.get(fp, 0) + 1
        before = seen.get(fp, (0, read_at))[0]
        seen[fp] = (max(before, n), read_at)
        if n <= before:
            continue  # returned by an earlier read too
        if not isinstance(row, dict):
            skipped["not_an_object"] = skipped.get("not_an_object", 0) + 1
            continue
        step = whole(row.get(STEP_KEY))
        if step is None:
            skipped["missing_global_step"] = skipped.get("missing_global_step", 0) + 1
            continue
        top = step if top is None else max(top, step)
        parsed: dict[str, float] = {}
        for key, raw in row.items():
            if key == STEP_KEY or raw is None:
                continue
            num = number(raw)
            if num is None:
                parsed = {}
                skipped["non_numeric_value"] = skipped.get("non_numeric_value", 0) + 1
                break
            parsed[key] = num
        for key, num in parsed.items():
            if len(key) > max_key_length:
                long_keys += 1
                continue
            if keep_key is not None and key not in values and not keep_key(key):
                if len(filtered) < max_keys:
                    filtered.add(key)
                continue
            if key in values:
                if step >= value_steps[key]:
                    values[key] = num
                    value_steps[key] = step
            elif key and len(values) < max_keys:
                values[key] = num
                value_steps[key] = step
            else:
                dropped += 1
                limit_hit = limit_hit or bool(key)
    step_seen_at = state.step_seen_at
    if top is not None and top != state.last_step:
        step_seen_at = now
    return MetricsState(
        values,
        value_steps,
        top,
        step_seen_at,
        skipped,
        dropped,
        limit_hit,
        cursor,
        seen,
        frozenset(filtered),
        long_keys,
    )


def rebound(
    state: MetricsState,
    max_keys: int,
    *,
    keep_key: Callable[[str], bool] | None = None,
    max_key_length: int = DEFAULT_MAX_KEY_LENGTH,
) -> MetricsState:
    """``state`` held to new bounds (a reload changed them) as ``apply_rows`` holds rows to
    them: keys longer than ``max_key_length`` go, keys ``keep_key`` refuses go to the
    filtered ones, and of the others the first ``max_keys`` kept stay (the key limit
    then counts as reached). Filtered keys the filter now keeps are forgotten: their next
    row brings them. The same object when nothing changes."""
    kept: list[str] = []
    refused = [k for k in state.filtered_keys if keep_key is not None and not keep_key(k)]
    for key in state.values:
        if len(key) > max_key_length:
            continue
        if keep_key is not None and not keep_key(key):
            refused.append(key)
        else:
            kept.append(key)
    filtered = frozenset(refused[:max_keys])
    if len(kept) == len(state.values) and len(kept) <= max_keys and filtered == state.filtered_keys:
        return state
    return replace(
        state,
        values={k: state.values[k] for k in kept[:max_keys]},
        value_steps={k: state.value_steps[k] for k in kept[:max_keys]},
        key_limit_reached=state.key_limit_reached or len(kept) > max_keys,
        filtered_keys=filtered,
    )


@dataclass(frozen=True)
class JobInfo:
    """The parts of a FinetuneResponse this exporter uses."""

    status: str
    base_model: str = ""
    output_name: str = ""
    remaining_seconds: float | None = None
    epochs_completed: float | None = None
    epochs_configured: float | None = None
    queue_depth: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def parse_job(doc: Any) -> JobInfo:
    """Read a job object. A missing status is schema drift; every other field is optional."""
    doc = json_object(doc, JOB_ENDPOINT)
    status = required_str(doc, "status", JOB_ENDPOINT, empty=False)
    remaining = None
    progress = doc.get("progress")
    if isinstance(progress, dict) and progress.get("estimate_available") is True:
        remaining = count(progress.get("seconds_remaining"))
    return JobInfo(
        status=status[:64],
        base_model=text(doc.get("model"), _MAX_LABEL),
        output_name=text(doc.get("model_output_name"), _MAX_LABEL),
        remaining_seconds=remaining,
        epochs_completed=count(doc.get("epochs_completed")),
        epochs_configured=count(doc.get("n_epochs")),
        queue_depth=count(doc.get("queue_depth")),
    )


def status_samples(labels: Labels, status: str) -> list[Sample]:
    """``together_finetune_job_status``: each documented status, 1 for ``status``, else 0.

    A status the API does not document is its own series with 1, so a new vendor state
    shows up instead of the job looking as if it had none.
    """
    out = [Sample(JOB_STATUS, (*labels, ("status", s)), 1.0 if s == status else 0.0) for s in KNOWN_STATUSES]
    if status not in KNOWN_STATUSES:
        out.append(Sample(JOB_STATUS, (*labels, ("status", status)), 1.0))
    return out


def job_samples(job_id: str, info: JobInfo | None, state: MetricsState) -> list[Sample]:
    """Everything one job exports: its info, status and progress, then its logged keys."""
    labels: Labels = (("job_id", job_id),)
    out: list[Sample] = []
    if info is not None:
        out.append(
            Sample(
                JOB_INFO, (*labels, ("base_model", info.base_model), ("output_name", info.output_name)), 1.0
            )
        )
        out.extend(status_samples(labels, info.status))
        for fam, value in (
            (REMAINING, info.remaining_seconds),
            (EPOCHS_COMPLETED, info.epochs_completed),
            (EPOCHS_CONFIGURED, info.epochs_configured),
            (QUEUE_DEPTH, info.queue_depth),
        ):
            if value is not None:
                out.append(Sample(fam, labels, value))
    if state.last_step is not None:
        out.append(Sample(GLOBAL_STEP, labels, float(state.last_step)))
    if state.step_seen_at is not None:
        out.append(Sample(STEP_FIRST_SEEN, labels, state.step_seen_at))
    out.extend(
        Sample(SKIPPED_ROWS, (*labels, ("reason", r)), float(state.skipped.get(r, 0))) for r in SKIP_REASONS
    )
    out.append(Sample(DROPPED_VALUES, labels, float(state.dropped_values)))
    out.append(Sample(KEY_LIMIT, labels, 1.0 if state.key_limit_reached else 0.0))
    out.extend(Sample(key_family(k), labels, v) for k, v in sorted(state.values.items()))
    return out


def parse_list(doc: Any) -> list[tuple[str, str]]:
    """``(id, status)`` of each job in a FinetuneTruncatedList.

    Entries without both, or whose id is not a well-formed ``ft-…`` id (it goes into
    request paths), are ignored.
    """
    data = json_object(doc, LIST_ENDPOINT).get("data")
    if not isinstance(data, list):
        raise InvalidResponse(f"{LIST_ENDPOINT}: field data is missing or not a list")
    out: list[tuple[str, str]] = []
    for item in data:
        if isinstance(item, dict):
            jid, status = item.get("id"), item.get("status")
            if isinstance(jid, str) and JOB_ID_RE.match(jid) and isinstance(status, str) and status:
                out.append((jid, status[:64]))
    return out


def list_samples(jobs: list[tuple[str, str]]) -> list[Sample]:
    counts: dict[str, int] = dict.fromkeys(KNOWN_STATUSES, 0)
    for _, status in jobs:
        counts[status] = counts.get(status, 0) + 1
    return [Sample(LISTED_JOBS, (("status", s),), float(n)) for s, n in counts.items()]
