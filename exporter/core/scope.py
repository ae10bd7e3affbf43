"""Whose a target's series are, and which of them it keeps: account, target labels, metric
filter, and how many series it may have.

Every series a target yields, its health series included, ends with
``account="<name>"`` and then the labels the config gives the target (its account's,
overridden by its own). The metric filter keeps or drops whole families by name:

- each rule is a pair of lists of regular expressions matched against the whole
  family name; a family passes a rule when no ``deny`` expression matches it and the
  ``allow`` list is empty or one of its expressions matches; the global rule and the
  account's rule must both pass;
- the exporter's per-target health families are not vendor families: ``allow`` lists
  never remove them, and a ``deny`` expression removes one only when it names the
  exporter's prefix (``inference_exporter_``) itself; ``inference_exporter_target_up``
  is never removed.

A target with more series than its account's ``max_series_per_target`` fails its poll
with ``too_many_series`` (``Scope.render``), so that no one target can make the
exposition every account shares too big for Prometheus' ``sample_limit``.

Pure: no I/O. A ``Scope`` is frozen and hashable, part of each target's settings: a
reload that changes an account's labels or filter reconfigures that account's targets
only, and ``restyle`` gives what they last yielded the new labels and filter at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from exporter.core.errors import LimitExceeded
from exporter.core.exposition import Labels, Rendered, Sample, render
from exporter.core.relabel import relabel

DEFAULT_ACCOUNT = "default"
# Series one target may contribute (``<vendor>.max_series_per_target``): a large
# Baseten deployment has a few hundred; this is far above any real one and far below
# what would stall a poll or swell the exposition.
DEFAULT_MAX_SERIES = 50_000
MAX_SERIES_KEY = "max_series_per_target"
HEALTH_PREFIX = "inference_exporter_"
ALWAYS_KEPT = "inference_exporter_target_up"

# Label names the exporter itself puts on series whatever the vendor (target labels may
# not take them), with those Prometheus gives a meaning to. Each vendor reserves the
# labels of its own families in its contract (``Vendor.reserved_labels``); the registry
# adds them to these.
EXPORTER_LABELS = frozenset(
    {
        # every series of a target, and the health series
        "account",
        "target",
        "source",
        "result",
        "reason",
        # Prometheus
        "job",
        "instance",
        "le",
        "quantile",
    }
)


@dataclass(frozen=True)
class FilterRule:
    """One level's ``metric_filter``: expressions as written, compiled once, anchored."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", tuple(re.compile(p) for p in self.allow))
        object.__setattr__(self, "_deny", tuple(re.compile(p) for p in self.deny))

    def passes(self, name: str) -> bool:
        if any(p.fullmatch(name) for p in self._deny):
            return False
        return not self._allow or any(p.fullmatch(name) for p in self._allow)

    def denies_health(self, name: str) -> bool:
        """True if a deny expression that names the exporter's prefix matches ``name``."""
        return any(p.pattern.startswith(HEALTH_PREFIX) and p.fullmatch(name) for p in self._deny)


@dataclass(frozen=True)
class MetricFilter:
    """The rules that apply to one target: the global one, then its account's."""

    rules: tuple[FilterRule, ...] = ()
    # Decisions by family name: families repeat on every poll.
    _decided: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @property
    def active(self) -> bool:
        return any(r.allow or r.deny for r in self.rules)

    def keeps(self, name: str) -> bool:
        """Whether a vendor family stays."""
        known = self._decided.get(name)
        if known is None:
            if len(self._decided) > 10_000:
                self._decided.clear()
            known = self._decided[name] = all(r.passes(name) for r in self.rules)
        return known

    def keeps_health(self, name: str) -> bool:
        """Whether one of the exporter's per-target health families stays."""
        return name == ALWAYS_KEPT or not any(r.denies_health(name) for r in self.rules)


NO_FILTER = MetricFilter()


@dataclass(frozen=True)
class Scope:
    """A target's account, its configured labels (sorted by name), its metric filter and
    the most series it may have."""

    account: str = DEFAULT_ACCOUNT
    labels: Labels = ()
    filter: MetricFilter = NO_FILTER
    max_series: int = DEFAULT_MAX_SERIES

    @property
    def extra(self) -> Labels:
        """The labels every series of the target ends with."""
        return (("account", self.account), *self.labels)

    def render(self, samples: Collection[Sample]) -> Rendered:
        """The target's samples with its labels, less the families its filter removes.

        More samples than ``max_series`` (counted before the filter: they were read
        all the same) fail the poll with ``too_many_series`` before any is rendered."""
        self.check_series(len(samples))
        keep = self.filter.keeps if self.filter.active else None
        return render(samples, extra=self.extra, keep=keep)

    def check_series(self, count: int, what: str = "the target has") -> None:
        """Raise ``too_many_series`` if ``count`` series are more than the account allows."""
        if count > self.max_series:
            raise LimitExceeded(
                "too_many_series",
                MAX_SERIES_KEY,
                f"{what} {count} series, more than {MAX_SERIES_KEY} ({self.max_series}) of account "
                f"{self.account!r} allows: raise it, or ask the vendor for fewer metrics",
            )

    def restyle(self, rendered: Rendered, old: Scope) -> Rendered:
        """``rendered`` (a target's samples rendered through ``old``) as this scope
        renders them: its labels in place of the old ones, less the families its filter
        removes. A reload applies a target's new labels and filter to what the target
        last yielded at once, without waiting for its next poll; families the new filter
        lets through come with that poll. The lines are those a poll would render, byte
        for byte, samples' labels renamed or not (``relabel``)."""
        keep = self.filter.keeps if self.filter.active else None
        meta = {name: fam for name, fam in rendered.meta.items() if keep is None or keep(name)}
        lines = {name: rendered.lines[name] for name in meta}
        plain = {name: chunk for name, chunk in rendered.plain.items() if name in meta}
        return relabel(Rendered(meta, lines, rendered.filtered, plain), old.extra, self.extra)


DEFAULT_SCOPE = Scope()


def target_id(source: str, account: str, *parts: str) -> str:
    """``<source>/<ids>`` for the default account (the ids single-account configs have
    always had), ``<source>@<account>/<ids>`` for any other. Source names hold no
    ``@`` or ``/`` and account names no ``/``, so two targets never share an id."""
    head = source if account == DEFAULT_ACCOUNT else f"{source}@{account}"
    return "/".join((head, *parts))


def merged_labels(*levels: dict[str, str]) -> Labels:
    """Labels from the outermost level to the innermost, an inner value overriding an
    outer one, sorted by name."""
    out: dict[str, str] = {}
    for level in levels:
        out.update(level)
    return tuple(sorted(out.items()))
