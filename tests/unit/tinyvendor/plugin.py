"""Tiny's contract: what the registry needs to know of it."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.sources.contract import FilterKind, Vendor
from tests.unit.tinyvendor.config import NAME, TinyAccount, TinySection, gauge_duplicates
from tests.unit.tinyvendor.target import LEVEL, gauges


def filter_kinds(account: TinyAccount) -> Iterator[FilterKind]:
    if account.gauges:
        yield FilterKind("gauges", (LEVEL.name,), (LEVEL.name,))


VENDOR = Vendor[TinyAccount](
    name=NAME,
    section=TinySection,
    watches=lambda account: bool(account.gauges),
    builders=lambda: (gauges,),
    families=(LEVEL,),
    filter_kinds=filter_kinds,
    checks=(gauge_duplicates,),
    pure_modules=("tests.unit.tinyvendor.config",),
)
