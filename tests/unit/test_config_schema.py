"""The config's JSON Schema: derived from the models, committed, and what the shipped configs follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.config.schema import schema_text
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "config.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "config.schema.json is out of date: run `inference-exporter config-schema > config.schema.json`"
    )


def test_cli_prints_the_schema() -> None:
    res = run_cli("config-schema")
    assert res.returncode == 0 and res.stdout == schema_text()


@pytest.mark.parametrize("name", ["config.example.yaml", "exporter/demo/demo.yaml"])
def test_shipped_configs_follow_the_schema(name: str) -> None:
    doc = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator().iter_errors(doc)]
    assert errors == []


def test_example_names_the_schema_on_its_first_line() -> None:
    first = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./config.schema.json"


@pytest.mark.parametrize(
    "doc",
    [
        {"together": {"api_key_env": "K", "queus": []}},  # a typo
        {"global": {"poll_interval": "30 seconds"}},
        {"together": {"accounts": [{"name": "a/b", "api_key_env": "K"}]}},
        {"baseten": {"api_key_env": "K", "metric_filter": {"allow": "x"}}},
        {"together": {"api_key_env": "K", "labels": {"team": 1}}},
        {"together": {"api_key_env": "K", "labels": {"team-name": "x"}}},  # not a label name
        {"together": {"api_key_env": "K", "labels": {"account": "x"}}},  # set by the exporter
        {"baseten": {"api_key_env": "K", "discovery": [{"labels": {"__meta": "x"}}]}},
        {"baseten": {"api_key_env": "K", "labels": {"exported_job": "x"}}},
    ],
)
def test_schema_catches_what_editors_should_flag(doc: dict[str, Any]) -> None:
    assert not validator().is_valid(doc)


def test_schema_accepts_both_forms_and_durations() -> None:
    v = validator()
    assert v.is_valid({"global": {"poll_interval": "1m30s", "timeout": 5}, "together": {"api_key_env": "K"}})
    assert v.is_valid({"global": {"poll_interval": "30", "timeout": "2.5"}})
    assert v.is_valid(
        {"together": {"accounts": [{"name": "prod", "api_key_env": "K", "labels": {"t": "x"}}]}}
    )


def test_a_typo_in_a_section_is_reported_as_a_typo_not_as_null() -> None:
    error = jsonschema.exceptions.best_match(
        validator().iter_errors({"together": {"api_key_env": "K", "queus": []}})
    )
    assert error is not None
    assert "null" not in error.message
    assert "'queus' was unexpected" in error.message


def test_no_section_is_offered_as_null() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for section in ("together", "baseten"):
        assert "anyOf" not in schema["properties"][section]


def test_the_example_says_how_to_get_the_schema_beside_a_copy() -> None:
    head = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()[:4]
    assert "#   inference-exporter config-schema > config.schema.json" in head
