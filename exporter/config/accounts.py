"""Rules about a vendor section's accounts, and reading each account's key.

A section is either one account written flat or ``accounts:`` with several; these
checks point at the exact key when the two forms are mixed, when a listed account
has no ``name``, or when two accounts of a vendor share one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from exporter.config.common import Credentials
from exporter.config.secrets import SecretError, read_secret
from exporter.config.yamlpos import duplicates
from exporter.core.scope import DEFAULT_ACCOUNT

if TYPE_CHECKING:
    from exporter.config.baseten import BasetenAccount
    from exporter.config.model import Config
    from exporter.config.together import TogetherAccount

PathT = tuple[str | int, ...]
VENDORS = ("together", "baseten")


def accounts_of(cfg: Config) -> Iterator[tuple[str, PathT, TogetherAccount | BasetenAccount]]:
    """(vendor, path, account) for every account of every vendor section."""
    if cfg.together is not None:
        for path, t in cfg.together.account_list():
            yield "together", path, t
    if cfg.baseten is not None:
        for path, b in cfg.baseten.account_list():
            yield "baseten", path, b


def account_checks(cfg: Config) -> Iterable[tuple[PathT, str]]:
    out: list[tuple[PathT, str]] = []
    for vendor in VENDORS:
        section = getattr(cfg, vendor)
        if section is None or not section.accounts:
            continue
        for key in sorted(section.model_fields_set - {"accounts"}):
            out.append(
                (
                    (vendor, key),
                    f"with accounts: listed, {key} belongs in each account (the flat form is one account)",
                )
            )
        for i, account in enumerate(section.accounts):
            if "name" not in account.model_fields_set:
                out.append(
                    (
                        (vendor, "accounts", i, "name"),
                        "required key is missing: each listed account has a name",
                    )
                )
        names = (((vendor, "accounts", i, "name"), a.name) for i, a in enumerate(section.accounts))
        out += duplicates(names, "account name")
    return out


def _raw_accounts(section: dict[Any, Any], vendor: str) -> Iterator[tuple[PathT, dict[Any, Any]]]:
    listed = section.get("accounts")
    if isinstance(listed, list):
        for i, item in enumerate(listed):
            if isinstance(item, dict):
                yield (vendor, "accounts", i), item
    else:
        yield (vendor,), section


def read_keys(data: dict[str, Any], base: Path) -> tuple[dict[tuple[str, str], str], list[tuple[PathT, str]]]:
    """Every account's key, by (vendor, account name), read from the raw document.

    Works on the raw sections, not the validated model, so a missing key is reported
    in the same run as structural problems elsewhere in the file.
    """
    keys: dict[tuple[str, str], str] = {}
    problems: list[tuple[PathT, str]] = []
    for vendor in VENDORS:
        section = data.get(vendor)
        if not isinstance(section, dict):
            continue
        for path, raw in _raw_accounts(section, vendor):
            if not ({"api_key_env", "api_key_file"} & raw.keys()):
                continue
            try:
                cred = Credentials(api_key_env=raw.get("api_key_env"), api_key_file=raw.get("api_key_file"))
            except ValidationError:
                continue  # reported by the structural validation
            key_name = "api_key_env" if cred.api_key_env else "api_key_file"
            try:
                keys[(vendor, str(raw.get("name", DEFAULT_ACCOUNT)))] = read_secret(cred, base)
            except SecretError as exc:
                problems.append(((*path, key_name), str(exc)))
    return keys, problems
