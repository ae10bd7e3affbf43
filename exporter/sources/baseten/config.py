"""The ``baseten:`` section: deployments to poll, explicitly or found by discovery, and
Baseten's own Prometheus endpoints to relay (``organisation``).

One account written flat, or several under ``accounts:`` (as for ``together:``).
Request settings (``mode``, ``metrics``, ``window``, ``counter_window``, ``delay``)
can be set on the account, as defaults, and on each deployment or discovery rule.
Cross-level rules (a ``window`` with mode CURRENT, duplicates) are checked by
``semantic_checks`` so ``check-config`` reports them with file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from exporter.configkit.common import AccountCommon, Duration, Labelled, Schedule, Strict, format_duration
from exporter.configkit.problems import Finding, Path, format_path, repeats
from exporter.configkit.sections import CheckContext, listed_accounts
from exporter.core.exposition import valid_metric_name
from exporter.sources.base import DEFAULT_MAX_TARGETS
from exporter.sources.baseten.descriptors import DEFAULT_MAX_FAMILIES, DEFAULT_MAX_LABEL_LENGTH
from exporter.sources.baseten.organisation import BasetenPrometheusEndpoint, OrganisationMetrics
from exporter.sources.baseten.vendor import DEPLOYMENT_STATUSES, MAX_WINDOW_SECONDS

DEFAULT_BASETEN_URL = "https://api.baseten.co"
DEFAULT_WINDOW = 600.0
DEFAULT_COUNTER_WINDOW = 900.0
DEFAULT_DELAY = 180.0
DEFAULT_REFRESH = 300.0

Mode = Literal["CURRENT", "SUMMARY", "SERIES"]

# Deployments in these states serve nothing and have no metrics to read.
DEFAULT_SKIP_STATUSES = ("INACTIVE", "DEACTIVATING", "BUILD_FAILED", "BUILD_STOPPED", "DEPLOY_FAILED")


NAME = "baseten"

# A poll interval in seconds and the key it was written at (None: the built-in default).
Interval = tuple[float, Path | None]
# A duration as the file wrote it at a key (or in the config's units if not written there).
Shown = Callable[[Path | None, float], str]


def _check_window(v: float) -> float:
    if v > MAX_WINDOW_SECONDS:
        raise ValueError("the window must not exceed 7 days (the vendor rejects longer windows)")
    return v


def _check_metric_name(name: str) -> str:
    if not valid_metric_name(name):
        raise ValueError(f"{name!r} is not a metric name (letters, digits, _ and :)")
    return name


def _check_vendor_id(value: str) -> str:
    if value and not _VENDOR_ID_RE.match(value):
        raise ValueError(f"{value!r} is not an id: it is a part of the URL path, without '/' or spaces")
    return value


_VENDOR_ID_RE = re.compile(r"^[^/\s]+$")
# An id that goes into a URL path as it is.
VendorId = Annotated[
    str,
    Field(min_length=1),
    AfterValidator(_check_vendor_id),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": _VENDOR_ID_RE.pattern}),
]
Window = Annotated[Duration, AfterValidator(_check_window)]
MetricName = Annotated[str, AfterValidator(_check_metric_name)]


class RequestSettings(Schedule):
    """What to ask the metrics endpoint for. Unset fields inherit from the section."""

    mode: Mode | None = None
    metrics: list[MetricName] | None = None
    window: Window | None = None
    counter_window: Window | None = None
    delay: Duration | None = None


class DeploymentSection(RequestSettings, Labelled):
    """One deployment polled with ``GET /v1/models/{model_id}/deployments/{deployment_id}/metrics``."""

    # Its name in config.schema.json, from before the runtime target took the name.
    model_config = ConfigDict(title="DeploymentTarget")

    model_id: VendorId
    deployment_id: VendorId


class DiscoveryRule(RequestSettings, Labelled):
    """Deployments found through ``GET /v1/models`` and ``GET /v1/models/{id}/deployments``.

    ``poll_interval``/``timeout`` apply to the deployments found; ``refresh_interval``
    is how often the lists are read again.
    """

    refresh_interval: Duration = DEFAULT_REFRESH
    model_names: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    production_only: bool = False
    skip_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_SKIP_STATUSES))
    # Most deployments the rule may find (and models it may list the deployments of);
    # past it the rule fails with too_many_targets and keeps what it found before.
    max_targets: int = Field(default=DEFAULT_MAX_TARGETS, ge=1, le=1_000_000)

    @field_validator("skip_statuses")
    @classmethod
    def _known_statuses(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in DEPLOYMENT_STATUSES]
        if unknown:
            raise ValueError(
                f"unknown deployment status {unknown[0]!r}; known: {', '.join(sorted(DEPLOYMENT_STATUSES))}"
            )
        return v


class BasetenAccount(AccountCommon):
    base_url: str = DEFAULT_BASETEN_URL
    mode: Mode = "CURRENT"
    # Empty: the vendor's default set (replicas active, requests, end-to-end latency).
    metrics: list[MetricName] = Field(default_factory=list)
    window: Window | None = None
    counter_window: Window = DEFAULT_COUNTER_WINDOW
    delay: Duration = DEFAULT_DELAY
    # How often an explicit deployment re-reads its names and status for the _info and status gauges.
    info_refresh_interval: Duration = DEFAULT_REFRESH
    # Most families one deployment's answer may make; more fail its poll (too_many_families).
    max_families_per_target: int = Field(default=DEFAULT_MAX_FAMILIES, ge=1, le=1_000_000)
    # Longest vendor label name or value, metric name, id or deployment name (characters):
    # a series with a longer one is dropped and counted.
    max_label_value_length: int = Field(default=DEFAULT_MAX_LABEL_LENGTH, ge=16, le=1_000_000)
    deployments: list[DeploymentSection] = Field(default_factory=list)
    discovery: list[DiscoveryRule] = Field(default_factory=list)
    # Baseten's organisation metrics endpoint, relayed (written: on; {} takes every default).
    organisation_metrics: OrganisationMetrics | None = None
    # Other endpoints in the Prometheus text format, relayed with the account's key.
    prometheus_endpoints: list[BasetenPrometheusEndpoint] = Field(default_factory=list)


class BasetenConfig(BasetenAccount):
    """The section: its own fields are the one account of the flat form; with
    ``accounts:`` they stay unset (checked with their lines in ``accounts.checks``)."""

    accounts: list[BasetenAccount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_reference(self) -> BasetenConfig:
        if not self.accounts:
            self.check_reference()
        return self

    def account_list(self) -> list[tuple[Path, BasetenAccount]]:
        """Each account with the config path it is written at."""
        return listed_accounts(self, NAME, self)


class Effective(Strict):
    """A deployment's request settings once defaults are applied."""

    mode: Mode
    metrics: tuple[str, ...]
    window: float
    counter_window: float
    delay: float


def effective(section: BasetenAccount, item: RequestSettings) -> Effective:
    mode = item.mode or section.mode
    window = item.window or section.window or DEFAULT_WINDOW
    metrics = item.metrics if item.metrics is not None else section.metrics
    return Effective(
        mode=mode,
        metrics=tuple(metrics),
        window=window,
        counter_window=item.counter_window or section.counter_window,
        delay=item.delay or section.delay,
    )


def _level_checks(
    path: Path, mode: Mode, window: float | None, metrics: list[str] | None
) -> Iterable[tuple[Path, str]]:
    if window is not None and mode == "CURRENT":
        yield (
            (*path, "window"),
            "a window (start) is only valid with mode SUMMARY or SERIES; "
            "mode CURRENT reads a snapshot at now and takes no start",
        )
    named = (((*path, "metrics", i), name) for i, name in enumerate(metrics or []))
    for where, name, first in repeats(named):
        yield (where, f"duplicate metric {name!r} (first at metrics[{first[-1]}])")


def _overlap_check(
    root: Path, path: Path, section: BasetenAccount, item: RequestSettings, interval: Interval, shown: Shown
) -> Iterable[tuple[Path, str]]:
    """Counters read a SERIES window each poll; consecutive windows must overlap by a
    step or the steps between them are never read. The problem is put on the key the
    file wrote: the window when it was set, else the poll interval that a default
    window cannot cover."""
    eff = effective(section, item)
    key, length = ("window", eff.window) if eff.mode == "SERIES" else ("counter_window", eff.counter_window)
    seconds, interval_key = (
        (item.poll_interval, (*path, "poll_interval")) if item.poll_interval is not None else interval
    )
    if length >= seconds + 60:
        return
    needed = format_duration(seconds + 60)
    if getattr(item, key) is not None or key in section.model_fields_set:
        where = (*path, key) if getattr(item, key) is not None else (*root, key)
        source = f"{format_path(interval_key)}, " if interval_key else "the default, "
        yield (
            where,
            f"{key} ({shown(where, length)}) must be at least the poll interval "
            f"({source}{shown(interval_key, seconds)}) plus one minute ({needed}), "
            "or counter steps between two polls are never read",
        )
    elif interval_key is not None:
        yield (
            interval_key,
            f"this poll interval ({shown(interval_key, seconds)}) conflicts with the default {key} of "
            f"{format_path(root)} ({format_duration(length)}), which must cover an interval plus one "
            f"minute: set {key}: {needed} or more on {format_path(root)}, or a shorter poll_interval",
        )


def _account_checks(
    root: Path, section: BasetenAccount, default_interval: Interval, shown: Shown
) -> list[tuple[Path, str]]:
    out = list(_level_checks(root, section.mode, section.window, section.metrics))
    items: list[tuple[Path, RequestSettings]] = [
        ((*root, "deployments", i), d) for i, d in enumerate(section.deployments)
    ]
    items += [((*root, "discovery", i), r) for i, r in enumerate(section.discovery)]
    for path, item in items:
        out += _level_checks(path, item.mode or section.mode, item.window, item.metrics)
        out += _overlap_check(root, path, section, item, default_interval, shown)
    deployments = (
        ((*root, "deployments", i, "deployment_id"), (d.model_id, d.deployment_id))
        for i, d in enumerate(section.deployments)
    )
    for where, (model_id, deployment_id), first in repeats(deployments):
        out.append(
            (where, f"duplicate deployment {model_id}/{deployment_id} (first at deployments[{first[-2]}])")
        )
    return out


def semantic_checks(accounts: list[tuple[Path, BasetenAccount]], ctx: CheckContext) -> list[Finding]:
    """Rules that span fields or levels, account by account; paths are rooted at ``baseten``.
    ``ctx.interval`` is the global poll interval and where it was written (None: not
    written, the built-in default); ``ctx.shown`` gives a duration in the file's own words."""
    out: list[Finding] = []
    for root, account in accounts:
        out += _account_checks(root, account, ctx.interval, ctx.shown)
    return list(dict.fromkeys(out))  # a bad inherited default is reported once
