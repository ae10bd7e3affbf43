"""The metrics catalog (the tables of docs/metrics.md) and the families the code defines, side by side.

Those tables are the catalog: ``mixin.lint`` reads them to check dashboards and
alerts. What the code defines comes from three places:

- every module-level ``exporter.core.exposition.Family`` (fixed names);
- Baseten's mapping from a vendor descriptor to families (``layout.layout``), checked row
  by row against the catalog's mapping table;
- fine-tune keys (``names.metric_name``), documented as the pattern ``together_finetune_<key>``
  (only names made from vendor data may match a pattern instead of a row of their own);

plus the exporter's self-metrics, which a running daemon shows on ``/metrics``. The
catalog's ``labels`` columns are read by ``catalog_labels``, to be held to the label
names of real expositions (``exposition_labels``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from prometheus_client.parser import text_string_to_metric_families

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


def _table_rows(catalog: str) -> Iterator[tuple[list[str], list[str]]]:
    """Each row of every Markdown table in ``catalog``, with its table's header (lower case)."""
    header: list[str] | None = None
    for line in catalog.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        yield header, cells


def baseten_mapping(catalog: str) -> list[MappingRow]:
    """The rows of the table whose header starts with ``vendor name``; rule rows
    (``any other `x` ``) are left out."""
    rows: list[MappingRow] = []
    for header, cells in _table_rows(catalog):
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


# A label name in a ``labels`` cell; the label's values, in parentheses, are left out.
_LABEL = re.compile(r"`([a-zA-Z_][a-zA-Z0-9_]*)`")
_NO_LABELS = "—"


@dataclass(frozen=True)
class DocumentedLabels:
    """What a ``labels`` cell of the catalog says of one family's label names, in its
    order: exactly these, or these and more (``+ the descriptor's label sets``)."""

    names: tuple[str, ...]
    exact: bool = True

    def problem(self, found: Collection[str]) -> str | None:
        """Why ``found`` (the label names a family has) is not what the cell says, or None."""
        have, listed_names = set(found), set(self.names)
        if have == listed_names or (not self.exact and have >= listed_names):
            return None
        listed = ", ".join(sorted(listed_names)) or _NO_LABELS
        return f"has labels {sorted(have)}, the catalog lists {listed}{'' if self.exact else ' and more'}"


def _documented(cell: str, base: tuple[str, ...]) -> DocumentedLabels | None:
    """One name's part of a ``labels`` cell; None for a cell that names no labels and does
    not say there are none (``process_*``: the client library's own)."""
    cell = re.sub(r"\([^)]*\)", "", cell).strip()
    names = tuple(_LABEL.findall(cell))
    rest = re.sub(r"[`,\s]", "", _LABEL.sub("", cell))
    if not names and rest == "":
        return None
    if rest == _NO_LABELS:
        rest = ""
    return DocumentedLabels((*base, *names), exact=rest == "")


@dataclass(frozen=True)
class LabelsRow:
    """One family's ``labels`` cell: a name, or the pattern of the names of a
    ``<placeholder>`` or ``prefix_*`` row, what the cell says, and whether the row is in
    the Baseten mapping table (else in the families' table)."""

    name: str
    pattern: re.Pattern[str]
    labels: DocumentedLabels
    mapping: bool = False


def catalog_labels(catalog: str) -> dict[str, tuple[str, ...]]:
    """Family name (or pattern, as ``together_finetune_<key>``) → the label names its row of
    the families' table lists, in order (``—``: none)."""
    return {r.name: r.labels.names for r in label_rows(catalog) if not r.mapping}


def label_rows(catalog: str) -> list[LabelsRow]:
    """The ``labels`` columns of the catalog's tables, a row per family name.

    The Baseten mapping table's column lists labels besides ``model_id`` and
    ``deployment_id`` (its header says so), paired with its names like its types
    (``quantile / —``); its rule rows (``any other `x` ``) name no family and are left
    out. Next to a ``<placeholder>`` name the other names are its examples.
    """
    rows: list[LabelsRow] = []
    for header, cells in _table_rows(catalog):
        labels_col = next((i for i, h in enumerate(header) if h.startswith("labels")), -1)
        # The table of relayed families the dashboards read names the vendor's families
        # (``relayed family``), held to the vendor's endpoint by tests/mixin instead.
        named = "name" in header or "prometheus name" in header
        if labels_col < 0 or not named or re.fullmatch(r"[\s:-]*", cells[0]):
            continue
        name_col = header.index("prometheus name") if "prometheus name" in header else header.index("name")
        base = tuple(_LABEL.findall(header[labels_col])) if "besides" in header[labels_col] else ()
        names = [n for n in re.findall(r"`([a-z][a-z0-9_<>*]*)`", cells[name_col]) if "_" in n]
        if any("<" in n for n in names):
            names = [n for n in names if "<" in n]
        parts = [p.strip() for p in cells[labels_col].split(" / ")]
        if len(parts) != len(names):
            parts = [cells[labels_col]] * len(names)
        for name, part in zip(names, parts, strict=True):
            documented = _documented(part, base)
            if documented is not None:
                pattern = re.sub(r"<[a-z_]+>|\\\*", "[a-zA-Z0-9_:]+", re.escape(name))
                rows.append(LabelsRow(name, re.compile(pattern), documented, "prometheus name" in header))
    return rows


def documented_labels(name: str, rows: list[LabelsRow]) -> list[DocumentedLabels]:
    """What the catalog's rows say of the label names of family ``name``: its own rows
    (a family may be in two tables), else those of the patterns it matches."""
    own = [r.labels for r in rows if r.name == name]
    return own or [r.labels for r in rows if r.pattern.fullmatch(name)]


def exposition_labels(text: str, dropped: Collection[str] = ()) -> dict[str, set[str]]:
    """Family name → the label names of its series in a text exposition, less ``dropped``
    (the target's labels) and a histogram's ``le``; a family with no series is left out."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if not family.samples:
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        names = out.setdefault(name, set())
        for sample in family.samples:
            names.update(
                k
                for k in sample.labels
                if k not in dropped and not (k == "le" and family.type == "histogram")
            )
    return out
