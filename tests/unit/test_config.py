from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.configkit.common import parse_duration
from tests.helpers import problems

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), (15, 15), (0.5, 0.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30 s", "1x", "", "-1s", 0, True, "s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "k" * 10)
    monkeypatch.setenv("BASETEN_API_KEY", "b" * 10)
    loaded = load_config(REPO / "config.example.yaml")
    assert loaded.config.together is not None
    assert [q.model for q in loaded.config.together.queues] == [
        "my-org/video-generator",
        "my-org/image-upscaler",
    ]
    assert loaded.secrets[("together", "default")] == "k" * 10


def test_every_problem_has_file_line_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "secret-value")
    p = write(
        tmp_path,
        "global:\n"  # 1
        "  poll_interval: soon\n"  # 2
        "  bogus: 1\n"  # 3
        "together:\n"  # 4
        "  api_key_env: K\n"  # 5
        "  queues:\n"  # 6
        "    - model: a\n"  # 7
        "      timeout: 3\n"  # 8
        "      colour: red\n"  # 9
        "    - {}\n"  # 10
        "    - model: 12\n",  # 11
    )
    got = problems(p)
    f = str(p)
    assert f"{f}:2: global.poll_interval: expected a duration such as 30s, 1m or 500ms, got 'soon'" in got
    assert f"{f}:3: global.bogus: unknown key" in got
    assert f"{f}:9: together.queues[0].colour: unknown key" in got
    assert f"{f}:10: together.queues[1].model: required key is missing" in got
    assert any(g.startswith(f"{f}:11: together.queues[2].model: ") for g in got)
    assert len(got) == 5


def test_duplicates_keys_and_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "secret-value")
    p = write(tmp_path, "together:\n  api_key_env: K\n  queues:\n    - model: a\n    - model: a\n")
    assert problems(p) == [
        f"{p}:5: together.queues[1].model: duplicate queue model 'a' (first at together.queues[0].model)"
    ]
    p = write(tmp_path, "global:\n  timeout: 1s\n  timeout: 2s\n")
    assert problems(p) == [f"{p}:3: global.timeout: duplicate key"]
    # Every repeat is reported, each pointing at the first.
    p = write(
        tmp_path,
        "together:\n  api_key_env: K\n  queues:\n    - model: a\n    - model: b\n    - model: a\n    - model: a\n",
    )
    assert problems(p) == [
        f"{p}:{line}: together.queues[{i}].model: duplicate queue model 'a' (first at together.queues[0].model)"
        for line, i in ((6, 2), (7, 3))
    ]


def test_missing_secrets_name_the_reference_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    p = write(tmp_path, "together:\n  api_key_env: NOT_SET_ANYWHERE\n")
    assert problems(p, read_secrets=True) == [
        f"{p}:2: together.api_key_env: environment variable NOT_SET_ANYWHERE is not set or empty"
    ]
    # check-config --no-secrets accepts it
    assert load_config(p, read_secrets=False).secrets == {}

    p = write(tmp_path, "together:\n  api_key_file: missing.key\n")
    (got,) = problems(p, read_secrets=True)
    assert got.startswith(f"{p}:2: together.api_key_file: api_key_file ")
    assert got.count("cannot read") == 1

    (tmp_path / "empty.key").write_text("\n")
    p = write(tmp_path, "together:\n  api_key_file: empty.key\n")
    assert problems(p, read_secrets=True) == [
        f"{p}:2: together.api_key_file: api_key_file {str(tmp_path / 'empty.key')!r} is empty"
    ]

    (tmp_path / "good.key").write_text("file-secret\n")
    p = write(tmp_path, "together:\n  api_key_file: good.key\n")
    assert load_config(p).secrets == {("together", "default"): "file-secret"}


def test_key_reference_is_required_and_exclusive(tmp_path: Path) -> None:
    p = write(tmp_path, "together:\n  queues: []\n")
    assert problems(p) == [f"{p}:1: together: an API key reference is required: api_key_env or api_key_file"]
    p = write(tmp_path, "together:\n  api_key_env: A\n  api_key_file: b\n")
    assert problems(p) == [f"{p}:1: together: set either api_key_env or api_key_file, not both"]


def test_syntax_errors_and_odd_documents(tmp_path: Path) -> None:
    p = write(tmp_path, "global:\n  poll_interval: [\n")
    assert problems(p) == [
        f"{p}:2:18: (syntax): this '[' is never closed: the file ends before its ']' "
        "(YAML said: expected the node content, but found '<stream end>')"
    ]
    p = write(tmp_path, "- a\n- b\n")
    assert problems(p) == [f"{p}:1: (top level): the config must be a mapping"]
    assert load_config(write(tmp_path, "")).config.together is None
    assert problems(tmp_path / "nope.yaml")[0].startswith(f"{tmp_path / 'nope.yaml'}: (file): cannot read")


def test_bad_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "secret-value")
    p = write(tmp_path, "together:\n  api_key_env: K\n  base_url: api.together.ai\n")
    assert problems(p) == [f"{p}:3: together.base_url: must be an http(s) URL, got 'api.together.ai'"]
