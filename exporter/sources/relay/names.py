"""Relayed family names: the prefix that keeps them apart from the exporter's own sources,
and the collisions to refuse.

The exposition every account shares may never carry one name twice with two meanings:
a family declared with two types loses one of them, and one name with two label sets
and two sources' semantics would mislead every query. Baseten's organisation endpoint
and the management-API source both call a family ``baseten_inference_requests_total``,
with other labels, and ``baseten_end_to_end_response_time_seconds`` is a histogram
there and a summary here. The rule:

- a relayed family is named ``metric_prefix`` + the vendor's name (as OpenTelemetry's
  Prometheus exporter applies its ``namespace``); every one of its series follows
  (``<prefix><name>_bucket`` …);
- a prefix must keep relayed names out of every namespace a configured native source
  writes in (:func:`namespace_overlaps`: ``baseten_`` for the management-API source,
  ``together_queue_`` … and always ``inference_exporter_``). For Baseten's
  organisation endpoint the default prefix is ``relay_`` (``relay_baseten_inference_requests_total``),
  outside all of them; a config that sets it empty while the management-API source
  is on is refused, one without that source keeps the vendor's own names;
- whatever a vendor sends, a relay never emits a family in a namespace it was told to
  keep out of (the relay's ``reserved`` namespaces): such families are left out and
  named in the poll's result, so a generic endpoint that starts sending, say,
  ``together_queue_depth`` cannot shadow the queue source.

:func:`collisions` compares the families of two sources name by name and sample name
by sample name (a histogram ``x`` owns ``x_bucket``, ``x_sum``, ``x_count``).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.core.exposition import Family, MetricType, valid_metric_name

# The namespace of the exporter's own families (health and self-metrics): never relayed into.
EXPORTER_NAMESPACE = "inference_exporter_"
# The default prefix of Baseten's organisation endpoint: outside every native namespace.
BASETEN_ORG_PREFIX = "relay_"

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


@dataclass(frozen=True, slots=True)
class RelayedFamily(Family):
    """A family as a vendor's endpoint declares it.

    The text format 0.0.4 lets a counter's name end in anything and a gauge's in
    ``_total``; the vendor's declaration is relayed as it is (the exporter's own
    families keep ``Family``'s stricter naming)."""

    def __post_init__(self) -> None:
        if not valid_metric_name(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")


@dataclass(frozen=True, slots=True)
class Collision:
    """``name`` is a family or sample name both ``relayed`` and ``other`` emit."""

    name: str
    relayed: str
    other: str

    def __str__(self) -> str:
        if self.relayed == self.other == self.name:
            return f"family {self.name} would be emitted by both sources"
        return f"series {self.name} would be emitted by relayed {self.relayed} and by {self.other}"


def sample_names(name: str, mtype: MetricType | str) -> tuple[str, ...]:
    """The names a family's samples may have."""
    return tuple(name + s for s in _SUFFIXES.get(mtype, ("",)))


def collisions(
    relayed: Iterable[tuple[str, MetricType | str]], others: Iterable[tuple[str, MetricType | str]]
) -> list[Collision]:
    """Where relayed families (name, type) and another source's would share a family or
    a sample name in the exposition, sorted by name. Empty: the two can run together."""
    owner: dict[str, str] = {}
    for name, mtype in others:
        owner[name] = name
        for sample in sample_names(name, mtype):
            owner.setdefault(sample, name)
    found: dict[str, Collision] = {}
    for name, mtype in relayed:
        for sample in (name, *sample_names(name, mtype)):
            other = owner.get(sample)
            if other is not None and sample not in found:
                found[sample] = Collision(sample, name, other)
    return [found[k] for k in sorted(found)]


def namespace_overlaps(prefix: str, namespaces: Iterable[str]) -> list[str]:
    """The namespaces (name prefixes such as ``baseten_``) that some relayed name
    ``prefix + <vendor name>`` could fall in, sorted: those the prefix lies in, and those
    a vendor name could complete it into (every one, for an empty prefix)."""
    return sorted({ns for ns in namespaces if prefix.startswith(ns) or ns.startswith(prefix)})


def in_namespaces(name: str, namespaces: tuple[str, ...]) -> bool:
    return name.startswith(namespaces) if namespaces else False


def check_prefix(prefix: str) -> None:
    """A prefix must make valid metric names out of valid ones."""
    if prefix and not valid_metric_name(prefix):
        raise ValueError(f"metric prefix {prefix!r} is not the start of a valid metric name")
