"""Loading and validating the YAML config.

Every problem is reported with the file, the line and the dotted key, and all of
them at once, so one run of ``check-config`` shows everything that needs fixing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exporter.config import baseten as _baseten
from exporter.config import files, yamlpos
from exporter.config.accounts import account_checks, read_keys
from exporter.config.common import format_duration
from exporter.config.filter_reach import reach_warnings
from exporter.config.filters import filter_warnings
from exporter.config.model import Config
from exporter.config.modelerrors import document_path, plain_message
from exporter.config.together_probe import probe_checks

__all__ = ["Config", "ConfigError", "LoadedConfig", "Problem", "duplicate_keys", "load_config"]

PathT = yamlpos.Path


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str
    column: int | None = None  # known for syntax errors only
    secret: bool = False  # an API key the config references could not be read

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column if self.line else None) if p)
        return f"{where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem of a file, in the order of its lines (whole-file ones first), so the
    list reads top to bottom alongside the file."""

    def __init__(self, problems: list[Problem]) -> None:
        problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config plus the API keys it references, read once at load time, by
    (vendor, account name); and what in it is valid but likely a mistake."""

    path: Path
    config: Config
    secrets: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    warnings: list[Problem] = field(default_factory=list)


# Checks that need more than one field at a time: duplicates across a list, and so on.
# Each returns (path, message) pairs; sections register theirs here.
SemanticCheck = Callable[[Config], Iterable[tuple[PathT, str]]]
SEMANTIC_CHECKS: list[SemanticCheck] = []


def _together_duplicates(cfg: Config) -> Iterable[tuple[PathT, str]]:
    if cfg.together is None:
        return []
    out: list[tuple[PathT, str]] = []
    for root, account in cfg.together.account_list():
        items = (((*root, "queues", i, "model"), q.model) for i, q in enumerate(account.queues))
        out += yamlpos.duplicates(items, "queue model")
    return out


SEMANTIC_CHECKS.append(account_checks)
SEMANTIC_CHECKS.append(_together_duplicates)
SEMANTIC_CHECKS.append(probe_checks)


def _as_written(raw: Any, path: PathT | None, seconds: float) -> str:
    """The duration at ``path`` as the file wrote it (``90s`` stays ``90s``), or
    ``seconds`` in the file's units when nothing is written there."""
    for part in path or ():
        in_map = isinstance(raw, dict) and part in raw
        if in_map or (isinstance(raw, list) and isinstance(part, int) and part < len(raw)):
            raw = raw[part]
        else:
            return format_duration(seconds)
    if path and isinstance(raw, int | float | str) and not isinstance(raw, bool):
        text = str(raw).strip()
        return f"{text}s" if text.replace(".", "", 1).isdigit() else text
    return format_duration(seconds)


def _baseten_checks(cfg: Config, raw: dict[str, Any]) -> Iterable[tuple[PathT, str]]:
    """Baseten's window rules, which quote durations as the file wrote them."""
    written = "poll_interval" in cfg.global_.model_fields_set
    interval = (cfg.global_.poll_interval, ("global", "poll_interval") if written else None)
    return _baseten.semantic_checks(cfg.baseten, interval, lambda p, s: _as_written(raw, p, s))


def _finetune_duplicates(cfg: Config) -> Iterable[tuple[PathT, str]]:
    if cfg.together is None:
        return []
    out: list[tuple[PathT, str]] = []
    for root, account in cfg.together.account_list():
        ft = account.fine_tunes
        jobs = (((*root, "fine_tunes", "jobs", i, "id"), j.id) for i, j in enumerate(ft.jobs))
        statuses = (
            ((*root, "fine_tunes", "discovery", "statuses", i), s)
            for i, s in enumerate(ft.discovery.statuses)
        )
        out += [
            *yamlpos.duplicates(jobs, "fine-tune job id"),
            *yamlpos.duplicates(statuses, "discovery status"),
        ]
    return out


SEMANTIC_CHECKS.append(_finetune_duplicates)


def duplicate_keys(fname: str, loaded: yamlpos.Loaded) -> list[Problem]:
    """A problem for each key written twice in one mapping, for every YAML file we read."""
    return [Problem(fname, line, yamlpos.format_path(p), "duplicate key") for p, line in loaded.duplicates]


def load_config(path: str | Path, *, read_secrets: bool = True) -> LoadedConfig:
    """Read, parse and validate ``path``; raise ConfigError listing every problem."""
    path = Path(path)
    fname = str(path)
    try:
        text = files.read_text(path)
    except files.FileProblem as exc:
        raise ConfigError([Problem(fname, exc.line, "(file)", exc.message)]) from None
    try:
        loaded = yamlpos.load(text)
    except yamlpos.YamlSyntaxError as exc:
        raise ConfigError([Problem(fname, exc.line, "(syntax)", exc.message, exc.column)]) from None

    problems = duplicate_keys(fname, loaded)
    data = loaded.data if loaded.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([*problems, Problem(fname, 1, "(top level)", "the config must be a mapping")])
    secrets: dict[tuple[str, str], str] = {}
    secret_problems: list[Problem] = []
    if read_secrets:
        secrets, unreadable = read_keys(data, path.parent)
        secret_problems = [
            Problem(fname, loaded.line_for(p), yamlpos.format_path(p), msg, secret=True)
            for p, msg in unreadable
        ]
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = document_path(err["loc"])
            problems.append(
                Problem(fname, loaded.line_for(loc), yamlpos.format_path(loc), plain_message(err, Config))
            )
        raise ConfigError(problems + secret_problems) from None

    checks: list[SemanticCheck] = [*SEMANTIC_CHECKS, lambda c: _baseten_checks(c, data)]
    for check in checks:
        for p, msg in check(cfg):
            problems.append(Problem(fname, loaded.line_for(p), yamlpos.format_path(p), msg))
    problems += secret_problems
    if problems:
        raise ConfigError(problems)
    warnings = sorted(
        (
            Problem(fname, loaded.line_for(p), yamlpos.format_path(p), msg)
            for p, msg in [*filter_warnings(cfg), *reach_warnings(cfg)]
        ),
        key=lambda p: p.line or 0,
    )
    return LoadedConfig(path=path, config=cfg, secrets=secrets, warnings=warnings)
