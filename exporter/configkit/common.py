"""Building blocks shared by every section of the config, the vendors' and the global one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from exporter.configkit.problems import describe_value
from exporter.core.scope import DEFAULT_ACCOUNT, DEFAULT_MAX_SERIES, EXPORTER_LABELS

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A pasted key that happens to be a valid variable name (Together's ``tgp_`` keys, a
# long hex or base64 run): a real variable name has underscores between its words.
_KEY_SHAPED_RE = re.compile(r"^(?:tgp_v\d+_|[^_]{32,}$)")
# ``user:password@`` before a URL's host.
_USERINFO_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Accept Prometheus-style durations (``30s``, ``1m30s``, ``500ms``) or plain seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 1m or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _SECONDS_RE.match(value.strip()):
        seconds = float(value)  # "30" quoted reads as 30 unquoted does: seconds
    elif isinstance(value, str) and _DURATION_RE.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART_RE.findall(value.strip()))
    else:
        raise ValueError(f"expected a duration such as 30s, 1m or 500ms, got {describe_value(value)}")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` the way a config writes it (``30m``, ``1m30s``, ``500ms``): a message
    about a duration reads in the units of the file, not in raw seconds."""
    ms = round(seconds * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": f"{_SECONDS_RE.pattern}|{_DURATION_RE.pattern}"},
            ],
            "description": "seconds, or a Prometheus-style duration such as 30s, 1m30s or 500ms",
        }
    ),
]


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# A name sent to a vendor (a model, an id): an all-space value is a typo, not a name.
NonBlank = Annotated[str, Field(min_length=1), AfterValidator(_non_blank)]


class Strict(BaseModel):
    """Every config model rejects keys it does not know: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Schedule(Strict):
    """Per-target overrides of the global schedule."""

    poll_interval: Duration | None = None
    timeout: Duration | None = None


def _shell_reference(value: str) -> str | None:
    """The variable name in ``$NAME`` or ``${NAME}``, if ``value`` is written so."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
    return m.group(1) if m and (value[1] == "{") == value.endswith("}") else None


def refuse_credentials(url: str) -> None:
    """Refuse a vendor URL written with ``user:password@``: the client sends the account's
    key in the Authorization header and cannot send those credentials too, so every poll
    would fail. Said at the key's line, without the URL, which holds a password."""
    if _USERINFO_RE.match(url):
        raise ValueError(
            "must not hold a user name or password (user:password@ before the host): "
            "the account's key, from api_key_env or api_key_file, is what authenticates"
        )


class Credentials(Strict):
    """An API key given by reference only: an environment variable or a file."""

    api_key_env: str | None = Field(default=None, min_length=1)
    api_key_file: str | None = Field(default=None, min_length=1)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        # A common slip is pasting the key itself here; say so without echoing it.
        if v is not None and (name := _shell_reference(v)) is not None:
            raise ValueError(f"drop the '$': write {name}, the variable's name, not a shell reference to it")
        if v is not None and not _ENV_NAME_RE.match(v):
            raise ValueError(
                "must name an environment variable (letters, digits, _), not hold the key itself"
            )
        if v is not None and _KEY_SHAPED_RE.match(v):
            raise ValueError(
                "this looks like the key itself: write the name of the environment variable "
                "that holds it (export the key in that variable)"
            )
        return v

    @model_validator(mode="after")
    def _one_reference(self) -> Credentials:
        self.check_reference()
        return self

    def check_reference(self) -> None:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set either api_key_env or api_key_file, not both")
        if not self.api_key_env and not self.api_key_file:
            raise ValueError("an API key reference is required: api_key_env or api_key_file")


class VendorCommon(Credentials):
    base_url: str = Field(min_length=1)
    max_connections: int = Field(default=10, ge=1, le=1000)
    # Most requests per second sent to this vendor, retries included, by all its
    # targets together (divided by the number of shards when sharded). None: no limit.
    requests_per_second: float | None = Field(default=None, gt=0, le=10_000)
    # Largest response body read; a bigger one fails the poll with body_too_large.
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        refuse_credentials(v)
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v


# An account name is a label value and a part of target ids and URLs: kept to
# characters that need no escaping anywhere.
ACCOUNT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_ACCOUNT_NAME_RE = re.compile(ACCOUNT_NAME_PATTERN)


def _check_account_name(name: str) -> str:
    if _ACCOUNT_NAME_RE.match(name):
        return name
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    why = (
        f"{', '.join(repr(c) for c in bad)} not allowed"
        if bad
        else "must start with a letter or digit"
        if name
        else "must not be empty"
    )
    if not bad and len(name) > 63:
        why = "longer than 63 characters"
    raise ValueError(
        f"{name!r} is not an account name ({why}): 1 to 63 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit"
    )


AccountName = Annotated[
    str,
    AfterValidator(_check_account_name),
    WithJsonSchema({"type": "string", "pattern": ACCOUNT_NAME_PATTERN}),
]

_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Where the loader puts, in pydantic's validation context, every label name the exporter
# and its vendors set (``Registry.reserved_labels``): the vendors are known above this
# module, not here.
RESERVED_LABELS_KEY = "reserved_labels"


def validation_context(reserved: frozenset[str]) -> dict[str, Any]:
    """The context to validate a config with, so that ``labels:`` refuse ``reserved``."""
    return {RESERVED_LABELS_KEY: reserved}


def _reserved(info: ValidationInfo) -> frozenset[str]:
    """The reserved label names: the registry's, as the loader passes them; a section
    validated on its own (a test's) knows only the exporter's own."""
    context = info.context
    if isinstance(context, dict) and RESERVED_LABELS_KEY in context:
        reserved: frozenset[str] = context[RESERVED_LABELS_KEY]
        return reserved
    return EXPORTER_LABELS


def _check_label_name(name: str, info: ValidationInfo) -> str:
    if not _LABEL_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a label name (letters, digits and _, not starting with a digit)")
    if name.startswith("__"):
        raise ValueError(f"label {name!r}: names starting with __ are reserved for Prometheus")
    reserved = _reserved(info)
    if name in reserved or name.startswith("exported_"):
        raise ValueError(
            f"label {name!r} clashes with a label the exporter sets itself; "
            f"reserved: {', '.join(sorted(reserved))} and exported_*"
        )
    return name


# Checked key by key, so that a problem points at the label's own line.
LabelName = Annotated[str, AfterValidator(_check_label_name)]


def labels_schema(reserved: Iterable[str]) -> dict[str, Any]:
    """The JSON Schema of ``labels:`` when ``reserved`` are the names the exporter sets."""
    return {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {
            "pattern": _LABEL_NAME_RE.pattern,
            "not": {
                "anyOf": [
                    {"enum": sorted(reserved)},
                    {"pattern": "^(__|exported_)"},
                ]
            },
        },
        "description": "label name: value; names the exporter sets itself, __* and exported_* are reserved",
    }


_OWN_LABELS_SCHEMA = labels_schema(EXPORTER_LABELS)


def reserve_in_schema(node: Any, reserved: Iterable[str]) -> Any:
    """``node`` (a part of a model's generated JSON Schema) with every ``labels:`` in it
    refusing ``reserved``: a model's schema is generated from this module, where only
    the exporter's own labels are known."""
    if isinstance(node, list):
        return [reserve_in_schema(n, reserved) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: reserve_in_schema(v, reserved) for k, v in node.items()}
    if out.get("propertyNames") == _OWN_LABELS_SCHEMA["propertyNames"]:
        names = out["propertyNames"]
        first, *rest = names["not"]["anyOf"]
        out["propertyNames"] = {
            **names,
            "not": {**names["not"], "anyOf": [{**first, "enum": sorted(reserved)}, *rest]},
        }
    return out


# Labels added to every series of a target (``labels:`` on an account, a target or
# a discovery rule); an inner level's value overrides an outer one's.
TargetLabels = Annotated[dict[LabelName, str], WithJsonSchema(_OWN_LABELS_SCHEMA)]


class Labelled(Strict):
    labels: TargetLabels = Field(default_factory=dict)


# Constructs Python's re has and RE2 (what kube-state-metrics and Prometheus use) has
# not: a filter that works here must work the same way there, so they are refused.
_NOT_RE2 = (
    (re.compile(r"\\[1-9]"), "backreferences"),
    (re.compile(r"\(\?P="), "backreferences"),
    (re.compile(r"\(\?<?[=!]"), "lookarounds"),
    (re.compile(r"\(\?>"), "atomic groups"),
    (re.compile(r"\(\?\("), "conditionals"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers"),
)


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        if "*" in pattern or "?" in pattern:
            raise ValueError(
                f"invalid regular expression {pattern!r}: filters are regular expressions, not globs; "
                f"write {_from_glob(pattern)!r} (.* for any text)"
            ) from None
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    for construct, what in _NOT_RE2:
        if construct.search(pattern):
            raise ValueError(f"{pattern!r}: {what} are not in the RE2 syntax these expressions use")
    return pattern


def _from_glob(pattern: str) -> str:
    """A glob's likely meaning as a regular expression: ``*`` any text, ``?`` one character."""
    return re.sub(r"(?<!\.)\*", ".*", pattern).replace("?", ".")


Regex = Annotated[str, Field(min_length=1), AfterValidator(_check_regex)]


class MetricFilterConfig(Strict):
    """Families to keep (``allow``; empty: all) and to drop (``deny``, which wins),
    as regular expressions matched against the whole family name."""

    allow: list[Regex] = Field(default_factory=list)
    deny: list[Regex] = Field(default_factory=list)


class AccountCommon(VendorCommon):
    """What every vendor account has besides its key, URL and limits."""

    name: AccountName = DEFAULT_ACCOUNT
    labels: TargetLabels = Field(default_factory=dict)
    metric_filter: MetricFilterConfig = Field(default_factory=MetricFilterConfig)
    # Most series one target of the account may export; a target whose answer has more
    # fails alone with too_many_series (see docs/reliability-and-security.md).
    max_series_per_target: int = Field(default=DEFAULT_MAX_SERIES, ge=1, le=10_000_000)


# The ``global:`` section: what every target of every vendor inherits. (No docstring: a
# model's docstring is its description in config.schema.json.)
class GlobalConfig(Strict):
    poll_interval: Duration = 30.0
    timeout: Duration = 10.0
    # First polls are spread over this window (or the poll interval, if shorter) so
    # that targets do not all fire at start-up; later polls keep that phase.
    start_spread: Duration = 10.0
    # A failing target keeps its last values this long after its last success, so one
    # failed poll does not punch holes in graphs; then its series disappear.
    stale_grace: Duration = 300.0
    # Families every account keeps or drops (each account may narrow it further).
    metric_filter: MetricFilterConfig = Field(default_factory=MetricFilterConfig)
