"""The ``together.probes:`` list: opt-in synthetic jobs submitted to a model's queue.

Each probe submits a real job (which costs money on a real account), so nothing is
probed unless listed here. Cross-field rules (unique models, a timeout that fits in
the interval) are semantic checks, so their errors point at the exact key and line.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, StrictInt, field_validator

from exporter.configkit.common import Duration, Labelled, NonBlank
from exporter.configkit.problems import Finding, Path, duplicates
from exporter.core.histogram import check_bounds
from exporter.sources.together.probe_translate import DEFAULT_BUCKETS

DEFAULT_INFO: dict[str, Any] = {"submitted_by": "inference-exporter-probe"}
# Each bucket bound is one series per phase and model.
MAX_BUCKETS = 40


def _json_object(value: dict[str, Any], what: str) -> dict[str, Any]:
    """YAML can hold values JSON cannot (dates, NaN); catch them here, not at submit time."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be plain JSON (strings, numbers, lists, mappings): {exc}") from None
    return value


class ProbeConfig(Labelled):
    """One model to probe with ``POST /queue/submit`` then ``GET /queue/status``."""

    model: NonBlank
    # Freeform model input, passed unchanged to the model: keep it tiny and cheap.
    payload: dict[str, Any]
    priority: StrictInt = 0
    info: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_INFO))
    # How often a probe job is submitted.
    interval: Duration = 300.0
    # How long a probe may take from submit to a terminal status before it is a
    # failure (and its job, if still pending, is canceled).
    timeout: Duration = 60.0
    # How often the job's status is read while the probe waits for it.
    status_poll_interval: Duration = 2.0
    # Upper bounds of the phase histograms' buckets (``+Inf`` is implicit).
    buckets: tuple[Duration, ...] = DEFAULT_BUCKETS

    @field_validator("payload")
    @classmethod
    def _payload_json(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _json_object(v, "payload")

    @field_validator("info")
    @classmethod
    def _info_json(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _json_object(v, "info")

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) > MAX_BUCKETS:
            raise ValueError(f"at most {MAX_BUCKETS} bucket bounds (each is a series per phase)")
        return check_bounds(v)


def probe_checks(root: Path, probes: list[ProbeConfig]) -> list[Finding]:
    """Duplicate probed models in the account at ``root``, and timings that cannot work."""
    models = (((*root, "probes", i, "model"), p.model) for i, p in enumerate(probes))
    out = duplicates(models, "probe model", "; at most one probe job is in flight per model")
    for i, p in enumerate(probes):
        base: Path = (*root, "probes", i)
        if p.timeout >= p.interval:
            out.append(
                (
                    (*base, "timeout"),
                    f"timeout ({p.timeout:g}s) must be shorter than interval ({p.interval:g}s):"
                    " a probe must end before the next one starts",
                )
            )
        if p.status_poll_interval > p.timeout:
            out.append(
                (
                    (*base, "status_poll_interval"),
                    f"status_poll_interval ({p.status_poll_interval:g}s) must not exceed"
                    f" timeout ({p.timeout:g}s)",
                )
            )
    return out
