"""YAML loading that remembers where every key and item was written.

Config errors must name the file, the line and the key; PyYAML's plain loader
forgets positions and silently keeps the last of two duplicate keys, so we compose
the node tree ourselves, record a line for every path, and report duplicates.

YAML aliases let a few hundred bytes stand for billions of nodes (an "alias bomb").
Before anything walks or validates the document, its size with every alias expanded
is counted once per distinct node, and a document over ``MAX_NODES`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from exporter.config import yamlerrors

# Paths are written the same way in every problem, the YAML ones and the model's.
from exporter.configkit.problems import Path as Path
from exporter.configkit.problems import format_path as format_path
from exporter.configkit.problems import repeats

# Far more than any real config (a few nodes per target), far less than a bomb.
MAX_NODES = 200_000


@dataclass
class Loaded:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line_for(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest written ancestor (for missing keys)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None


class YamlSyntaxError(ValueError):
    """The document is not YAML we can read: a plain sentence, where to look, and
    PyYAML's own words (``yaml_said``) when it had any."""

    def __init__(
        self, line: int | None, message: str, column: int | None = None, yaml_said: str | None = None
    ) -> None:
        self.line = line
        self.column = column
        self.sentence = message
        self.yaml_said = yaml_said
        self.message = f"{message} (YAML said: {yaml_said})" if yaml_said else message
        super().__init__(self.message)

    @classmethod
    def from_yaml(cls, exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
        e = yamlerrors.explain(exc)
        return cls(e.line, e.sentence, e.column, e.yaml_said)

    def where(self, fname: str) -> str:
        """``file:line:column``, as much of it as is known."""
        return ":".join(str(p) for p in (fname, self.line, self.column if self.line else None) if p)


def load(text: str, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader) -> Loaded:
    """Parse ``text``; ``loader_class`` may resolve scalars differently (never unsafely)."""
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise YamlSyntaxError.from_yaml(exc) from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(None, str(exc)) from None
        except RecursionError:
            raise YamlSyntaxError(None, "the document is nested too deeply") from None
        result = Loaded(data=None)
        if node is None:
            return result
        memo: dict[int, int] = {}
        if _expanded_size(node, memo) > MAX_NODES:
            # memo holds each distinct node once: far fewer than the expansion means aliases.
            why = " through YAML aliases" if len(memo) * 4 < MAX_NODES else ""
            raise YamlSyntaxError(None, f"the document expands to more than {MAX_NODES:,} values{why}")
        _walk(node, (), result)
        try:
            result.data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise YamlSyntaxError.from_yaml(exc) from None
        return result
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document has once every alias is expanded, capped just past
    ``MAX_NODES``; each distinct node is counted once (``memo``), so a bomb costs
    only as much as its text."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    size = 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            size += _expanded_size(key_node, memo) + _expanded_size(value_node, memo)
            if size > MAX_NODES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, memo)
            if size > MAX_NODES:
                break
    memo[id(node)] = size = min(size, MAX_NODES + 1)
    return size


def _walk(node: yaml.Node, path: Path, out: Loaded) -> None:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        again = {i for i, _, _ in repeats((i, str(k.value)) for i, (k, _) in enumerate(node.value))}
        kept = []
        for i, (key_node, value_node) in enumerate(node.value):
            child = (*path, str(key_node.value))
            if i in again:
                # Reported, then dropped, so the first value is the one validated.
                out.duplicates.append((child, key_node.start_mark.line + 1))
                continue
            kept.append((key_node, value_node))
            out.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, out)
        node.value = kept
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)
