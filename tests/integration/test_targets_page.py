"""/targets and the landing page as a browser renders them, and /targets as JSON.

Headless Chromium loads each page at desktop (1280 px) and narrow (390 px) widths and
takes a screenshot; the tests check the DOM and that each screenshot was written.
"""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.browser import DESKTOP, NARROW, dump_dom, png_size, screenshot
from tests.conftest import SIM_KEY
from tests.helpers import REPO, Proc, add_fault, need_binary, start_daemon, wait_until
from tests.integration.queue_config import KEY_ENV, queue_config

PATH = "/v1/queue/metrics"


class TableParser(HTMLParser):
    """The table with id ``targets``: its column headers, group headings and target rows.

    Also every link's href, ``<time>`` titles, ``<meta http-equiv=refresh>`` contents
    and the definition list's terms and values (the landing page's status).
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_table = False
        self.header: list[str] = []
        self.groups: list[str] = []
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.times: list[str] = []
        self.refresh: list[str] = []
        self.facts: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._kind = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        elif tag == "time" and a.get("title"):
            self.times.append(str(a["title"]))
        elif tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh.append(str(a.get("content")))
        elif tag in ("dt", "dd"):
            self._cell = []
        elif tag == "table" and a.get("id") == "targets":
            self.in_table = True
        elif self.in_table and tag == "tr":
            self._row = []
            self._kind = "target" if a.get("data-target") is not None else ""
        elif self.in_table and tag in ("td", "th"):
            self._cell = []
            if a.get("scope") in ("rowgroup", "col"):
                self._kind = str(a["scope"])

    def handle_endtag(self, tag: str) -> None:
        cell = " ".join("".join(self._cell or []).split())
        if tag == "table":
            self.in_table = False
        elif tag in ("dt", "dd"):
            self.facts.append(cell)
            self._cell = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._kind == "target":
                self.rows.append(self._row)
            elif self._kind == "rowgroup":
                self.groups.extend(self._row)
            elif self._kind == "col":
                self.header.extend(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_page(dom: str) -> TableParser:
    page = TableParser()
    page.feed(dom)
    return page


def shoot(url: str, tmp_path: Path, name: str) -> None:
    """Screenshots at desktop and narrow widths; each must be a PNG of the window's width."""
    for label, size in (("desktop", DESKTOP), ("narrow", NARROW)):
        out = screenshot(url, tmp_path / f"{name}-{label}.png", tmp_path / f"profile-{name}-{label}", size)
        assert png_size(out) == size


@pytest.mark.integration
def test_pages_in_a_browser_and_as_json(tmp_path: Path, simulator: Proc) -> None:
    models = ["page/ok-1", "page/ok-2", "page/<broken>"]
    add_fault(simulator, path=PATH, match={"model": "page/<broken>"}, kind="status", status=404,
              message="model <b>gone</b> " + "and a long explanation " * 8)  # fmt: skip
    config = queue_config(tmp_path, simulator.url, models, together_extra=["labels: {team: ml}"])
    daemon = start_daemon(tmp_path, config, env={KEY_ENV: SIM_KEY})
    try:

        def states() -> dict[str, str]:
            data = httpx.get(daemon.url + "/targets?format=json", timeout=5).json()["targets"]
            return {t["id"]: t["health"] for t in data}

        wait_until(
            lambda: (
                states()
                == {
                    "together_queue/page/<broken>": "down",
                    "together_queue/page/ok-1": "up",
                    "together_queue/page/ok-2": "up",
                }
            ),
            timeout=10,
            what="health settled",
        )
        data = httpx.get(daemon.url + "/targets?format=json", timeout=5).json()["targets"]
        failing_json = httpx.get(daemon.url + "/targets?format=json&state=down", timeout=5).json()
        dom = dump_dom(daemon.url + "/targets", tmp_path / "profile-dom")
        failing = dump_dom(daemon.url + "/targets?state=down&refresh=10", tmp_path / "profile-failing")
        shoot(daemon.url + "/targets", tmp_path, "targets")
        # A reload that fails shows on the landing page; the running config stays.
        config.write_text(config.read_text() + "  queues: [\n")
        assert httpx.post(daemon.url + "/-/reload", timeout=10).status_code == 500
        landing = dump_dom(daemon.url + "/", tmp_path / "profile-landing")
        shoot(daemon.url + "/", tmp_path, "landing")
    finally:
        daemon.stop()

    broken = data[0]
    assert broken["id"] == "together_queue/page/<broken>"
    assert broken["source"] == "together_queue"
    assert broken["health"] == "down" and broken["interval_seconds"] == 1
    assert broken["labels"] == {"team": "ml"} and broken["retired"] is False
    assert broken["last_error"] == "not_found"
    assert "model <b>gone</b>" in broken["last_error_detail"]
    assert broken["last_poll_timestamp"] > 1.6e9 and broken["last_poll_duration_seconds"] >= 0
    assert broken["last_poll"].endswith("Z") and broken["last_success_timestamp"] is None
    assert data[1]["series"] == 2 and data[1]["last_error"] is None
    assert [t["id"] for t in failing_json["targets"]] == ["together_queue/page/<broken>"]

    page = parse_page(dom)
    assert page.header == ["Target", "Health", "Last poll", "Interval", "Duration", "Series", "Last error"]
    assert page.groups == ["together_queue 3 targets, 1 down, 2 up"]
    assert [r[0] for r in page.rows] == [t["id"] + ' team="ml"' for t in data]
    by_id = {r[0].removesuffix(' team="ml"'): r for r in page.rows}
    row = by_id["together_queue/page/<broken>"]
    assert row[1] == "down never ok" and row[3] == "every 1 s"
    # Vendor text is escaped: the browser shows the tags as text, it does not render them.
    assert row[6].startswith("not_found") and "model <b>gone</b>" in row[6]
    assert "<b>gone</b>" not in dom.replace("&lt;b&gt;gone&lt;/b&gt;", "")
    ok = by_id["together_queue/page/ok-1"]
    assert ok[1] == "up" and ok[5] == "2" and ok[6] == ""
    assert ok[2].endswith(" ago") or ok[2] == "just now"
    assert ok[4].endswith("ms") or ok[4].endswith(" s")
    # The exact time of each last poll is on hover.
    assert len(page.times) == 3 and all(t.endswith("Z") and t.startswith("20") for t in page.times)
    assert "/targets?state=down" in page.links and "/targets?refresh=10" in page.links
    assert page.refresh == []

    only_failing = parse_page(failing)
    assert [r[0] for r in only_failing.rows] == ['together_queue/page/<broken> team="ml"']
    assert only_failing.refresh == ["10"]
    assert "/targets?refresh=10" in only_failing.links  # "all", keeping the refresh

    front = parse_page(landing)
    assert {"/targets", "/metrics", "/-/healthy", "/-/ready", "/targets?state=down"} <= set(front.links)
    facts = dict(zip(front.facts[::2], front.facts[1::2], strict=True))
    assert facts["Config file"] == str(config)
    assert facts["Version"] and facts["Uptime"].endswith("Z)")
    assert facts["Last reload"].startswith("failed") and "keeping the running config" in facts["Last reload"]
    # The problem itself, with its file and line, not only "see the log".
    assert f"{config}:" in facts["Last reload"]
    assert facts["Reload with"] == "SIGHUP or POST /-/reload"
    assert "2 up" in landing.replace('<span class="n">', "").replace("</span>", "")


@pytest.mark.integration
def test_the_screenshot_script_writes_the_documentation_images(tmp_path: Path) -> None:
    chromium = need_binary("chromium")
    script = REPO / "scripts" / "screenshots.py"
    res = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--chromium", chromium],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=150,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    written = sorted(Path(line) for line in res.stdout.split())
    assert written == [tmp_path / "landing.png", tmp_path / "targets.png"]
    assert all(png_size(p)[0] == 1280 for p in written)
    # The images the documentation shows were made by this script at the same size.
    for p in written:
        assert png_size(REPO / "docs" / "images" / p.name) == png_size(p)
