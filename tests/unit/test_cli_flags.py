"""Command-line flags mean the same before and after the command, or are refused."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import COMMAND_PAGES, COMMANDS, DAEMON, DOCS, FLAGS, parse_args

# A value for each flag that differs from every default, as typed and as parsed.
GIVEN: dict[str, tuple[list[str], object]] = {
    "--config.file": (["c.yaml"], "c.yaml"),
    "--web.listen-address": (["127.0.0.1:10232"], "127.0.0.1:10232"),
    "--web.telemetry-path": (["/m"], "/m"),
    "--web.config.file": (["web.yml"], "web.yml"),
    "--web.max-connections": (["7"], 7),
    "--web.read-timeout": (["1m"], 60.0),
    "--log.level": (["debug"], "debug"),
    "--log.format": (["json"], "json"),
    "--shard": (["1"], 1),
    "--total-shards": (["3"], 3),
    "--shard.from-pod-name": ([], True),
    "--web.enable-lifecycle": ([], True),
    "--no-secrets": ([], True),
    "--api-key": (["k1"], ["k1"]),
    "--org": (["staging=k2"], [("staging", "k2")]),
    "--clock-offset": (["-30"], -30.0),
    "--scenario.speed": (["10"], 10.0),
    "--scenario.delay": (["15s"], 15.0),
    "--prometheus": ([], True),
}
# What a command needs besides the flag under test.
REQUIRED = {DAEMON: [], "check-config": ["config.yaml"], "config-schema": [], "demo": [], "simulate": []}


def _argv(command: str, flag: list[str], before: bool) -> list[str]:
    if command == DAEMON:
        return flag
    tail = REQUIRED[command]
    return [*flag, command, *tail] if before else [command, *tail, *flag]


def _cases(applies: bool) -> list[tuple[str, str]]:
    return [(f.name, c) for f in FLAGS for c in COMMANDS if (c in f.commands) == applies]


def test_every_flag_has_a_test_value() -> None:
    assert set(GIVEN) == {f.name for f in FLAGS}


@pytest.mark.parametrize(("name", "command"), _cases(applies=True))
def test_a_flag_means_the_same_before_and_after_the_command(name: str, command: str) -> None:
    flag = next(f for f in FLAGS if f.name == name)
    typed, parsed = GIVEN[name]
    before = parse_args(_argv(command, [name, *typed], before=True))
    after = parse_args(_argv(command, [name, *typed], before=False))
    assert getattr(before, flag.dest) == parsed
    assert vars(before) == vars(after)
    # The other flags keep the command's defaults.
    plain = parse_args(_argv(command, [], before=True))
    assert {k: v for k, v in vars(plain).items() if k != flag.dest} == {
        k: v for k, v in vars(before).items() if k != flag.dest
    }


@pytest.mark.parametrize(
    ("name", "command", "before"),
    # The daemon has no command word to put a flag after.
    [(n, c, b) for n, c in _cases(applies=False) for b in (True, False) if b or c != DAEMON],
)
def test_a_flag_the_command_does_not_use_is_refused(
    name: str, command: str, before: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    typed, _ = GIVEN[name]
    with pytest.raises(SystemExit) as exit_:
        parse_args(_argv(command, [name, *typed], before))
    assert exit_.value.code == 2
    shown = "the daemon" if command == DAEMON else command
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"inference-exporter: error: {name} applies to ") and last.endswith(
        f", not to {shown}"
    )


def test_the_refusal_names_where_the_flag_applies(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--web.telemetry-path", "/m", "simulate"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "inference-exporter: error: --web.telemetry-path applies to the daemon and demo, not to simulate"
    )
    with pytest.raises(SystemExit):
        parse_args(["demo", "--shard", "1"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "inference-exporter: error: --shard applies to the daemon, not to demo"
    )


def test_each_command_has_its_own_listen_default() -> None:
    assert parse_args(["--config.file", "c.yaml"]).listen == ":10230"
    assert parse_args(["demo"]).listen == "127.0.0.1:10230"  # a local trial stays on this machine
    assert parse_args(["simulate"]).listen == "127.0.0.1:0"


def test_a_repeatable_flag_collects_from_both_places() -> None:
    args = parse_args(["--api-key", "a", "simulate", "--api-key", "b", "--api-key", "c"])
    assert args.api_keys == ["a", "b", "c"]


def test_a_later_value_wins_wherever_it_is() -> None:
    assert parse_args(["--log.level", "debug", "demo", "--log.level", "error"]).log_level == "error"


def test_a_bad_listen_address_is_refused_while_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--web.listen-address", "localhost", "demo"])
    assert "invalid listen address 'localhost': expected HOST:PORT" in capsys.readouterr().err


def test_defaults_are_filled_after_parsing() -> None:
    args = parse_args(["check-config", "x.yaml"])
    assert isinstance(args, argparse.Namespace)
    assert (args.command, args.path, args.no_secrets, args.log_level) == (
        "check-config",
        "x.yaml",
        False,
        "info",
    )


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_log_level_warn_logs_the_flags_own_word(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--log.level warn`` takes ``warn``; the lines it lets through say ``warn`` too, so
    that a grep for the flag's value finds them."""
    import json
    import logging

    from exporter.core import logs

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.setup("warning", fmt)
        logging.getLogger("exporter.test").warning("disk is slow")
        logging.getLogger("exporter.test").error("disk is gone")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    if fmt == "json":
        assert [json.loads(line)["level"] for line in lines] == ["warn", "error"]
    else:
        assert [line.split()[1] for line in lines] == ["level=warn", "level=error"]


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != DAEMON])
def test_every_command_help_has_a_description_an_example_and_the_docs(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args([command, "--help"])
    text = capsys.readouterr().out
    page = COMMAND_PAGES[command]
    assert " ".join(page.description.split()[:4]) in " ".join(text.split())
    assert f"example:\n  inference-exporter {command}" in text
    link = f"documentation: {DOCS}/{page.docs}"
    assert link in text and DOCS.endswith(f"/blob/v{__version__}/docs")
    assert (Path(__file__).parents[2] / "docs" / page.docs.split("#")[0]).is_file()


def test_simulate_help_names_the_models_it_answers_for(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for model in ("demo-org/video-generator", "ft-sim-llama-0001", "m1llama (llama-chat)", "m2whisper"):
        assert model in text
