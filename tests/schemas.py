"""Validating simulator answers against the vendor schemas kept in tests/fixtures/schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).parent / "fixtures" / "schemas"


@cache
def _load(file: str) -> dict[str, Any]:
    doc = yaml.safe_load((SCHEMA_DIR / file).read_text())
    assert isinstance(doc, dict)
    return doc


def validate(file: str, schema: str, instance: Any) -> None:
    """Validate ``instance`` against component ``schema`` of ``file``, with $refs resolved inside it."""
    components = _load(file)
    root = {"$defs": components, "$ref": f"#/$defs/{schema}"}
    text = yaml.safe_dump(root).replace("#/components/schemas/", "#/$defs/")
    jsonschema.validate(instance, yaml.safe_load(text), cls=jsonschema.Draft202012Validator)
