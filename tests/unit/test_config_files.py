"""Config files that are not what they claim: bombs, devices, FIFOs, bad bytes, huge files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from exporter.config import ConfigError, files, load_config

BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return [str(p) for p in exc.value.problems]


def test_an_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.perf_counter()
    got = problems(path)
    assert time.perf_counter() - t0 < 5
    assert got == [f"{path}: (syntax): the document expands to more than 200,000 values through YAML aliases"]


def test_aliases_in_a_real_config_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "global: {poll_interval: 10s}\n"
        "together:\n  api_key_env: HOME\n  queues:\n"
        "    - &q {model: a, poll_interval: 5s}\n    - {<<: *q, model: b}\n"
    )
    cfg = load_config(path).config
    assert cfg.together is not None
    assert [(q.model, q.poll_interval) for q in cfg.together.queues] == [("a", 5.0), ("b", 5.0)]


def test_deep_nesting_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problems(path) == [f"{path}: (syntax): the document is nested too deeply"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"global:\n  poll_interval: 10s\x00\n", "2: (file): contains a NUL byte"),
        (b"global:\n\n  poll_interval: \xff10s\n", "3: (file): not valid UTF-8 (byte 27)"),
    ],
)
def test_bad_bytes_name_their_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    assert problems(path) == [f"{path}:{message}"]


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    t0 = time.perf_counter()
    assert problems(fifo) == [f"{fifo}: (file): not a regular file"]
    assert problems(zero) == [f"{zero}: (file): not a regular file"]
    assert problems(tmp_path) == [f"{tmp_path}: (file): not a regular file"]
    assert time.perf_counter() - t0 < 5


def test_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (files.MAX_CONFIG_BYTES + 1))
    assert problems(path) == [f"{path}: (file): larger than {files.MAX_CONFIG_BYTES:,} bytes"]
    path.write_bytes(b"#" * files.MAX_CONFIG_BYTES)
    assert files.read_text(path) == "#" * files.MAX_CONFIG_BYTES


def test_a_key_file_that_is_a_device_names_the_file_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("together:\n  api_key_file: /dev/zero\n  queues: [{model: m}]\n")
    assert problems(path) == [
        f"{path}:2: together.api_key_file: api_key_file '/dev/zero': not a regular file"
    ]


def test_watches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("global: {poll_interval: 10s}\ntogether:\n  api_key_env: HOME\n")
    assert load_config(path).config.watches_nothing()
    path.write_text("together:\n  api_key_env: HOME\n  fine_tunes: {discovery: {enabled: true}}\n")
    assert not load_config(path).config.watches_nothing()
    path.write_text("")
    assert load_config(path).config.watches_nothing()
