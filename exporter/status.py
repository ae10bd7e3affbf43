"""The ``/targets`` status page: every target's health as an HTML table or as JSON.

What an operator opens first when a target is down: which one, since when, and
why. Error details are scrubbed of API keys before they are stored, and everything
is HTML-escaped here, since details can carry vendor text.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from exporter.health import TargetHealth
from exporter.sources.base import Target

COLUMNS = (
    "Target",
    "Account",
    "Source",
    "Health",
    "Last poll",
    "Duration",
    "Series",
    "Filtered",
    "Last error",
)


def _iso(ts: float) -> str:
    if ts <= 0:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _health(h: TargetHealth) -> str:
    if not h.polled:
        return "unknown"
    return "up" if h.up else "down"


def rows(targets: Iterable[tuple[Target, TargetHealth]]) -> list[dict[str, Any]]:
    """One row per target, in the order given, as the JSON view serves them."""
    out: list[dict[str, Any]] = []
    for t, h in targets:
        out.append(
            {
                "id": t.id,
                "account": t.account,
                "source": t.source,
                "health": _health(h),
                "interval_seconds": t.interval,
                "last_poll": _iso(h.last_poll_timestamp) or None,
                "last_poll_timestamp": h.last_poll_timestamp or None,
                "last_poll_duration_seconds": h.last_duration if h.polled else None,
                "last_success_timestamp": h.last_success_timestamp or None,
                "series": h.series,
                "filtered_series": h.filtered,
                "last_error": h.last_error_reason or None,
                "last_error_detail": h.last_error_detail or None,
            }
        )
    return out


def for_account(data: list[dict[str, Any]], account: str | None) -> list[dict[str, Any]]:
    """The rows of one account (all of them for None)."""
    return data if account is None else [r for r in data if r["account"] == account]


def _account_links(accounts: list[str], chosen: str | None) -> str:
    """Links that filter the table by account (``?account=``), the chosen one in bold."""
    if len(accounts) < 2 and chosen is None:
        return ""
    links = ["<a href='?'>all</a>" if chosen is not None else "<b>all</b>"]
    for a in accounts:
        name = html.escape(a)
        links.append(f"<b>{name}</b>" if a == chosen else f"<a href='?account={quote(a)}'>{name}</a>")
    return "<p>Accounts: " + " · ".join(links) + "</p>"


def render_html(
    data: list[dict[str, Any]], accounts: list[str] | None = None, chosen: str | None = None
) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = []
    for r in data:
        err = ""
        if r["last_error"]:
            err = f"<code>{html.escape(r['last_error'])}</code>"
            if r["last_error_detail"]:
                err += f" {html.escape(r['last_error_detail'])}"
        duration = r["last_poll_duration_seconds"]
        cells = [
            f"<td>{html.escape(r['id'])}</td>",
            f"<td>{html.escape(r['account'])}</td>",
            f"<td>{html.escape(r['source'])}</td>",
            f'<td class="health-{r["health"]}">{r["health"]}</td>',
            f"<td class='nowrap'>{html.escape(r['last_poll'] or 'never')}</td>",
            f"<td class='nowrap'>{'' if duration is None else f'{duration:.3f}s'}</td>",
            f"<td>{r['series']}</td>",
            f"<td>{r['filtered_series']}</td>",
            f"<td>{err}</td>",
        ]
        body.append(f'<tr data-target="{html.escape(r["id"], quote=True)}">{"".join(cells)}</tr>')
    down = sum(1 for r in data if r["health"] == "down")
    json_query = "format=json" + ("" if chosen is None else f"&account={quote(chosen)}")
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.nowrap{white-space:nowrap}"
        ".health-up{color:#070}.health-down{color:#b00;font-weight:bold}.health-unknown{color:#777}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Targets · inference-exporter</title>"
        f"<style>{style}</style></head><body><h1>Targets</h1>"
        f"<p>{len(data)} targets, {down} down. <a href='?{json_query}'>JSON</a> · <a href='/'>Home</a></p>"
        f"{_account_links(accounts or [], chosen)}"
        f"<table id='targets'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>"
    )
