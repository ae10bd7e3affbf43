"""The metrics catalog (the tables of docs/metrics.md) and the families the code defines, side by side.

Those tables are the catalog: ``mixin.lint`` reads them to check dashboards and
alerts. What the code defines comes from three places:

- every module-level ``exporter.core.exposition.Family`` (fixed names);
- Baseten's mapping from a vendor descriptor to families (``layout.layout``), checked row
  by row against the catalog's mapping table;
- fine-tune keys (``names.metric_name``), documented as the pattern ``together_finetune_<key>``
  (only names made from vendor data may match a pattern instead of a row of their own);

plus the exporter's self-metrics, which a running daemon shows on ``/metrics``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache

import exporter
from exporter.core.exposition import Family, Labels
from exporter.sources.baseten.layout import HISTOGRAM, Descriptor, layout
from mixin import lint
from tests.helpers import REPO

CATALOG = REPO / lint.CATALOG
# Modules that define no family of the exporter's own (the fake vendor APIs) or that
# run something when imported (``python -m exporter``).
NOT_EXPORTER = ("exporter.simulator", "exporter.demo", "exporter.__main__")
# The catalog's ``baseten_*`` row: one family per descriptor, named by the mapping rules.
# Names of undocumented vendor metrics are vouched for by the rules, not listed.
VENDOR_NAMED_PREFIX = "baseten_"


def catalog_text() -> str:
    return CATALOG.read_text(encoding="utf-8")


def catalog_metrics() -> lint.ExposedMetrics:
    return lint.exposed_metrics_from_catalog(catalog_text())


@cache
def code_families() -> dict[str, Family]:
    """Every module-level Family of the exporter's modules, by name."""
    out: dict[str, Family] = {}
    for info in pkgutil.walk_packages(exporter.__path__, "exporter."):
        if info.name.startswith(NOT_EXPORTER):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Family):
                known = out.setdefault(value.name, value)
                if known != value:
                    raise AssertionError(f"{value.name} is declared twice with different metadata")
    return out


@dataclass(frozen=True)
class MappingRow:
    """One row of the catalog's Baseten mapping table with a concrete vendor name."""

    vendor_name: str
    kind: str
    unit_hint: str
    families: dict[str, str]  # Prometheus name → type, as the row lists them


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def baseten_mapping(catalog: str) -> list[MappingRow]:
    """The rows of the table whose header starts with ``vendor name``; rule rows
    (``any other `x` ``) are left out."""
    rows: list[MappingRow] = []
    header: list[str] | None = None
    for line in catalog.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if header[0] != "vendor name" or re.fullmatch(r"[\s:-]*", cells[0]):
            continue
        col = {name.split(" ")[0]: i for i, name in enumerate(header)}
        vendor = re.fullmatch(r"`([a-z0-9_]+)`", cells[col["vendor"]])
        if vendor is None:
            continue
        names = re.findall(r"`([^`]+)`", cells[col["prometheus"]])
        types = [t.strip().split(" ")[0] for t in cells[col["type"]].split("/")]
        if len(types) == 1:
            types *= len(names)
        rows.append(
            MappingRow(
                vendor[1],
                cells[col["kind"]],
                cells[col["unit_hint"]],
                dict(zip(names, types, strict=True)),
            )
        )
    return rows


def mapped_families(vendor_name: str, kind: str, unit_hint: str) -> dict[str, str]:
    """The families the code makes of a descriptor, with the label sets the vendor sends
    (a histogram's quantiles and average; one unlabelled series otherwise)."""
    label_sets: tuple[Labels, ...] = ((),)
    if kind == HISTOGRAM:
        label_sets = (*((("quantile", q),) for q in ("0.5", "0.9", "0.95", "0.99")), (("stat", "avg"),))
    return {fam.name: fam.type for fam, _ in layout(Descriptor(vendor_name, kind, unit_hint, label_sets))}


def catalog_labels(catalog: str) -> dict[str, tuple[str, ...]]:
    """Family name (or pattern, as ``together_finetune_<key>``) → the label names its row
    lists, in order, from the tables with a ``labels`` column (``—``: none)."""
    out: dict[str, tuple[str, ...]] = {}
    header: list[str] | None = None
    for line in catalog.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if "labels" not in header or "name" not in header or re.fullmatch(r"[\s:-]*", cells[0]):
            continue
        name = re.match(r"`([^`]+)`", cells[header.index("name")])
        if name is not None:
            out[name[1]] = tuple(re.findall(r"`([^`]+)`", cells[header.index("labels")]))
    return out


def exposition_types(text: str) -> dict[str, str]:
    """Family name → type, from the ``# TYPE`` lines of a text exposition."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            out[name] = type_
    return out


def defined_by_code(name: str, also: Collection[str] = ()) -> bool:
    """Whether the code defines a family of this exact name (``also``: names seen elsewhere,
    e.g. on a running daemon's ``/metrics``)."""
    if name in code_families() or name in also:
        return True
    # A histogram's series: the catalog lists them next to the family's own name.
    for suffix in ("_bucket", "_sum", "_count"):
        base = code_families().get(name.removesuffix(suffix))
        if name.endswith(suffix) and base is not None and base.type == "histogram":
            return True
    return any(
        name in mapped_families(r.vendor_name, r.kind, r.unit_hint) for r in baseten_mapping(catalog_text())
    )


def type_problems(found: Mapping[str, str], catalog: lint.ExposedMetrics, where: str) -> list[str]:
    """Families of ``found`` the catalog lacks, or documents with another type.

    A family with a fixed name in the code needs a row of its own: a pattern such as
    ``together_finetune_<key>`` stands only for names made from vendor data. A pattern
    row without a type (``process_*``) accepts any type.
    """
    problems = []
    for name, type_ in sorted(found.items()):
        if name not in catalog or (name in code_families() and name not in catalog.names):
            problems.append(f"{name} ({type_}, {where}) is not in the metrics catalog (docs/metrics.md)")
            continue
        documented = catalog.types_of(name)
        if type_ not in documented and "" not in documented:
            problems.append(f"{name} is a {type_} in {where} but the catalog says {sorted(documented)}")
    return problems
