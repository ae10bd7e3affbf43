"""The /targets rows and page, and the reliability config keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config
from exporter.core.exposition import Rendered, render
from exporter.core.scope import Scope
from exporter.engine.health import TargetHealth
from exporter.sources.base import Target
from exporter.web.status import rows
from tests.helpers import targets_page


class Dummy(Target):
    source = "dummy"

    async def poll(self, now: float) -> Rendered:
        return render([])


def test_rows_and_html_escape_vendor_text() -> None:
    def target(tid: str) -> Target:
        return Dummy(tid, interval=1, timeout=1, settings=())

    up, down, new = TargetHealth(), TargetHealth(), TargetHealth()
    up.record_success(1_800_000_000.0, 0.25, 3, 2)
    down.record_failure(1_800_000_001.0, 0.5, "server_error", "GET /q answered 500: <script>x</script>")
    data = rows([(target("dummy/<a>"), down), (target("dummy/b"), up), (target("dummy/new"), new)])
    assert [r["id"] for r in data] == ["dummy/<a>", "dummy/b", "dummy/new"]
    assert data[0]["health"] == "down" and data[0]["last_error"] == "server_error"
    assert data[1] == {
        "id": "dummy/b",
        "account": "default",
        "source": "dummy",
        "labels": {},
        "health": "up",
        "interval_seconds": 1,
        "finished_timestamp": None,
        "kept_until_timestamp": None,
        "retired": False,
        "last_poll": "2027-01-15T08:00:00Z",
        "last_poll_timestamp": 1_800_000_000.0,
        "last_poll_duration_seconds": 0.25,
        "last_success_timestamp": 1_800_000_000.0,
        "series": 3,
        "filtered_series": 2,
        "last_error": None,
        "last_error_detail": None,
    }
    assert data[2]["health"] == "unknown" and data[2]["last_poll"] is None
    page = targets_page(data, time.time())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "dummy/&lt;a&gt;" in page and "3 targets, 1 down" in page
    assert page.count("<tr data-target=") == 3


class Finished(Dummy):
    """A target that finished at ``finished_at``, its series kept for an hour."""

    def __init__(self, tid: str, finished_at: float) -> None:
        scope = Scope("prod", (("team", "ml"),))
        super().__init__(tid, interval=5, timeout=1, settings=(), scope=scope)
        self.finished_at = finished_at

    def kept_until(self) -> float | None:
        assert self.finished_at is not None
        return self.finished_at + 3600


def test_finished_targets_show_as_finished_without_a_schedule_and_with_their_labels() -> None:
    """A finished job kept for its retention, or retired after it, is not "up, every 5 s"."""
    now = 1_800_000_000.0
    up = TargetHealth()
    up.record_success(now - 5, 0.01, 0)
    kept = Finished("dummy/ft-new", now - 60)
    retired = Finished("dummy/ft-old", now - 7200)
    data = rows([(kept, up), (retired, up)], now)
    assert [(r["health"], r["interval_seconds"], r["retired"]) for r in data] == [
        ("finished", None, False),
        ("finished", None, True),
    ]
    assert data[0]["kept_until_timestamp"] == now + 3540 and data[0]["labels"] == {"team": "ml"}
    page = targets_page(data, now)
    assert "every 5 s" not in page and "2 targets, 0 down, 0 up, 2 finished." in page
    assert page.count('<span class="badge finished">finished</span>') == 2
    assert "series kept until" in page and "retired: series gone" in page
    assert page.count('<span class="label">team="ml"</span>') == 2


def write(tmp_path: Path, together: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text("together:\n  api_key_env: K\n" + together)
    return p


def test_budget_and_body_cap_keys(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "  requests_per_second: 2.5\n  max_response_bytes: 65536\n"), read_secrets=False
    )
    assert cfg.config.together is not None
    assert cfg.config.together.requests_per_second == 2.5
    assert cfg.config.together.max_response_bytes == 65536
    default = load_config(write(tmp_path, ""), read_secrets=False).config.together
    assert default is not None and default.requests_per_second is None


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("  requests_per_second: 0\n", "together.requests_per_second", "must be greater than 0, got 0"),
        ("  requests_per_second: lots\n", "together.requests_per_second", "expected a number, got 'lots'"),
        ("  max_response_bytes: 10\n", "together.max_response_bytes", "must be at least 1024, got 10"),
    ],
)
def test_bad_reliability_keys_are_reported_with_line(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), read_secrets=False)
    problem = err.value.problems[0]
    assert problem.key == key and problem.line == 3 and message in problem.message


def test_a_key_pasted_as_api_key_env_is_refused_without_echo(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("together:\n  api_key_env: sk-abc123/def+ghi\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, read_secrets=False)
    assert "must name an environment variable" in str(err.value)
    assert "sk-abc123" not in str(err.value)
