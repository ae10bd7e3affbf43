"""Loading and validating the YAML config.

Every problem is reported with the file, the line and the dotted key, and all of
them at once, so one run of ``check-config`` shows everything that needs fixing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from pydantic import ValidationError

from exporter.config import files, yamlpos
from exporter.config.accounts import account_checks, read_keys
from exporter.config.filter_reach import reach_warnings
from exporter.config.filters import filter_warnings
from exporter.config.model import Config, ConfigBase
from exporter.config.modelerrors import document_path, plain_message
from exporter.configkit.common import format_duration
from exporter.configkit.sections import CheckContext

__all__ = ["Config", "ConfigBase", "ConfigError", "LoadedConfig", "Problem", "duplicate_keys", "load_config"]

PathT = yamlpos.Path
C = TypeVar("C", bound=ConfigBase, covariant=True)
M = TypeVar("M", bound=ConfigBase)


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
class LoadedConfig(Generic[C]):
    """A valid config plus the API keys it references, read once at load time, by
    (vendor, account name); and what in it is valid but likely a mistake."""

    path: Path
    config: C
    secrets: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    warnings: list[Problem] = field(default_factory=list)


# Checks that need more than one field at a time, for every vendor alike; each vendor
# has its own (``Vendor.checks``). Each returns (path, message) pairs.
SemanticCheck = Callable[[ConfigBase], Iterable[tuple[PathT, str]]]
SEMANTIC_CHECKS: list[SemanticCheck] = [account_checks]


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


def _vendor_checks(cfg: ConfigBase, raw: dict[str, Any]) -> Iterable[tuple[PathT, str]]:
    """Each vendor's own rules, over its accounts; durations quoted as the file wrote them."""
    written = "poll_interval" in cfg.global_.model_fields_set
    ctx = CheckContext(
        cfg.global_,
        (cfg.global_.poll_interval, ("global", "poll_interval") if written else None),
        lambda p, s: _as_written(raw, p, s),
    )
    for vendor, section in cfg.sections():
        accounts = vendor.accounts(section)
        for check in vendor.checks:
            yield from check(accounts, ctx)


def duplicate_keys(fname: str, loaded: yamlpos.Loaded) -> list[Problem]:
    """A problem for each key written twice in one mapping, for every YAML file we read."""
    return [Problem(fname, line, yamlpos.format_path(p), "duplicate key") for p, line in loaded.duplicates]


@overload
def load_config(path: str | Path, *, read_secrets: bool = True) -> LoadedConfig[Config]: ...


@overload
def load_config(path: str | Path, *, read_secrets: bool = True, model: type[M]) -> LoadedConfig[M]: ...


def load_config(
    path: str | Path, *, read_secrets: bool = True, model: type[ConfigBase] = Config
) -> LoadedConfig[ConfigBase]:
    """Read, parse and validate ``path``; raise ConfigError listing every problem.

    ``model``: the config model of the vendors to know (``model.config_model``); the
    exporter's own by default."""
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
        secrets, unreadable = read_keys(data, path.parent, model.registry)
        secret_problems = [
            Problem(fname, loaded.line_for(p), yamlpos.format_path(p), msg, secret=True)
            for p, msg in unreadable
        ]
    try:
        cfg = model.validate_document(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = document_path(err["loc"])
            problems.append(
                Problem(fname, loaded.line_for(loc), yamlpos.format_path(loc), plain_message(err, model))
            )
        raise ConfigError(problems + secret_problems) from None

    checks: list[SemanticCheck] = [*SEMANTIC_CHECKS, lambda c: _vendor_checks(c, data)]
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
