"""Rules about a vendor section's accounts, and reading each account's key.

A section is either one account written flat or ``accounts:`` with several; these
checks point at the exact key when the two forms are mixed, when a listed account
has no ``name``, or when two accounts of a vendor share one. Every vendor of the
config's registry is checked alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from exporter.config.secrets import SecretError, read_secret
from exporter.configkit.common import Credentials
from exporter.configkit.problems import Finding, duplicates
from exporter.core.scope import DEFAULT_ACCOUNT
from exporter.sources.contract import Registry

if TYPE_CHECKING:
    from exporter.config.model import ConfigBase

PathT = tuple[str | int, ...]


def account_checks(cfg: ConfigBase) -> Iterable[Finding]:
    out: list[Finding] = []
    for vendor, section in cfg.sections():
        if not section.accounts:
            continue
        for key in sorted(section.model_fields_set - {"accounts"}):
            out.append(
                (
                    (vendor.name, key),
                    f"with accounts: listed, {key} belongs in each account (the flat form is one account)",
                )
            )
        for i, account in enumerate(section.accounts):
            if "name" not in account.model_fields_set:
                out.append(
                    (
                        (vendor.name, "accounts", i, "name"),
                        "required key is missing: each listed account has a name",
                    )
                )
        names = (((vendor.name, "accounts", i, "name"), a.name) for i, a in enumerate(section.accounts))
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


def read_keys(
    data: dict[str, Any], base: Path, registry: Registry
) -> tuple[dict[tuple[str, str], str], list[Finding]]:
    """Every account's key, by (vendor, account name), read from the raw document.

    Works on the raw sections, not the validated model, so a missing key is reported
    in the same run as structural problems elsewhere in the file.
    """
    keys: dict[tuple[str, str], str] = {}
    problems: list[Finding] = []
    for vendor in registry.names:
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
