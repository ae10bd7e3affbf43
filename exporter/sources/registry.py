"""The one list of vendors: a line per vendor package, in the order of the config's sections.

Adding a vendor: docs/development.md#adding-a-vendor.
"""

from __future__ import annotations

from exporter.sources.baseten.plugin import VENDOR as BASETEN
from exporter.sources.contract import Registry
from exporter.sources.together.plugin import VENDOR as TOGETHER

REGISTRY = Registry((TOGETHER, BASETEN))
