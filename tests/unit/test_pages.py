"""The HTML pages rendered from literal rows: structure, escaping, grouping, filter, refresh."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from exporter.engine.reloadstate import ReloadState
from exporter.web.pages import landing
from exporter.web.pages.targets import QueryError, TargetsQuery, group, select
from exporter.web.pages.timefmt import ago, duration, iso, span
from tests.helpers import targets_page

NOW = 1_800_000_100.0
HOSTILE = "<script>alert(1)</script>\"'&"


class Dom(HTMLParser):
    """Elements as (tag, attrs, text) in document order; text is what the element holds."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[tuple[str, dict[str, str], list[str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el: tuple[str, dict[str, str], list[str]] = (tag, {k: v or "" for k, v in attrs}, [])
        self.elements.append(el)
        if tag not in ("meta", "br", "img", "link", "input"):
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el[2].append(data)

    def find(self, tag: str, **attrs: str) -> list[tuple[dict[str, str], str]]:
        out = []
        for t, a, text in self.elements:
            if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items()):
                out.append((a, " ".join("".join(text).split())))
        return out

    def text(self, tag: str, **attrs: str) -> list[str]:
        return [text for _, text in self.find(tag, **attrs)]


def row(
    tid: str,
    health: str = "up",
    *,
    source: str | None = None,
    account: str | None = None,
    polled: float = NOW - 12,
    error: str | None = None,
    detail: str | None = None,
    success: float | None = None,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": tid,
        "source": source or tid.split("/")[0],
        "health": health,
        "interval_seconds": 30.0,
        "last_poll": iso(polled) if health != "unknown" else None,
        "last_poll_timestamp": polled if health != "unknown" else None,
        "last_poll_duration_seconds": 0.0123 if health != "unknown" else None,
        "last_success_timestamp": (polled if health == "up" else success),
        "series": 4 if health == "up" else 0,
        "last_error": error,
        "last_error_detail": detail,
    }
    if account is not None:
        r["account"] = account
    return r


def test_times_read_as_ages_and_spans() -> None:
    assert [span(s) for s in (0, 0.5, 1, 2.5, 12, 60, 61, 3600, 3725, 86400 + 7200)] == [
        "0 s", "500 ms", "1 s", "2.5 s", "12 s", "1 min", "1 min 1 s", "1 h", "1 h 2 min", "1 d 2 h",
    ]  # fmt: skip
    assert ago(NOW - 12.9, NOW) == "12 s ago"
    assert ago(NOW - 3725, NOW) == "1 h 2 min ago"
    assert ago(NOW + 5, NOW) == "just now" and ago(NOW - 0.4, NOW) == "just now"
    assert ago(0, NOW) == "never"
    assert [duration(s) for s in (0.00005, 0.0123, 0.25, 1.234)] == ["0.05 ms", "12.3 ms", "250 ms", "1.23 s"]
    assert iso(1_800_000_000.0) == "2027-01-15T08:00:00Z" and iso(0) == ""


def test_query_parses_state_and_refresh_and_builds_links() -> None:
    q = TargetsQuery.parse({"state": "down", "refresh": "10"})
    assert q == TargetsQuery("down", 10)
    assert TargetsQuery.parse({}) == TargetsQuery() == TargetsQuery.parse({"state": "all", "refresh": "off"})
    assert TargetsQuery.parse({"refresh": "0"}).refresh is None
    assert q.href(state=None) == "/targets?refresh=10"
    assert q.href(refresh=None) == "/targets?state=down"
    assert TargetsQuery().href() == "/targets"
    assert q.json_href() == "/targets?format=json&state=down"
    one = TargetsQuery.parse({"account": "a&b", "state": "up"})
    assert one == TargetsQuery("up", None, "a&b") and TargetsQuery.parse({"account": ""}).account is None
    assert one.href(refresh=30) == "/targets?account=a%26b&state=up&refresh=30"
    assert one.json_href() == "/targets?format=json&account=a%26b&state=up"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"state": "broken"}, "state must be one of all, down, up, unknown"),
        ({"refresh": "soon"}, "refresh must be a whole number of seconds from 1 to 3600, or off"),
        ({"refresh": "-5"}, "refresh must be"),
        ({"refresh": "99999"}, "refresh must be"),
        ({"refresh": "²"}, "refresh must be"),
        ({"refresh": "1" * 5000}, "refresh must be"),
    ],
)
def test_a_bad_query_says_what_it_takes(query: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match="^" + message):
        TargetsQuery.parse(query)


def test_groups_by_source_or_by_source_and_account() -> None:
    data = [row("b/1"), row("a/2"), row("a/1"), row("b/0")]
    assert [(g.source, g.account, [r["id"] for r in g.rows]) for g in group(data)] == [
        ("a", None, ["a/2", "a/1"]),
        ("b", None, ["b/1", "b/0"]),
    ]
    accounts = [
        row("baseten/x/1", account="prod"),
        row("baseten/y/1", account="dev"),
        row("baseten/x/2", account="prod"),
        row("together/q", account=""),
    ]
    assert [(g.source, g.account, len(g.rows)) for g in group(accounts)] == [
        ("baseten", "dev", 1),
        ("baseten", "prod", 2),
        ("together", None, 1),
    ]
    assert [r["id"] for r in select([*data, row("c/1", "down")], "down")] == ["c/1"]


def sample() -> list[dict[str, Any]]:
    return [
        row(
            "together_queue/a", "down", error="server_error", detail="GET /q answered 500", success=NOW - 300
        ),
        row("together_queue/b"),
        row("baseten/m/d", account="acme"),
        row("together_probe/p", "unknown", account="zeta"),
        row("together_queue/c", "down", error="connection_error", detail="x" * 400),
    ]


def test_targets_page_structure() -> None:
    dom = Dom(targets_page(sample(), NOW))
    assert dom.find("html", lang="en")
    assert not dom.find("meta", http_equiv="refresh")
    assert dom.text("th", scope="col") == [
        "Target", "Health", "Last poll", "Interval", "Duration", "Series", "Last error",
    ]  # fmt: skip
    assert dom.find("caption")
    # One tbody per group, named by its heading; groups in name order, account in the heading.
    headings = dom.text("th", scope="rowgroup")
    assert headings[0].startswith("baseten · account acme 1 target, 1 up")
    assert headings[1].startswith("together_probe · account zeta 1 target, 1 not polled yet")
    assert headings[2] == "together_queue 3 targets, 2 down, 1 up"
    for attrs, _ in dom.find("tbody"):
        assert attrs["aria-labelledby"] in {a["id"] for a, _ in dom.find("th", scope="rowgroup")}
    assert dom.text("th", scope="row") == [
        "baseten/m/d", "together_probe/p", "together_queue/a", "together_queue/b", "together_queue/c",
    ]  # fmt: skip
    # Last poll as an age, the exact time on hover and in the datetime attribute.
    times = dom.find("time", title=iso(NOW - 12))
    assert times and times[0][1] == "12 s ago" and times[0][0]["datetime"] == "2027-01-15T08:01:28Z"
    assert "never" in dom.text("td", data_label="Last poll")
    # A failing target says when it last succeeded.
    assert "last ok 5 min ago" in dom.text("td", data_label="Health")[2]
    assert set(dom.text("td", data_label="Interval")) == {"every 30 s"}
    assert dom.text("td", data_label="Duration")[0] == "12.3 ms"
    errors = dom.text("td", data_label="Last error")
    assert errors[2] == "server_error GET /q answered 500" and errors[1] == ""
    # Filter and refresh are links: no JavaScript, no external assets.
    filters = {text: a["href"] for a, text in dom.find("a", **{"class": "chip"})}
    assert filters["all 5"] == "/targets" and filters["failing 2"] == "/targets?state=down"
    assert (
        filters["not polled yet 1"] == "/targets?state=unknown" and filters["10 s"] == "/targets?refresh=10"
    )
    assert [text for a, text in dom.find("a") if a.get("aria-current") == "page"] == [
        "Targets",
        "all 5",
        "off",
        "all",
    ]
    assert not dom.find("script") and not dom.find("link") and "http" not in targets_page(sample(), NOW)


def test_failing_only_and_auto_refresh() -> None:
    page = targets_page(sample(), NOW, TargetsQuery("down", 30))
    dom = Dom(page)
    assert dom.text("th", scope="row") == ["together_queue/a", "together_queue/c"]
    assert dom.find("meta", http_equiv="refresh", content="30")
    current = [(a["href"], text) for a, text in dom.find("a") if a.get("aria-current") == "page"]
    assert current == [("/targets", "Targets"), ("/targets?state=down&refresh=30", "failing 2"),
                       ("/targets?state=down&refresh=30", "30 s"),
                       ("/targets?state=down&refresh=30", "all")]  # fmt: skip
    assert ("/targets?refresh=30", "all 5") in [(a["href"], t) for a, t in dom.find("a")]
    # The summary still counts every target.
    assert "5 targets, 2 down, 2 up, 1 not polled yet" in page
    # A refresh period that is not offered is shown as the current one.
    odd = Dom(targets_page(sample(), NOW, TargetsQuery(None, 15)))
    assert [t for a, t in odd.find("a") if a.get("aria-current")] == ["Targets", "all 5", "15 s", "all"]


def test_accounts_are_named_when_there_are_several() -> None:
    # One account everywhere (rows as the daemon builds them once targets carry an
    # account): grouped by source, no account on the headings, no account filter.
    single = [row("together_queue/a", account="default"), row("baseten/m/d", account="default")]
    dom = Dom(targets_page(single, NOW))
    assert dom.text("th", scope="rowgroup") == ["baseten 1 target, 1 up", "together_queue 1 target, 1 up"]
    assert not dom.find("nav", aria_label="Show targets of one account")
    # Several: headings name the account, and a filter shows one account's targets.
    several = [
        row("baseten/x/1", account="prod"),
        row("baseten/y/1", "down", account="dev", error="not_found"),
        row("baseten/x/2", account="prod"),
        row("together_queue/q", "down", account="prod", error="server_error"),
    ]
    dom = Dom(targets_page(several, NOW))
    assert dom.text("th", scope="rowgroup") == [
        "baseten · account dev 1 target, 1 down",
        "baseten · account prod 2 targets, 2 up",
        "together_queue · account prod 1 target, 1 down",
    ]
    accounts = {t: a["href"] for a, t in dom.find("a") if a["href"].startswith("/targets?account=")}
    assert accounts == {"dev": "/targets?account=dev", "prod": "/targets?account=prod"}
    page = targets_page(several, NOW, TargetsQuery("down", None, "prod"))
    dom = Dom(page)
    assert dom.text("th", scope="row") == ["together_queue/q"]
    # Counts are the account's; the links keep the account, "all" drops it.
    assert "3 targets, 1 down, 2 up" in page
    links = {t: a["href"] for a, t in dom.find("a")}
    assert (
        links["all 3"] == "/targets?account=prod"
        and links["10 s"] == "/targets?account=prod&state=down&refresh=10"
    )
    assert (
        links["all"] == "/targets?state=down"
        and links["JSON"] == "/targets?format=json&account=prod&state=down"
    )
    assert [t for a, t in dom.find("a") if a.get("aria-current")] == ["Targets", "failing 1", "off", "prod"]


def test_series_removed_by_a_filter_are_shown_next_to_the_count() -> None:
    kept = row("baseten/m/d")
    trimmed = {**row("baseten/m/e"), "filtered_series": 7}
    dom = Dom(targets_page([kept, {**kept, "id": "baseten/m/f", "filtered_series": 0}, trimmed], NOW))
    assert dom.text("td", data_label="Series") == ["4", "4", "4 7 filtered out"]


def test_an_empty_filter_says_so() -> None:
    dom = Dom(targets_page([row("a/1")], NOW, TargetsQuery("down")))
    assert not dom.find("table")
    assert dom.text("p", **{"class": "empty"}) == ["No target is down now. Show all targets."]
    assert Dom(targets_page([], NOW)).text("p", **{"class": "empty"}) == ["No targets to show yet."]


def test_vendor_text_is_escaped_everywhere_on_targets() -> None:
    data = [
        row("s/" + HOSTILE, "down", source=HOSTILE, account=HOSTILE, error=HOSTILE, detail=HOSTILE),
    ]
    page = targets_page(data, NOW, telemetry_path="/metrics")
    assert "<script>" not in page and "&lt;script&gt;" in page
    dom = Dom(page)
    # Attribute values come back intact: the quotes did not end them.
    assert [a["data-target"] for a, _ in dom.find("tr") if "data-target" in a] == ["s/" + HOSTILE]
    assert dom.text("th", scope="row") == ["s/" + HOSTILE]
    assert dom.text("td", data_label="Last error") == [f"{HOSTILE} {HOSTILE}"]
    assert HOSTILE in dom.text("th", scope="rowgroup")[0]


def overview(**changes: Any) -> landing.Overview:
    base = landing.Overview(
        version="1.2.3",
        started_at=NOW - 3725.5,
        config_path="/etc/inference-exporter/config.yaml",
        reload=ReloadState(ok=True, attempted_at=NOW - 3725, loaded_at=NOW - 3725),
        health={"up": 7, "down": 2, "unknown": 1},
        telemetry_path="/metrics",
        lifecycle=False,
    )
    return landing.Overview(**{**base.__dict__, **changes})


def facts(page: str) -> dict[str, str]:
    dom = Dom(page)
    return dict(zip(dom.text("dt"), dom.text("dd"), strict=True))


def test_landing_page_shows_status_counts_and_links() -> None:
    page = landing.render(overview(), NOW)
    dom = Dom(page)
    assert facts(page) == {
        "Version": "1.2.3",
        "Uptime": "1 h 2 min (started 2027-01-15T06:59:34Z)",
        "Config file": "/etc/inference-exporter/config.yaml",
        "Last reload": "ok loaded at start, 1 h 2 min ago",
        "Reload with": "SIGHUP (POST /-/reload is off; start with --web.enable-lifecycle to allow it)",
    }
    tiles = {text: a["href"] for a, text in dom.find("a") if a["href"].startswith("/targets")}
    assert tiles["7 up"] == "/targets?state=up" and tiles["2 down"] == "/targets?state=down"
    assert tiles["1 not polled yet"] == "/targets?state=unknown" and tiles["10 in all"] == "/targets"
    links = {a["href"] for a, _ in dom.find("a")}
    assert {"/metrics", "/targets", "/targets?format=json", "/-/healthy", "/-/ready", "/"} <= links
    assert [t for a, t in dom.find("a") if a.get("aria-current")] == ["Home"]
    assert dom.text("h2") == ["Targets", "Status", "Endpoints"]
    assert not dom.find("script") and not dom.find("link") and "http" not in page
    # The same look as /targets: the shared header and style.
    assert dom.find("header", **{"class": "top"}) and ".badge.up" in page
    assert "--web.enable-lifecycle" not in facts(landing.render(overview(lifecycle=True), NOW))["Reload with"]


def test_landing_page_reload_states() -> None:
    failed = ReloadState(
        ok=False,
        attempted_at=NOW - 30,
        loaded_at=NOW - 7200,
        reloaded=True,
        message="config reload failed: <x>",
    )
    text = facts(landing.render(overview(reload=failed), NOW))["Last reload"]
    assert text == "failed 30 s ago: config reload failed: <x>. The running config was loaded 2 h ago."
    ok = ReloadState(ok=True, attempted_at=NOW - 5, loaded_at=NOW - 5, reloaded=True)
    assert facts(landing.render(overview(reload=ok), NOW))["Last reload"] == "ok reloaded, 5 s ago"
    never = facts(landing.render(overview(reload=ReloadState(ok=False)), NOW))["Last reload"]
    assert never == "not loaded yet"


def test_landing_page_escapes_user_text() -> None:
    page = landing.render(
        overview(
            config_path=HOSTILE,
            telemetry_path='/m"><script>',
            reload=ReloadState(False, NOW, 0, True, HOSTILE),
        ),
        NOW,
    )
    assert "<script>" not in page
    assert facts(page)["Config file"] == HOSTILE
    assert '/m"><script>' in {a["href"] for a, _ in Dom(page).find("a")}
