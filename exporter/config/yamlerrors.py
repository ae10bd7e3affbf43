"""PyYAML's complaints in plain words, at the place a person should look.

PyYAML reports where its parser gave up, in the parser's own terms ("expected
<block end>, but found '<block sequence start>'"). A person editing a config needs
the likely cause in words (an item indented wrongly, a tab, a quote never closed)
and the spot to fix, which is sometimes where a quote or bracket was opened rather
than where the parser noticed. The parser's own text is kept alongside, for the cases
the sentences do not cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Explained:
    line: int | None  # 1-based
    column: int | None  # 1-based
    sentence: str
    yaml_said: str


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "earlier"


_FOUND = re.compile(r"but found '(.*)'$")
_CHAR = re.compile(r"found character '(.*)' that cannot start any token")
_ESCAPE = re.compile(r"found unknown escape character '(.*)'")
_ALIAS = re.compile(r"found undefined alias '(.*)'")
_TAG = re.compile(r"could not determine a constructor for the tag '(.*)'")


def explain(exc: yaml.MarkedYAMLError) -> Explained:
    """The likely cause of ``exc`` as a sentence, and the line and column to look at."""
    problem, context = exc.problem or "", exc.context or ""
    at, opened = exc.problem_mark or exc.context_mark, exc.context_mark
    sentence = _sentence(problem, context, opened)
    if "character '\\t'" in problem and at is not None and _after_text(at):
        sentence = (
            "a tab character after text on the line (after a ':' perhaps): YAML separates with spaces only"
        )
    if _unclosed_quote(problem, context) and opened is not None:
        at = opened  # the quote that was never closed
    elif "<stream end>" in problem and at is not None and (bracket := _unclosed_bracket(at)) is not None:
        at, (opening, closing) = bracket
        sentence = f"this {opening!r} is never closed: the file ends before its {closing!r}"
    return Explained(
        line=at.line + 1 if at is not None else None,
        column=at.column + 1 if at is not None else None,
        sentence=sentence,
        yaml_said=problem or context or str(exc),
    )


def _after_text(mark: yaml.Mark) -> bool:
    """Whether something other than spaces comes before ``mark`` on its line: a tab
    there separates, it does not indent."""
    if not isinstance(mark.buffer, str):
        return False
    start = mark.buffer.rfind("\n", 0, mark.pointer) + 1
    return bool(mark.buffer[start : mark.pointer].strip())


def _unclosed_quote(problem: str, context: str) -> bool:
    return "quoted scalar" in context and "unknown escape" not in problem


def _unclosed_bracket(mark: yaml.Mark) -> tuple[yaml.Mark, tuple[str, str]] | None:
    """Where the innermost '[' or '{' still open at the end of the document was written,
    with the pair of brackets it opens."""
    if not isinstance(mark.buffer, str):
        return None
    opened: list[tuple[yaml.Mark, tuple[str, str]]] = []
    try:
        for token in yaml.scan(mark.buffer.rstrip("\0"), Loader=yaml.SafeLoader):
            if isinstance(token, yaml.FlowSequenceStartToken):
                opened.append((token.start_mark, ("[", "]")))
            elif isinstance(token, yaml.FlowMappingStartToken):
                opened.append((token.start_mark, ("{", "}")))
            elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken) and opened:
                opened.pop()
    except yaml.YAMLError:
        pass
    return opened[-1] if opened else None


def _sentence(problem: str, context: str, opened: yaml.Mark | None) -> str:
    found_match = _FOUND.search(problem)
    found = found_match.group(1) if found_match else ""
    if _unclosed_quote(problem, context):
        return "this quoted value has no closing quote"
    if "<stream end>" in problem or (
        context.startswith("while parsing a flow") and "end of stream" in problem
    ):
        return "the file ends in the middle of a value: a '[', '{' or quote is never closed"
    if context.startswith("while parsing a flow"):
        bracket = "[" if "sequence" in context else "{"
        return (
            f"the {bracket!r} at {_where(opened)} is not closed before this point, "
            "or a comma is missing between its items"
        )
    if "block mapping" in context and found in ("-", "<block sequence start>"):
        return (
            "a list item ('- ') where a key was expected: indent the item like the other items "
            "of its list, under the key it belongs to"
        )
    if "block mapping" in context and found == "<block mapping start>":
        return (
            "this line is indented differently from the keys before it: the keys of one mapping "
            "must start in the same column"
        )
    if "block mapping" in context and found == "<scalar>":
        return (
            "text where a key was expected: keep a quoted value inside its quotes, "
            "and indent this line like the keys around it"
        )
    if "block collection" in context and found in ("?", "<block mapping start>", "<scalar>"):
        return (
            "a key where a list item ('- ') was expected: indent the key under its item, "
            "or start a new item with '- '"
        )
    if found in ("]", "}"):
        return f"a {found!r} that closes nothing"
    if problem == "mapping values are not allowed here":
        return (
            "a ':' where no key can start: the line above may lack its ':' or the space after it, "
            "this line may be indented too deep, or a value containing ': ' needs quotes"
        )
    if m := _CHAR.search(problem):
        char = m.group(1)
        if char == "\\t":
            return "a tab character: YAML accepts only spaces for indentation"
        return f"a value cannot start with {char!r}: put the value in quotes"
    if m := _ESCAPE.search(problem):
        return (
            f"unknown escape '\\{m.group(1)}' in a double-quoted value: write '\\\\' for a backslash, "
            "or use single quotes"
        )
    if m := _ALIAS.search(problem):
        return f"'*{m.group(1)}' refers to an anchor '&{m.group(1)}' that is not defined before it"
    if m := _TAG.search(problem):
        tag = m.group(1).replace("tag:yaml.org,2002:", "!!")
        return f"the tag {tag!r} is not allowed: write plain values, lists and maps"
    if "single document" in context:
        return "a second YAML document ('---'): the file must hold one document"
    if "unhashable key" in problem:
        return "a list or a map used as a key: keys must be plain text"
    return "this is not valid YAML"
