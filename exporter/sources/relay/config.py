"""A relay's keys in a vendor account: what every relayed endpoint has, and the generic
``prometheus_endpoints:`` list any account may carry.

A relay is not a vendor: it has no section of its own, but is a kind of target of a
vendor's account, fetched with that account's key and client, in its scope (labels,
metric filter) and request budget. Each vendor package puts these models in its
account model (with its own default ``auth``, and Baseten its organisation endpoint
preset) and builds the targets with ``relay.build``.

Pure: the config models and checks, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

from exporter.configkit.common import Duration, Labelled, format_duration, refuse_credentials
from exporter.configkit.problems import Finding, Path, repeats
from exporter.configkit.sections import CheckContext
from exporter.sources.relay.names import check_prefix

MIN_INTERVAL = 10.0
DEFAULT_STALE_AFTER = 300.0
DEFAULT_INTERVAL = 60.0
# A large organisation's body has about 100k series.
DEFAULT_MAX_SERIES = 200_000
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_SERIES_KEY = "max_series"

Auth = Literal["bearer", "api_key"]
# The word before the key in the Authorization header, by ``auth``.
AUTH_SCHEMES: dict[str, str] = {"bearer": "Bearer", "api_key": "Api-Key"}

# A relay's name is the last part of its target id, and a label value.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)
_URL_RE = re.compile(r"^(?:https?://[^/\s]+\S*|/\S*)$")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a relay name: 1 to 63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it is a part of the target's id)"
        )
    return name


def _check_url(url: str) -> str:
    refuse_credentials(url)
    if not _URL_RE.match(url):
        raise ValueError(
            f"{url!r} is neither an http(s) URL nor a path under the account's base_url (starting with /)"
        )
    return url


def _check_prefix(prefix: str) -> str:
    check_prefix(prefix)
    return prefix


RelayName = Annotated[
    str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})
]
RelayUrl = Annotated[str, AfterValidator(_check_url)]
MetricPrefix = Annotated[str, AfterValidator(_check_prefix)]


class RelaySection(Labelled):
    """An endpoint in the Prometheus text format, fetched once per interval with the
    account's key and served to every scrape."""

    # Why an interval under MIN_INTERVAL is refused, as the error says it.
    interval_reason: ClassVar[str] = (
        "it is fetched once per interval whatever the number of scrapers, and vendors' "
        "metrics endpoints allow a few requests a minute (Baseten's, Fireworks' and "
        "Cerebras': 6 per organisation)"
    )

    url: RelayUrl
    interval: Duration = DEFAULT_INTERVAL
    timeout: Duration | None = None
    stale_after: Duration = DEFAULT_STALE_AFTER
    metric_prefix: MetricPrefix = ""
    max_series: int = Field(default=DEFAULT_MAX_SERIES, ge=1, le=10_000_000)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("interval")
    @classmethod
    def _often_enough(cls, v: float) -> float:
        if v < MIN_INTERVAL:
            raise ValueError(
                f"an interval under {format_duration(MIN_INTERVAL)} is refused "
                f"({format_duration(v)} given): {cls.interval_reason}"
            )
        return v


class PrometheusEndpoint(RelaySection):
    """A vendor's endpoint in the Prometheus text format (Together's dedicated-endpoint
    metrics, or any other), relayed under its own names plus metric_prefix."""

    name: RelayName
    auth: Auth = "bearer"


def endpoint_checks(
    root: Path, endpoints: list[PrometheusEndpoint], ctx: CheckContext, taken: Iterable[str] = ()
) -> list[Finding]:
    """The ``prometheus_endpoints`` of the account at ``root``: a name used twice (or one of
    ``taken``, the names of the account's other relays), and each relay's bound."""
    out: list[Finding] = []
    taken = set(taken)
    where = (*root, "prometheus_endpoints")
    for i, e in enumerate(endpoints):
        if e.name in taken:
            out.append(((*where, i, "name"), f"{e.name!r} is the name of the account's {e.name} relay"))
        out += bound_checks((*where, i), e, ctx)
    named = (((*where, i, "name"), e.name) for i, e in enumerate(endpoints))
    for path, name, first in repeats(named):
        out.append((path, f"duplicate relay name {name!r} (first at prometheus_endpoints[{first[-2]}])"))
    return out


def bound_checks(path: Path, section: RelaySection, ctx: CheckContext) -> list[Finding]:
    """A staleness bound shorter than the interval could never serve a held body."""
    if section.stale_after >= section.interval:
        return []
    stale = ctx.shown((*path, "stale_after"), section.stale_after)
    interval = ctx.shown((*path, "interval"), section.interval)
    return [
        (
            (*path, "stale_after"),
            f"stale_after ({stale}) is shorter than the interval ({interval}): the last body "
            "would be dropped before the next fetch, so a rate-limited fetch would always "
            "leave a gap; make it at least the interval (default 5m)",
        )
    ]
