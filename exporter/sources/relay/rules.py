"""What shapes a relay's output (``RelayRules``) and what one relayed body gave (``Relayed``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from exporter.core.exposition import MetricType, Rendered
from exporter.core.scope import MAX_SERIES_KEY
from exporter.sources.relay.names import EXPORTER_NAMESPACE, check_prefix

MAX_LABEL_KEY = "max_label_value_length"
DEFAULT_MAX_LABEL_LENGTH = 1_024
# A relayed family by what makes it: name, type and help (see ``translate.relay``'s ``known``).
FamilyKey = tuple[str, MetricType, str]


@dataclass(frozen=True)
class RelayRules:
    """How a relay names and bounds what it passes on (part of its target's settings).

    ``prefix`` goes before every relayed name (``names``); ``reserved`` are the
    namespaces it must not emit into (the exporter's own is always one of them);
    ``series_key`` is the config key of the series limit (the scope's ``max_series``),
    which a body past it is refused naming."""

    prefix: str = ""
    reserved: tuple[str, ...] = (EXPORTER_NAMESPACE,)
    max_label_length: int = DEFAULT_MAX_LABEL_LENGTH
    series_key: str = MAX_SERIES_KEY

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        if EXPORTER_NAMESPACE not in self.reserved:
            object.__setattr__(self, "reserved", (*self.reserved, EXPORTER_NAMESPACE))


DEFAULT_RULES = RelayRules()


class Relayed(NamedTuple):
    """One body, relayed: the families to store and what was left out of it.

    ``rendered.filtered`` counts the samples of families the metric filter denied;
    ``too_long`` the samples dropped for a name or label past ``max_label_length``
    (and the lines left out for being longer than ``body.max_line_bytes``);
    ``duplicates`` the repeated series; ``timestamps`` the samples whose timestamp was
    dropped; ``reserved`` names families left out for falling in a reserved namespace
    (the first few; ``reserved_series`` counts their samples)."""

    rendered: Rendered
    too_long: int = 0
    duplicates: int = 0
    timestamps: int = 0
    reserved: tuple[str, ...] = ()
    reserved_series: int = 0

    @property
    def series(self) -> int:
        return self.rendered.series
