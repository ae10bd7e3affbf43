"""Config errors in plain words: YAML syntax with line and column, likely misspellings,
and what a value should have been."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.config.model import Config
from exporter.config.modelerrors import closest_key, known_keys
from exporter.web.webconfig import WebConfigError
from exporter.web.webconfig.model import load_web_config
from tests.helpers import problems, write_yaml


def test_a_list_item_among_keys_is_explained_at_its_line_and_column(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "together:\n  api_key_env: K\n  queues:\n  - model: a\n - model: b\n",
    )
    assert problems(path) == [
        f"{path}:5:2: (syntax): a list item ('- ') where a key was expected: indent the item like the "
        "other items of its list, under the key it belongs to "
        "(YAML said: expected <block end>, but found '<block sequence start>')"
    ]


@pytest.mark.parametrize(
    ("text", "where", "sentence"),
    [
        # A tab used for indentation.
        (
            "global:\n\tpoll_interval: 30s\n",
            "2:1",
            "a tab character: YAML accepts only spaces for indentation",
        ),
        # A quote never closed: the place is the opening quote, not the end of the file.
        ('global:\n  poll_interval: "30s\n  timeout: 1s\n', "2:18", "this quoted value has no closing quote"),
        ("global:\n  poll_interval: '30s\n", "2:18", "this quoted value has no closing quote"),
        # Brackets never closed, or closed late.
        ("together:\n  queues: [\n", "2:11", "this '[' is never closed: the file ends before its ']'"),
        (
            "together:\n  queues: [a, b\n  timeout: 1s\n",
            "3:10",
            "the '[' at line 2, column 11 is not closed before this point, or a comma is missing",
        ),
        ("a: [1, 2]]\n", "1:10", "a ']' that closes nothing"),
        # A missing colon, a missing space after one, a line indented too deep.
        ("global:\n  poll_interval 30s\n  timeout: 1s\n", "3:10", "the line above may lack its ':'"),
        ("global:\n  poll_interval:30s\n  timeout: 1s\n", "3:10", "or the space after it"),
        ("global:\n  poll_interval: 30s\n    timeout: 10s\n", "3:12", "this line may be indented too deep"),
        # Keys of one mapping in different columns.
        (
            "together:\n    api_key_env: K\n  queues: []\n",
            "3:3",
            "this line is indented differently from the keys before it",
        ),
        # A list item where a key belongs, and a key where a list item belongs.
        ("global:\n  poll_interval: 30s\n  - foo\n", "3:3", "a list item ('- ') where a key was expected"),
        ("- a\nb: 1\n", "2:1", "a key where a list item ('- ') was expected"),
        # Text after a quoted value.
        ("a: 'x' y\n", "1:8", "keep a quoted value inside its quotes"),
        # Characters that cannot start a plain value.
        ("a: @x\n", "1:4", "a value cannot start with '@': put the value in quotes"),
        # Aliases, tags, several documents.
        ("a: *x\n", "1:4", "'*x' refers to an anchor '&x' that is not defined before it"),
        ("a: !!python/object:os.system x\n", "1:4", "the tag '!!python/object:os.system' is not allowed"),
        ("a: 1\n---\nb: 2\n", "2:1", "a second YAML document ('---'): the file must hold one document"),
    ],
)
def test_common_yaml_mistakes_read_as_sentences(tmp_path: Path, text: str, where: str, sentence: str) -> None:
    path = write_yaml(tmp_path, text)
    (got,) = problems(path)
    assert got.startswith(f"{path}:{where}: (syntax): "), got
    assert sentence in got
    assert "(YAML said: " in got  # the parser's own words stay, for what the sentence misses


def test_the_web_config_reports_syntax_the_same_way(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "basic_auth_users:\n\talice: x\n", "web.yml")
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    assert str(err.value).startswith(
        f"{path}:2:1: invalid YAML: a tab character: YAML accepts only spaces for indentation (YAML said: "
    )


def test_an_unknown_key_names_the_closest_known_key(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "global:\n"  # 1
        "  poll_intervall: 30s\n"  # 2
        "  bogus: 1\n"  # 3
        "together:\n"  # 4
        "  api_key_env: K\n"  # 5
        "  Queues: []\n"  # 6
        "  queues:\n"  # 7
        "    - modle: a\n"  # 8
        "  fine_tunes:\n"  # 9
        "    discovery: {enable: true}\n"  # 10
        "baseten:\n"  # 11
        "  api_key_env: K\n"  # 12
        "  discovery:\n"  # 13
        "    - model_name: [a]\n",  # 14
    )
    assert set(problems(path)) == {
        f"{path}:2: global.poll_intervall: unknown key; did you mean 'poll_interval'?",
        f"{path}:3: global.bogus: unknown key",
        f"{path}:6: together.Queues: unknown key; did you mean 'queues'?",
        f"{path}:8: together.queues[0].modle: unknown key; did you mean 'model'?",
        f"{path}:8: together.queues[0].model: required key is missing",
        f"{path}:10: together.fine_tunes.discovery.enable: unknown key; did you mean 'enabled'?",
        f"{path}:14: baseten.discovery[0].model_name: unknown key; did you mean 'model_names'?",
    }


def test_a_misspelt_section_suggests_it_by_its_yaml_name(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "globl:\n  poll_interval: 30s\n")
    assert problems(path) == [f"{path}:1: globl: unknown key; did you mean 'global'?"]


def test_known_keys_follow_lists_maps_and_optional_sections() -> None:
    assert known_keys(Config, ()) == ["global", "together", "baseten"]
    assert "model" in known_keys(Config, ("together", "queues", 0))
    assert "statuses" in known_keys(Config, ("together", "fine_tunes", "discovery"))
    assert "production_only" in known_keys(Config, ("baseten", "discovery", 3))
    assert known_keys(Config, ("together", "queues", 0, "model")) == []
    assert known_keys(Config, ("nowhere",)) == []
    assert closest_key("TIMEOUT", ["poll_interval", "timeout"]) == "timeout"
    assert closest_key("colour", ["poll_interval", "timeout", "model"]) is None


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("  max_connections: ten\n", "together.max_connections", "expected an integer, got 'ten'"),
        ("  max_connections: 1.5\n", "together.max_connections", "expected an integer, got 1.5"),
        ("  max_connections: 0\n", "together.max_connections", "must be at least 1, got 0"),
        ("  requests_per_second: fast\n", "together.requests_per_second", "expected a number, got 'fast'"),
        ("  queues: acme/a\n", "together.queues", "expected a list (items on lines starting with '- ', or [a, b]), got 'acme/a'"),
        ("  queues: [acme/a]\n", "together.queues[0]", "expected a map of keys to values, got 'acme/a'"),
        ("  queues: [{model: 12}]\n", "together.queues[0].model", "expected a string, got 12 (YAML reads it as a number; quote it)"),
        ("  queues: [{model: yes}]\n", "together.queues[0].model", "expected a string, got true (YAML reads it as a boolean; quote it)"),
        ("  queues: [{model: }]\n", "together.queues[0].model", "expected a string, got an empty value"),
        ("  queues: [{model: ''}]\n", "together.queues[0].model", "must not be empty"),
        ("  fine_tunes: {discovery: {enabled: maybe}}\n", "together.fine_tunes.discovery.enabled", "expected true or false, got 'maybe'"),
        ("  fine_tunes: {poll_interval: []}\n", "together.fine_tunes.poll_interval", "expected a duration such as 30s, 1m or 500ms, got a list"),
    ],
)  # fmt: skip
def test_type_errors_say_what_was_expected(tmp_path: Path, line: str, key: str, message: str) -> None:
    path = write_yaml(tmp_path, "together:\n  api_key_env: K\n" + line)
    assert problems(path) == [f"{path}:3: {key}: {message}"]


def test_a_section_or_a_value_left_empty(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "global: 30s\n")
    assert problems(path) == [f"{path}:1: global: expected a map of keys to values, got '30s'"]
    path = write_yaml(tmp_path, "global:\n")
    assert problems(path) == [f"{path}:1: global: expected a map of keys to values, got an empty value"]
    path = write_yaml(tmp_path, "global:\n  poll_interval:\n")
    assert problems(path) == [
        f"{path}:2: global.poll_interval: expected a duration such as 30s, 1m or 500ms, got an empty value"
    ]


@pytest.mark.parametrize(
    ("text", "where", "sentence"),
    [
        ("global:\n  poll_interval:\t30s\n", "2:17", "a tab character after text on the line (after a ':' perhaps)"),
        ("a: b\t\n", "1:5", "a tab character after text on the line"),
        ("global:\n\tpoll_interval: 30s\n", "2:1", "a tab character: YAML accepts only spaces for indentation"),
    ],
)  # fmt: skip
def test_a_tab_after_a_colon_is_not_called_indentation(
    tmp_path: Path, text: str, where: str, sentence: str
) -> None:
    path = write_yaml(tmp_path, text)
    (got,) = problems(path)
    assert got.startswith(f"{path}:{where}: (syntax): {sentence}"), got


@pytest.mark.parametrize("ref", ["$BASETEN_API_KEY", "${BASETEN_API_KEY}"])
def test_a_dollar_in_api_key_env_says_drop_it(tmp_path: Path, ref: str) -> None:
    path = write_yaml(tmp_path, f"baseten:\n  api_key_env: {ref!r}\n")
    assert problems(path) == [
        f"{path}:2: baseten.api_key_env: drop the '$': write BASETEN_API_KEY, "
        "the variable's name, not a shell reference to it"
    ]


# Keys that are also valid variable names: Together's hex form, its tgp_ form, a base64 run.
PASTED_KEYS = [
    "a3f9c0d1e2b4a5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e",
    "tgp_v1_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh",
    "Xq7Rt2Lp9Vb4Nm8Kc3Hs6Jd1Fg5Wz0Ya",
]


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Such a key used to pass the file check and come back verbatim in "environment
    # variable <key> is not set or empty", at start and from check-config.
    for key in PASTED_KEYS:
        monkeypatch.delenv(key, raising=False)
        path = write_yaml(tmp_path, f"together:\n  api_key_env: {key}\n")
        got = problems(path, read_secrets=True)
        assert got == [
            f"{path}:2: together.api_key_env: this looks like the key itself: write the name of the "
            "environment variable that holds it (export the key in that variable)"
        ]
        assert key not in "".join(got)
    # Names of the usual shapes are names.
    for name in ("TOGETHER_API_KEY", "TGP_KEY", "tgp_key", "K", "A_VERY_LONG_NAME_FOR_THE_STAGING_API_KEY"):
        path = write_yaml(tmp_path, f"together:\n  api_key_env: {name}\n")
        assert load_config(path, read_secrets=False).config.together is not None


def test_a_vendor_url_with_a_password_is_refused_at_its_line_without_echoing_it(tmp_path: Path) -> None:
    # It used to pass, and fail every poll with internal_error and a traceback: the
    # client cannot send URL credentials beside the key's Authorization header.
    path = write_yaml(
        tmp_path,
        "baseten:\n"
        "  api_key_env: K\n"
        "  base_url: http://proxyuser:hunter2@127.0.0.1:8080\n"
        "  organisation_metrics:\n"
        "    url: https://u:hunter2@app.baseten.co/metrics\n"
        "  prometheus_endpoints:\n"
        "    - {name: sync, url: 'https://:hunter2@model.example/sync/metrics'}\n",
    )
    why = (
        "must not hold a user name or password (user:password@ before the host): "
        "the account's key, from api_key_env or api_key_file, is what authenticates"
    )
    got = problems(path)
    assert got == [
        f"{path}:3: baseten.base_url: {why}",
        f"{path}:5: baseten.organisation_metrics.url: {why}",
        f"{path}:7: baseten.prometheus_endpoints[0].url: {why}",
    ]
    assert "hunter2" not in "".join(got)
    # An @ in the path or the query is not a password.
    path = write_yaml(tmp_path, "together:\n  api_key_env: K\n  base_url: https://proxy.example/v1?via=a@b\n")
    assert load_config(path, read_secrets=False).config.together is not None


@pytest.mark.parametrize(
    ("pattern", "suggested"),
    [("*_size_bytes", ".*_size_bytes"), ("?aseten_*", ".aseten_.*")],
)
def test_a_glob_in_a_filter_says_filters_are_regular_expressions(
    tmp_path: Path, pattern: str, suggested: str
) -> None:
    path = write_yaml(tmp_path, f"global:\n  metric_filter:\n    deny: [{pattern!r}]\n")
    assert problems(path) == [
        f"{path}:3: global.metric_filter.deny[0]: invalid regular expression {pattern!r}: filters are "
        f"regular expressions, not globs; write {suggested!r} (.* for any text)"
    ]


def test_an_unreadable_key_file_says_cannot_read_once(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "together:\n  api_key_file: missing.key\n")
    assert problems(path, read_secrets=True) == [
        f"{path}:2: together.api_key_file: api_key_file {str(tmp_path / 'missing.key')!r}: "
        "cannot read: No such file or directory"
    ]


def test_a_quoted_number_of_seconds_reads_as_the_number(tmp_path: Path) -> None:
    quoted = write_yaml(tmp_path, "global:\n  poll_interval: '30'\n  timeout: \"2.5\"\n", "q.yaml")
    plain = write_yaml(tmp_path, "global:\n  poll_interval: 30\n  timeout: 2.5\n", "p.yaml")
    assert load_config(quoted).config == load_config(plain).config
    assert load_config(quoted).config.global_.poll_interval == 30.0
    path = write_yaml(tmp_path, "global:\n  poll_interval: '30 s'\n")
    assert problems(path) == [
        f"{path}:2: global.poll_interval: expected a duration such as 30s, 1m or 500ms, got '30 s'"
    ]


def test_problems_are_listed_in_the_order_of_their_lines(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "together:\n"  # 1
        "  api_key_env: NOT_SET_ANYWHERE_X\n"  # 2
        "  max_connections: ten\n"  # 3
        "  queues: [{model: a}, {model: a}]\n"  # 4
        "global:\n"  # 5
        "  timeout: soon\n",  # 6
    )
    got = problems(path, read_secrets=True)
    assert [line.split(":")[1] for line in got] == ["2", "3", "6"], got


def test_a_label_clash_points_at_the_label_s_own_line(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "together:\n  api_key_env: K\n  labels:\n    team: ml\n    account: x\n",
    )
    (got,) = problems(path)
    assert got.startswith(f"{path}:5: together.labels.account: label 'account' clashes with a label "), got


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("prod/eu", "'/' not allowed"),
        ("prod eu!", "' ', '!' not allowed"),
        ("-prod", "must start with a letter or digit"),
        ("a" * 64, "longer than 63 characters"),
    ],
)
def test_an_account_name_pattern_is_explained(tmp_path: Path, name: str, why: str) -> None:
    path = write_yaml(tmp_path, f"together:\n  accounts:\n    - {{name: {name!r}, api_key_env: K}}\n")
    assert problems(path) == [
        f"{path}:3: together.accounts[0].name: {name!r} is not an account name ({why}): "
        "1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "together:\n  api_key_env: K\n  discovery: {enabled: true}\n",
            "3: together.discovery: unknown key here; 'discovery' belongs under together.fine_tunes: "
            "indent it there",
        ),
        (
            "together:\n  api_key_env: K\n  fine_tunes:\n    discovery:\n      enabled: true\n"
            "    statuses: [running]\n",
            "6: together.fine_tunes.statuses: unknown key here; 'statuses' belongs under "
            "together.fine_tunes.discovery: indent it there",
        ),
        (
            "baseten:\n  api_key_env: K\n  deployments:\n    - {model_id: a, deployment_id: b, discovery: []}\n",
            "4: baseten.deployments[0].discovery: unknown key here; 'discovery' belongs under baseten: "
            "indent it less",
        ),
        (
            "global:\n  together: {}\n",
            "2: global.together: unknown key here; 'together' belongs at the top level: indent it less",
        ),
    ],
)
def test_a_misplaced_key_says_where_it_belongs(tmp_path: Path, text: str, expected: str) -> None:
    path = write_yaml(tmp_path, text)
    assert problems(path) == [f"{path}:{expected}"]


def test_a_poll_interval_the_default_counter_window_cannot_cover_is_named(tmp_path: Path) -> None:
    # Only global.poll_interval is written: the problem is there, and says the default conflicts.
    path = write_yaml(
        tmp_path,
        "global:\n  poll_interval: 30m\nbaseten:\n  api_key_env: K\n  discovery:\n    - {}\n    - {}\n",
    )
    assert problems(path) == [
        f"{path}:2: global.poll_interval: this poll interval (30m) conflicts with the default "
        "counter_window of baseten (15m), which must cover an interval plus one minute: set "
        "counter_window: 31m or more on baseten, or a shorter poll_interval"
    ]


def test_a_written_counter_window_is_quoted_in_the_units_typed(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "global:\n  poll_interval: 2m\nbaseten:\n  api_key_env: K\n  counter_window: 90s\n"
        "  discovery:\n    - {}\n    - poll_interval: 600\n",
    )
    assert problems(path) == [
        f"{path}:5: baseten.counter_window: counter_window (90s) must be at least the poll interval "
        "(global.poll_interval, 2m) plus one minute (3m), or counter steps between two polls are never read",
        f"{path}:5: baseten.counter_window: counter_window (90s) must be at least the poll interval "
        "(baseten.discovery[1].poll_interval, 600s) plus one minute (11m), or counter steps between two "
        "polls are never read",
    ]


def _warnings(path: Path) -> list[str]:
    return [str(w) for w in load_config(path, read_secrets=False).warnings]


def test_a_filter_expression_that_matches_no_family_is_a_warning(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "global:\n"  # 1
        "  metric_filter:\n"  # 2
        "    deny: ['together_queue_.*', 'baseten_*']\n"  # 3
        "baseten:\n"  # 4
        "  api_key_env: K\n"  # 5
        "  metric_filter:\n"  # 6
        "    allow: ['baseten_.*', 'baseten_deployment_infos']\n"  # 7
        "    deny: ['inference_exporter_target_series']\n"  # 8
        "  deployments: [{model_id: m, deployment_id: d}]\n",  # 9
    )
    assert _warnings(path) == [
        f"{path}:3: global.metric_filter.deny[0]: 'together_queue_.*' matches no family this config's "
        "targets can export, so it removes nothing; see docs/metrics.md for the names",
        f"{path}:3: global.metric_filter.deny[1]: 'baseten_*' matches no family this config's targets "
        "can export, so it removes nothing (filters are regular expressions: '.*' for any text); "
        "see docs/metrics.md for the names",
        f"{path}:7: baseten.metric_filter.allow[1]: 'baseten_deployment_infos' matches no family this "
        "config's targets can export, so it keeps nothing; see docs/metrics.md for the names",
    ]


def test_a_filter_on_logged_fine_tune_keys_is_not_flagged(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "together:\n  api_key_env: K\n  fine_tunes: {jobs: [{id: ft-1}]}\n"
        "  metric_filter:\n    deny: ['together_finetune_eval_accuracy']\n",
    )
    assert _warnings(path) == []


def test_an_allow_list_that_drops_the_deployment_info_and_status_is_a_warning(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "baseten:\n  api_key_env: K\n  name: prod\n  metric_filter:\n"
        "    allow: ['baseten_replicas_.*', 'baseten_deployment_status']\n"
        "  deployments: [{model_id: m, deployment_id: d}]\n",
    )
    assert _warnings(path) == [
        f"{path}:4: baseten.metric_filter: account 'prod': the filter removes baseten_deployment_info, "
        "which dashboards join on for deployment names and status; keep them in the allow list"
    ]


def test_the_docs_list_every_deployment_status() -> None:
    from exporter.sources.baseten.vendor import DEPLOYMENT_STATUSES

    catalog = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    (row,) = [line for line in catalog.splitlines() if line.startswith("| `baseten_deployment_status` |")]
    assert len(DEPLOYMENT_STATUSES) == 14
    assert [s for s in sorted(DEPLOYMENT_STATUSES) if f"`{s}`" not in row] == []


def test_a_deployment_id_with_a_slash_is_explained(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path, "baseten:\n  api_key_env: K\n  deployments: [{model_id: 'a/b', deployment_id: 'd x'}]\n"
    )
    assert problems(path) == [
        f"{path}:3: baseten.deployments[0].model_id: 'a/b' is not an id: it is a part of the URL path, "
        "without '/' or spaces",
        f"{path}:3: baseten.deployments[0].deployment_id: 'd x' is not an id: it is a part of the URL path, "
        "without '/' or spaces",
    ]
