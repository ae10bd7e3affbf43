"""The ``/targets`` page: targets grouped by source (and account), filtered by health.

Everything the page can show is chosen by its query string, so it works without
JavaScript and a view can be bookmarked: ``?state=down`` lists only failing targets,
``?account=NAME`` one account's, ``?refresh=10`` reloads the page every ten seconds
(off by default).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from exporter.web.pages import stream_page

# Health values a row can have, in the order the filter offers them, and the filter's words.
STATES = ("down", "up", "unknown", "finished")
LABELS = {"down": "failing", "up": "up", "unknown": "not polled yet", "finished": "finished"}
# The auto-refresh periods offered as links, in seconds; any period in range works.
REFRESH_CHOICES = (10, 30, 60)
MAX_REFRESH = 3600
PATH = "/targets"


class QueryError(ValueError):
    """A query parameter the page does not understand; the message says what it takes."""


@dataclass(frozen=True)
class TargetsQuery:
    """What the query string asks of the page: a health and an account to show only, and a
    refresh period."""

    state: str | None = None
    refresh: int | None = None
    account: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> TargetsQuery:
        state = query.get("state") or None
        if state == "all":
            state = None
        if state is not None and state not in STATES:
            raise QueryError(f"state must be one of all, {', '.join(STATES)}")
        account = query.get("account") or None
        raw = query.get("refresh") or "off"
        if raw in ("0", "off"):
            return cls(state, None, account)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_REFRESH:
            raise QueryError(f"refresh must be a whole number of seconds from 1 to {MAX_REFRESH}, or off")
        return cls(state, int(raw), account)

    def href(self, **changes: Any) -> str:
        """This view's address with ``changes`` applied (``state=None`` shows every target)."""
        q = replace(self, **changes)
        pairs = (("account", q.account), ("state", q.state), ("refresh", q.refresh))
        params = {k: v for k, v in pairs if v is not None}
        return PATH + ("?" + urlencode(params) if params else "")

    def json_href(self) -> str:
        """The same rows as JSON (the account and health filters kept)."""
        pairs = (("format", "json"), ("account", self.account), ("state", self.state))
        return PATH + "?" + urlencode({k: v for k, v in pairs if v is not None})


@dataclass
class Group:
    """The targets of one source, and of one account when targets carry one."""

    source: str
    account: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(r["health"] for r in self.rows)


def select(
    data: Iterable[dict[str, Any]], state: str | None, account: str | None = None
) -> list[dict[str, Any]]:
    """The rows with health ``state`` and of ``account``; ``None`` selects any."""
    return [
        r
        for r in data
        if (state is None or r["health"] == state) and (account is None or r.get("account") == account)
    ]


def group(data: Iterable[dict[str, Any]]) -> list[Group]:
    """Rows by (source, account), groups in name order, rows in the order given.

    A row without an ``account`` (or with an empty one) is grouped by its source alone.
    """
    groups: dict[tuple[str, str], Group] = {}
    for r in data:
        account = r.get("account") or None
        key = (r["source"], account or "")
        if key not in groups:
            groups[key] = Group(r["source"], account)
        groups[key].rows.append(r)
    return [groups[k] for k in sorted(groups)]


def stream(
    data: list[dict[str, Any]],
    now: float,
    query: TargetsQuery | None = None,
    telemetry_path: str = "/metrics",
) -> Iterator[str]:
    """The page for ``data`` (every target's row, as ``exporter.web.status.rows`` builds
    them), as the pieces of text it is made of, one after the other.

    Accounts are named (in group headings, and as a filter) only when there is more
    than one: a single account needs no name on every heading.
    """
    query = query or TargetsQuery()
    accounts = sorted({str(r["account"]) for r in data if r.get("account")})
    scoped = select(data, None, query.account)
    counts = Counter(r["health"] for r in scoped)
    shown = select(scoped, query.state)
    refresh_choices = sorted({*REFRESH_CHOICES, *([query.refresh] if query.refresh else [])})
    return stream_page(
        "targets.html",
        page="targets",
        title="Targets",
        telemetry_path=telemetry_path,
        now=now,
        query=query,
        total=len(scoped),
        accounts=accounts if len(accounts) > 1 or query.account else [],
        counts={s: counts.get(s, 0) for s in STATES},
        groups=group(shown),
        shown=len(shown),
        states=STATES,
        labels=LABELS,
        refresh_choices=refresh_choices,
    )
