"""The relayed families the dashboards and rules read, as the metrics catalog lists them.

A relay of a vendor's own Prometheus endpoint passes on whatever families the vendor
defines, under the relay's prefix (``relay_`` by default): they are the vendor's, not
the exporter's, so the catalog's own tables leave them out (``test_metric_catalog``
holds those to the code). A table of their own in the catalog, with a ``relayed family``
column, names the ones the mixin reads by the vendor's name, type and labels; the lint
knows exactly those, under ``MixinConfig.baseten_relay_prefix``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from mixin.lint import TYPES, ExposedMetrics, exposed_metrics_from_catalog, table_rows

# The header of the catalog's table of relayed families (``relayed_families``).
RELAYED_COLUMN = "relayed family"
_SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


@dataclass(frozen=True)
class RelayedRow:
    """One row of the catalog's table of relayed families: the vendor's name and type, and
    the label names its series carry as the vendor sends them."""

    name: str
    type: str
    labels: tuple[str, ...]


def relayed_families(text: str) -> list[RelayedRow]:
    """The rows of the catalog's tables with a ``relayed family`` column.

    A relay passes on whatever a vendor's endpoint defines, so the catalog does not hold
    those families as the exporter's own (``exposed_metrics_from_catalog`` skips these
    tables); it lists, by the vendor's name, the ones the dashboards and rules read.
    """
    out = []
    for header, cells in table_rows(text):
        if RELAYED_COLUMN not in header or "type" not in header or len(cells) < len(header):
            continue
        found = re.fullmatch(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", cells[header.index(RELAYED_COLUMN)])
        type_ = cells[header.index("type")].split(" ")[0]
        if found is None or type_ not in TYPES:
            continue
        labels = re.findall(r"`([^`]+)`", cells[header.index("labels")]) if "labels" in header else []
        out.append(RelayedRow(found[1], type_, tuple(labels)))
    return out


def relayed_metrics_from_catalog(text: str, prefix: str) -> ExposedMetrics:
    """The relayed families the catalog lists, under the names a relay with ``prefix``
    serves them: each one exact name, with its histogram's or summary's series. The
    prefix alone vouches for nothing, so a query reading a relayed family no one checked
    (or the vendor's bare name) still fails the lint."""
    out = ExposedMetrics()
    for family in relayed_families(text):
        name = prefix + family.name
        for series in (name, *(name + s for s in _SERIES_SUFFIXES.get(family.type, ()))):
            out.names.add(series)
            out.types.setdefault(series, set()).add(family.type)
    return out


def documented_metrics(text: str, relay_prefix: str) -> ExposedMetrics:
    """What a dashboard or a rule may read: the catalog's families, and the relayed
    families it lists under ``relay_prefix``.

    The catalog's ``relay_<name>`` row says that relayed families exist, whatever the
    vendor sends; as a pattern it would vouch for any name under the prefix, a typo
    included, so it is left out here (and so is any pattern under ``relay_prefix``): the
    table's rows name the ones that may be read."""
    out = exposed_metrics_from_catalog(text)
    relayed_patterns = tuple(re.escape(p) for p in {relay_prefix, BASETEN_ORG_PREFIX} if p)
    out.patterns = [p for p in out.patterns if not p.pattern.startswith(relayed_patterns)]
    relayed = relayed_metrics_from_catalog(text, relay_prefix)
    out.names |= relayed.names
    for name, types in relayed.types.items():
        out.types.setdefault(name, set()).update(types)
    return out
