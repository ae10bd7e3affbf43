"""The whole config file, validated: the global section and one section per vendor.

The vendors' sections are their packages' models (``exporter.sources.registry``); the
root model names each once, as a field, because pydantic and mypy need fields that
exist when the class is written. tests/unit/test_vendor_contract.py holds those fields
to the registry; ``config_model`` makes the same model for another registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Self

from pydantic import Field, create_model

from exporter.configkit.common import AccountCommon, GlobalConfig, Strict, validation_context
from exporter.configkit.problems import Path
from exporter.configkit.sections import Section
from exporter.sources.baseten.config import BasetenConfig
from exporter.sources.contract import Registry, Vendor
from exporter.sources.registry import REGISTRY
from exporter.sources.together.config import TogetherConfig


class ConfigBase(Strict):
    """What every config model has: the ``global:`` section, and the registry whose
    vendors' sections are its other fields (one per vendor, named after it)."""

    registry: ClassVar[Registry]
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")

    @classmethod
    def validate_document(cls, data: Any) -> Self:
        """The model of a parsed file, its target labels checked against every label the
        exporter and the registry's vendors set."""
        return cls.model_validate(data, context=validation_context(cls.registry.reserved_labels))

    def sections(self) -> Iterator[tuple[Vendor[Any], Section[AccountCommon]]]:
        """Each vendor with the section the file gives it, in the registry's order."""
        for vendor in self.registry:
            section: Section[AccountCommon] | None = getattr(self, vendor.name)
            if section is not None:
                yield vendor, section

    def accounts(self) -> Iterator[tuple[Vendor[Any], Path, AccountCommon]]:
        """(vendor, path, account) for every account of every vendor section."""
        for vendor, section in self.sections():
            for path, account in vendor.accounts(section):
                yield vendor, path, account

    def native_namespaces(self) -> tuple[str, ...]:
        """The name prefixes the families of the config's own sources are in (each
        vendor's ``namespaces`` of each account), sorted: what no relay may emit into."""
        return tuple(
            sorted({ns for vendor, _, account in self.accounts() for ns in vendor.namespaces(account)})
        )

    def watches_nothing(self) -> bool:
        """True when no section names a target or turns on a discovery: what an empty
        or half-written file looks like, which a reload must not take for an intent to
        stop watching everything."""
        return not any(vendor.watches(account) for vendor, _, account in self.accounts())


# The exporter's config (no docstring: it would be the schema's description).
class Config(ConfigBase):
    registry = REGISTRY
    together: TogetherConfig | None = None
    baseten: BasetenConfig | None = None


def config_model(registry: Registry) -> type[ConfigBase]:
    """The config model of ``registry``'s vendors: what ``Config`` is to the exporter's own
    registry, for another one (a test's vendor)."""
    sections: dict[str, Any] = {v.name: (v.section | None, None) for v in registry}
    model: type[ConfigBase] = create_model("Config", __base__=ConfigBase, **sections)
    model.registry = registry
    return model
