"""Golden expositions: every source's recorded responses render exactly the committed file."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

import tests.golden.__main__ as golden_cli
from tests.golden import BUILDERS, build, golden_path
from tests.golden.replay import GOLDEN
from tests.helpers import promtool_check_metrics

SOURCES = sorted(BUILDERS)


@pytest.mark.parametrize("source", SOURCES)
def test_fixtures_render_the_golden_exposition_byte_for_byte(source: str) -> None:
    built, _ = build(source)
    committed = golden_path(source).read_bytes()
    if built != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.decode().splitlines(keepends=True),
                built.decode().splitlines(keepends=True),
                "committed",
                "from the fixtures",
            )
        )
        pytest.fail(f"{golden_path(source)} is out of date (python -m tests.golden --update):\n{diff}")


@pytest.mark.parametrize("source", SOURCES)
def test_golden_exposition_passes_promtool(source: str) -> None:
    text = golden_path(source).read_text(encoding="utf-8")
    assert text.startswith("# HELP ")
    assert promtool_check_metrics(text) == ""


@pytest.mark.parametrize("source", SOURCES)
def test_every_fixture_is_replayed(source: str) -> None:
    _, fx = build(source)
    unused = sorted(str(p.relative_to(fx.root)) for p in fx.all_files() - fx.read)
    assert fx.read, f"no fixture of {source} was read"
    assert not unused, f"fixtures no builder reads: {unused}"


def test_one_golden_file_per_source() -> None:
    assert {p.stem for p in GOLDEN.glob("*.prom")} == set(SOURCES)


def test_update_command_reports_then_rewrites_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "together_queue.prom"
    stale.write_bytes(golden_path("together_queue").read_bytes().replace(b"} 12\n", b"} 11\n"))
    monkeypatch.setattr(golden_cli, "BUILDERS", {"together_queue": BUILDERS["together_queue"]})
    monkeypatch.setattr(golden_cli, "golden_path", lambda source: tmp_path / f"{source}.prom")

    assert golden_cli.main([]) == 1
    out = capsys.readouterr()
    assert '-together_queue_jobs_waiting{model="my-org/video-generator",account="default"} 11' in out.out
    assert '+together_queue_jobs_waiting{model="my-org/video-generator",account="default"} 12' in out.out
    assert "python -m tests.golden --update" in out.err

    assert golden_cli.main(["--update"]) == 0
    assert stale.read_bytes() == golden_path("together_queue").read_bytes()
    assert golden_cli.main([]) == 0
