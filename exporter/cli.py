"""Command line: Prometheus-style dotted flags and a few subcommands."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

from exporter import __version__, logs
from exporter.config import ConfigError, load_config
from exporter.config.common import parse_duration
from exporter.limits import ConnectionLimits
from exporter.sharding import resolve_shard

DEFAULT_PORT = 10230
DEFAULT_LISTEN = f":{DEFAULT_PORT}"


def _add_common(p: argparse.ArgumentParser, *, listen_default: str, web_config: bool = True) -> None:
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        default=listen_default,
        metavar="HOST:PORT",
        help=f"address to serve on (default {listen_default})",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose metrics (default /metrics)",
    )
    if web_config:
        p.add_argument(
            "--web.config.file",
            dest="web_config_file",
            default=None,
            metavar="PATH",
            help="TLS and basic-auth config in exporter-toolkit's format (default: plain HTTP, no auth)",
        )
    p.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warn", "error"],
        help="log level (default info)",
    )
    p.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="log format (default logfmt)",
    )


def _positive_seconds(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _org_key(value: str) -> tuple[str, str]:
    name, sep, key = value.partition("=")
    if not sep or not name or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=KEY, got {value.split('=')[0]!r}=…")
    return name, key


def _add_server_limits(p: argparse.ArgumentParser) -> None:
    defaults = ConnectionLimits()
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_positive_int,
        default=defaults.max_connections,
        metavar="N",
        help=f"most simultaneous HTTP connections; more are closed at once (default {defaults.max_connections})",
    )
    p.add_argument(
        "--web.read-timeout",
        dest="read_timeout",
        type=_positive_seconds,
        default=defaults.header_timeout,
        metavar="DURATION",
        help="time a client has to send a whole request after connecting or starting it "
        f"(default {defaults.header_timeout:g}s)",
    )


def _add_lifecycle(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="answer POST /-/reload (SIGHUP always reloads; default: off)",
    )


def _limits(args: argparse.Namespace) -> ConnectionLimits:
    return replace(ConnectionLimits(), max_connections=args.max_connections, header_timeout=args.read_timeout)


def _add_sharding(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shard",
        dest="shard",
        type=int,
        default=None,
        metavar="N",
        help="this replica's shard, 0-based: it polls only the targets whose id hashes to N (default 0)",
    )
    p.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        default=1,
        metavar="M",
        help="number of replicas the targets are split across (default 1: no sharding)",
    )
    p.add_argument(
        "--shard.from-pod-name",
        dest="shard_from_pod_name",
        action="store_true",
        help="take the shard from the ordinal of the StatefulSet pod name ($POD_NAME, else the host name)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-exporter",
        description="Prometheus exporter for Together AI queues and fine-tunes and Baseten deployments.",
    )
    parser.add_argument("--version", action="version", version=f"inference-exporter {__version__}")
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML config file (required to run the daemon)",
    )
    _add_common(parser, listen_default=DEFAULT_LISTEN)
    _add_server_limits(parser)
    _add_lifecycle(parser)
    _add_sharding(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate a config file and exit (1 if invalid)")
    check.add_argument("path", help="config file to check")
    check.add_argument(
        "--no-secrets",
        action="store_true",
        help="do not require the API keys the config references to be readable",
    )

    sub.add_parser(
        "config-schema", help="print the JSON Schema of the config file (for editors and CI checks)"
    )

    demo = sub.add_parser("demo", help="run the daemon against the bundled simulator, no keys needed")
    _add_common(demo, listen_default=DEFAULT_LISTEN)
    _add_server_limits(demo)

    sim = sub.add_parser("simulate", help="run the bundled simulator of the vendor APIs alone")
    _add_common(sim, listen_default="127.0.0.1:0", web_config=False)
    sim.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        default=None,
        metavar="KEY",
        help="an API key of the default organisation (repeatable; default: 'sim-key')",
    )
    sim.add_argument(
        "--org",
        dest="orgs",
        action="append",
        default=None,
        type=_org_key,
        metavar="NAME=KEY",
        help="a further organisation and the API key that sees it: its own queues, jobs, "
        "fine-tunes, models and deployments (repeatable)",
    )
    sim.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the simulated vendors' clock this far ahead of this machine's (negative: behind)",
    )
    return parser


def _check_config(path: str, read_secrets: bool) -> int:
    try:
        loaded = load_config(path, read_secrets=read_secrets)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for w in loaded.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{path}: config is valid")
    return 0


def _web_config(args: argparse.Namespace) -> Path | None:
    return Path(args.web_config_file) if args.web_config_file else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
            runner.run_simulator(args.listen, args.api_keys or ["sim-key"], args.clock_offset, orgs)
        )
    if args.command == "demo":
        return asyncio.run(
            runner.run_demo(args.listen, args.telemetry_path, _web_config(args), limits=_limits(args))
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
