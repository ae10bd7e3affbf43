"""YAML loading that remembers where every key and item was written.

Config errors must name the file, the line and the key; PyYAML's plain loader
forgets positions and silently keeps the last of two duplicate keys, so we compose
the node tree ourselves, record a line for every path, and report duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


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
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load(text: str, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader) -> Loaded:
    """Parse ``text``; ``loader_class`` may resolve scalars differently (never unsafely)."""
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            raise YamlSyntaxError(line, str(exc.problem or exc)) from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(None, str(exc)) from None
        result = Loaded(data=None)
        if node is None:
            return result
        _walk(node, (), result)
        try:
            result.data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            raise YamlSyntaxError(mark.line + 1 if mark else None, str(exc.problem or exc)) from None
        return result
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: Path, out: Loaded) -> None:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        kept = []
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                # Reported, then dropped, so the first value is the one validated.
                out.duplicates.append((child, key_node.start_mark.line + 1))
                continue
            seen.add(key)
            kept.append((key_node, value_node))
            out.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, out)
        node.value = kept
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(top level)"
