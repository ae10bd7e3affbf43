"""What the loader asks of a vendor's config section, and what its semantic checks get."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from exporter.configkit.common import AccountCommon, GlobalConfig
from exporter.configkit.problems import Finding, Path

A = TypeVar("A", bound=AccountCommon)


class Section(Protocol[A]):
    """A vendor's ``<name>:`` model: one account written flat (the section is then that
    account) or several under ``accounts:`` (then its own fields stay unset)."""

    @property
    def accounts(self) -> Sequence[A]: ...

    @property
    def model_fields_set(self) -> set[str]: ...

    def account_list(self) -> list[tuple[Path, A]]:
        """Each account with the config path it is written at."""
        ...


@dataclass(frozen=True)
class CheckContext:
    """What a vendor's semantic checks may need besides its accounts."""

    global_: GlobalConfig
    # The global poll interval in seconds and the key it was written at (None: not
    # written, the built-in default).
    interval: tuple[float, Path | None]
    # A duration as the file wrote it at a key (or in the config's units if not written there).
    shown: Callable[[Path | None, float], str]


# A rule that spans fields or levels, over a vendor's accounts (with their paths):
# duplicates across a list, a timeout that must fit in an interval. Its problems point at keys.
Check = Callable[[list[tuple[Path, A]], CheckContext], Iterable[Finding]]


def listed_accounts(section: Section[A], root: str, flat: A) -> list[tuple[Path, A]]:
    """``section``'s accounts with their paths under ``root``: those under ``accounts:``,
    or ``flat`` (the section itself) when none is listed."""
    if section.accounts:
        return [((root, "accounts", i), a) for i, a in enumerate(section.accounts)]
    return [((root,), flat)]
