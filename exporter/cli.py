"""Command line: Prometheus-style dotted flags and a few subcommands.

A flag means the same before or after the subcommand (``--log.level debug demo`` and
``demo --log.level debug``); a flag the chosen command does not use is refused, never
ignored. Every flag is therefore declared once, with the commands it applies to and
its default for each; the parsers leave unset flags out, and the defaults of the
command that runs are filled in afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.config import ConfigError, load_config
from exporter.configkit.common import parse_duration
from exporter.core import logs
from exporter.core.sharding import resolve_shard
from exporter.web.limits import ConnectionLimits
from exporter.web.listen import parse_listen_address

DEFAULT_PORT = 10230
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
DEMO_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
SIMULATOR_LISTEN = "127.0.0.1:0"

DAEMON = "daemon"  # the command run when none is named
COMMANDS = (DAEMON, "check-config", "config-schema", "demo", "simulate")
SERVING = (DAEMON, "demo")
_BEFORE = "_before_command"  # where the top-level copy of a repeatable flag collects its values


def _positive_seconds(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _org_key(value: str) -> tuple[str, str]:
    name, sep, key = value.partition("=")
    if not sep or not name or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=KEY, got {value.split('=')[0]!r}=…")
    return name, key


def _listen_address(value: str) -> str:
    try:
        parse_listen_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


@dataclass(frozen=True)
class Flag:
    """One flag: the commands that use it, its default for each, and argparse's other settings."""

    name: str
    dest: str
    commands: tuple[str, ...]
    default: Any
    help: str
    per_command: Mapping[str, Any] = field(default_factory=dict)  # defaults that differ by command
    options: Mapping[str, Any] = field(default_factory=dict)
    unit: str = ""  # after a number in --help

    def default_for(self, command: str) -> Any:
        return self.per_command.get(command, self.default)

    def applies_to(self) -> str:
        names = ["the daemon" if c == DAEMON else c for c in self.commands]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_LIMITS = ConnectionLimits()

FLAGS = (
    Flag("--config.file", "config_file", (DAEMON,), None, "YAML config file (required to run the daemon)",
         options={"metavar": "PATH"}),
    Flag("--web.listen-address", "listen", (DAEMON, "demo", "simulate"), DEFAULT_LISTEN,
         "address to serve on", per_command={"demo": DEMO_LISTEN, "simulate": SIMULATOR_LISTEN},
         options={"metavar": "HOST:PORT", "type": _listen_address}),
    Flag("--web.telemetry-path", "telemetry_path", SERVING, "/metrics", "path under which to expose metrics",
         options={"metavar": "PATH"}),
    Flag("--web.config.file", "web_config_file", SERVING, None,
         "TLS, basic-auth, response headers and rate limit in exporter-toolkit's format "
         "(default: plain HTTP, no auth)",
         options={"metavar": "PATH"}),
    Flag("--web.max-connections", "max_connections", SERVING, _LIMITS.max_connections,
         "most simultaneous HTTP connections (one client address: half of them); past it a new one "
         "evicts an idle or unfinished connection of the busiest address, or is closed at once",
         options={"metavar": "N", "type": _positive_int}),
    Flag("--web.read-timeout", "read_timeout", SERVING, _LIMITS.header_timeout,
         "time a client has to send a whole request after connecting or starting it",
         options={"metavar": "DURATION", "type": _positive_seconds}, unit="s"),
    Flag("--web.enable-lifecycle", "enable_lifecycle", (DAEMON,), False,
         "answer POST /-/reload (SIGHUP always reloads; demo: always on)",
         options={"action": "store_true"}),
    Flag("--log.level", "log_level", COMMANDS, "info", "log level",
         options={"choices": ["debug", "info", "warn", "error"]}),
    Flag("--log.format", "log_format", COMMANDS, "logfmt", "log format", options={"choices": ["logfmt", "json"]}),
    Flag("--shard", "shard", (DAEMON,), None,
         "this replica's shard, 0-based: it polls only the targets whose id hashes to N (default 0)",
         options={"metavar": "N", "type": int}),
    Flag("--total-shards", "total_shards", (DAEMON,), 1,
         "number of replicas the targets are split across; 1 means no sharding",
         options={"metavar": "M", "type": int}),
    Flag("--shard.from-pod-name", "shard_from_pod_name", (DAEMON,), False,
         "take the shard from the ordinal of the StatefulSet pod name ($POD_NAME, else the host name)",
         options={"action": "store_true"}),
    Flag("--no-secrets", "no_secrets", ("check-config",), False,
         "check the file only: do not require the API keys it references to be set or readable",
         options={"action": "store_true"}),
    Flag("--api-key", "api_keys", ("simulate",), None,
         "an API key of the default organisation (repeatable; default: 'sim-key')",
         options={"action": "append", "metavar": "KEY"}),
    Flag("--org", "orgs", ("simulate",), None,
         "a further organisation and the API key that sees it: its own queues, jobs, "
         "fine-tunes, models and deployments (repeatable)",
         options={"action": "append", "metavar": "NAME=KEY", "type": _org_key}),
    Flag("--clock-offset", "clock_offset", ("simulate",), 0.0,
         "run the simulated vendors' clock this far ahead of this machine's, in seconds (negative: behind)",
         options={"metavar": "SECONDS", "type": float}),
    Flag("--scenario.speed", "scenario_speed", ("simulate",), 1.0,
         "play the default scenario this many times as fast as docs/demo.md tells it",
         options={"metavar": "FACTOR", "type": _positive_float}),
    Flag("--scenario.delay", "scenario_delay", ("simulate",), 0.0,
         "begin the default scenario this long after the simulator starts (until then all is calm)",
         options={"metavar": "DURATION", "type": _positive_seconds}, unit="s"),
    Flag("--prometheus", "prometheus", ("demo",), False,
         "also run the prometheus binary found on PATH, on a free loopback port, with the demo's "
         "alert rules, scraping the demo; stopped with the demo",
         options={"action": "store_true"}),
)  # fmt: skip


def _add_flags(parser: argparse.ArgumentParser, command: str, *, top_level: bool = False) -> None:
    """Every flag, on every parser, so that a flag in either place is read the same way and
    one that does not apply gets the same clear refusal; --help lists the command's own."""
    for flag in FLAGS:
        shown = command in flag.commands
        default = flag.default_for(command)
        text = flag.help
        if shown and default not in (None, False) and flag.options.get("action") != "append":
            text += (
                f" (default {default:g}{flag.unit})"
                if isinstance(default, float)
                else f" (default {default})"
            )
        dest = flag.dest + _BEFORE if top_level and flag.options.get("action") == "append" else flag.dest
        parser.add_argument(
            flag.name,
            dest=dest,
            default=argparse.SUPPRESS,
            help=text if shown else argparse.SUPPRESS,
            **flag.options,
        )


DOCS = f"https://github.com/inference-exporter/inference-exporter/blob/v{__version__}/docs"


def _fill(text: str) -> str:
    return "\n\n".join(
        textwrap.fill(p, 79, break_on_hyphens=False, break_long_words=False) for p in text.split("\n\n")
    )


@dataclass(frozen=True)
class CommandPage:
    """What a subcommand's ``--help`` says: one line for the list of commands, what it
    does, an example, and where its documentation is. ``more`` makes a last paragraph
    of the description when the help is shown, not before: ``simulate``'s lists the
    simulator's catalog, and only the commands that run the simulator load it."""

    summary: str
    description: str
    example: str
    docs: str
    more: Callable[[], str] | None = None

    def parser_options(self) -> dict[str, Any]:
        return {
            "help": self.summary,
            "description": _fill(self.description),
            "epilog": f"example:\n  {self.example}\n\ndocumentation: {DOCS}/{self.docs}",
            "formatter_class": argparse.RawDescriptionHelpFormatter,
            "more": self.more,
        }


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser, which adds its page's ``more`` to the description when its help is shown."""

    def __init__(self, *args: Any, more: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._more = more

    def format_help(self) -> str:
        if self._more is not None:
            self.description = f"{self.description}\n\n{_fill(self._more())}"
            self._more = None
        return super().format_help()


def _simulated_models() -> str:
    """The models and jobs the simulator answers for, from its own catalog."""
    from exporter.simulator import baseten_data, scenario

    baseten = ", ".join(f"{m.id} ({m.name})" for m in baseten_data.default_catalog().values())
    jobs = ", ".join(str(spec["id"]) for spec in scenario.FINE_TUNES)
    return (
        f"Models it answers for. Together queues: any model name answers; {scenario.BACKLOG_MODEL} is the one whose backlog "
        f"builds and drains. Together fine-tunes: {jobs}. Baseten models: {baseten}."
    )


COMMAND_PAGES = {
    "check-config": CommandPage(
        "validate a config file and exit (1 if invalid)",
        "Validate a config file: every problem with its file, line and key; exit 1 if any.",
        "inference-exporter check-config --no-secrets config.yaml",
        "configuration.md#configuration-errors",
    ),
    "config-schema": CommandPage(
        "print the JSON Schema of the config file (for editors and CI checks)",
        "Print the JSON Schema of the config file, for editors and CI checks.",
        "inference-exporter config-schema > config.schema.json",
        "configuration.md#command-line",
    ),
    "demo": CommandPage(
        "run the daemon against the bundled simulator on this machine, no keys needed",
        "Run the daemon against the bundled simulator on this machine: no API keys needed.",
        "inference-exporter demo --prometheus",
        "demo.md",
    ),
    "simulate": CommandPage(
        "run the bundled simulator of the vendor APIs alone",
        "Run the bundled simulator of the Together and Baseten APIs alone.",
        "inference-exporter simulate --web.listen-address 127.0.0.1:18080 --api-key sim-key",
        "demo.md",
        more=_simulated_models,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-exporter",
        description="Prometheus exporter for Together AI queues and fine-tunes and Baseten deployments, "
        "with an opt-in synthetic queue probe and a relay of the vendors' own Prometheus endpoints. "
        "Flags may be given before or after the command.",
    )
    parser.add_argument("--version", action="version", version=f"inference-exporter {__version__}")
    _add_flags(parser, DAEMON, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    for name, page in COMMAND_PAGES.items():
        _add_flags(sub.add_parser(name, **page.parser_options()), name)
    sub.choices["check-config"].add_argument("path", help="config file to check")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; refuse flags the command does not use, then fill in its defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DAEMON
    given = vars(args)
    for flag in FLAGS:
        before = given.pop(flag.dest + _BEFORE, None)
        if before is not None:
            given[flag.dest] = before + given.get(flag.dest, [])
        if flag.dest in given and command not in flag.commands:
            shown = "the daemon" if command == DAEMON else command
            parser.error(f"{flag.name} applies to {flag.applies_to()}, not to {shown}")
        given.setdefault(flag.dest, flag.default_for(command))
    args.command = command
    return args


def _check_config(path: str, read_secrets: bool) -> int:
    try:
        loaded = load_config(path, read_secrets=read_secrets)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        if any(p.secret for p in exc.problems):
            print(f"{path}: --no-secrets checks the file without reading the API keys", file=sys.stderr)
        return 1
    for w in loaded.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if loaded.config.watches_nothing():
        print(
            f"{path}: warning: no targets and no discovery: the exporter would export only its own metrics",
            file=sys.stderr,
        )
    print(f"{path}: config is valid")
    return 0


def _web_config(args: argparse.Namespace) -> Path | None:
    return Path(args.web_config_file) if args.web_config_file else None


def _limits(args: argparse.Namespace) -> ConnectionLimits:
    return replace(ConnectionLimits(), max_connections=args.max_connections, header_timeout=args.read_timeout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = "warning" if args.log_level == "warn" else args.log_level
    logs.setup(level, args.log_format)
    if args.command == "check-config":
        return _check_config(args.path, not args.no_secrets)
    if args.command == "config-schema":
        from exporter.config.schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    # Imported only here: checking a config must not load the HTTP stack (aiohttp, httpx).
    from exporter import runner

    if args.command == "simulate":
        orgs = {key: name for name, key in args.orgs or []}
        return asyncio.run(
            runner.run_simulator(
                args.listen,
                args.api_keys or ["sim-key"],
                args.clock_offset,
                orgs,
                args.scenario_speed,
                args.scenario_delay,
            )
        )
    if args.command == "demo":
        if args.prometheus and args.web_config_file:
            build_parser().error("--prometheus scrapes the demo over plain HTTP: leave out --web.config.file")
        return asyncio.run(
            runner.run_demo(
                args.listen,
                args.telemetry_path,
                _web_config(args),
                limits=_limits(args),
                prometheus=args.prometheus,
            )
        )
    if not args.config_file:
        build_parser().error("--config.file is required to run the daemon")
    try:
        shard = resolve_shard(
            args.shard, args.total_shards, args.shard_from_pod_name, os.environ, socket.gethostname()
        )
    except ValueError as exc:
        build_parser().error(str(exc))
    return asyncio.run(
        runner.run_daemon(
            Path(args.config_file),
            args.listen,
            args.telemetry_path,
            _web_config(args),
            shard,
            limits=_limits(args),
            enable_lifecycle=args.enable_lifecycle,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
