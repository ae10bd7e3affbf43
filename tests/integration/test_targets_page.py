"""/targets: the status table as a browser renders it, and the same data as JSON."""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import SIM_KEY
from tests.helpers import Proc, add_fault, need_binary, start_daemon, wait_until
from tests.integration.queue_config import KEY_ENV, queue_config

PATH = "/v1/queue/metrics"


class TableParser(HTMLParser):
    """Collects the header and body rows of the table with id ``targets``."""

    def __init__(self) -> None:
        super().__init__()
        self.in_table = False
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "table" and a.get("id") == "targets":
            self.in_table = True
        elif self.in_table and tag == "tr":
            self._row = []
        elif self.in_table and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_table = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self.header:
                self.rows.append(self._row)
            else:
                self.header = self._row
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def render_in_chromium(url: str, profile: Path) -> str:
    chromium = need_binary("chromium")
    res = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.integration
def test_targets_page_in_a_browser_and_as_json(tmp_path: Path, simulator: Proc) -> None:
    models = ["page/ok-1", "page/ok-2", "page/<broken>"]
    add_fault(simulator, path=PATH, match={"model": "page/<broken>"}, kind="status", status=404,
              message="model <b>gone</b>")  # fmt: skip
    config = queue_config(tmp_path, simulator.url, models)
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
        dom = render_in_chromium(daemon.url + "/targets", tmp_path / "chromium-profile")
        landing = render_in_chromium(daemon.url + "/", tmp_path / "chromium-profile-2")
    finally:
        daemon.stop()

    broken = data[0]
    assert broken["id"] == "together_queue/page/<broken>"
    assert broken["source"] == "together_queue"
    assert broken["last_error"] == "not_found"
    assert "model <b>gone</b>" in broken["last_error_detail"]
    assert broken["last_poll_timestamp"] > 1.6e9 and broken["last_poll_duration_seconds"] >= 0
    assert data[1]["series"] == 2 and data[1]["last_error"] is None

    page = TableParser()
    page.feed(dom)
    assert page.header == [
        "Target",
        "Account",
        "Source",
        "Health",
        "Last poll",
        "Duration",
        "Series",
        "Filtered",
        "Last error",
    ]
    assert [r[0] for r in page.rows] == [t["id"] for t in data]
    by_id = {r[0]: r for r in page.rows}
    row = by_id["together_queue/page/<broken>"]
    assert row[1] == "default" and row[2] == "together_queue" and row[3] == "down"
    # Vendor text is escaped: the browser shows the tags as text, it does not render them.
    assert row[8].startswith("not_found") and "model <b>gone</b>" in row[8]
    assert "<b>gone</b>" not in dom.replace("&lt;b&gt;gone&lt;/b&gt;", "")
    ok = by_id["together_queue/page/ok-1"]
    assert ok[3] == "up" and ok[6] == "2" and ok[7] == "0" and ok[8] == ""
    assert ok[4].endswith("Z") and ok[5].endswith("s")

    front = TableParser()
    front.feed(landing)
    assert "/targets" in front.links
