"""The JSON Schema of the config file, derived from the config models.

Editors that speak the YAML language server complete and check keys with it (the
``# yaml-language-server: $schema=…`` comment at the top of ``config.example.yaml``).
It describes the shape of the file; rules that span fields (unique names, a timeout
shorter than its interval, which key each account needs) are checked by the loader.
"""

from __future__ import annotations

import json
from typing import Any

from exporter.config.model import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "inference-exporter config",
        "description": "The YAML config file of inference-exporter (--config.file).",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """The schema as committed in ``config.schema.json``."""
    return json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"
