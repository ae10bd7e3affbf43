"""Every relative link in the README and the docs leads somewhere.

A link's file must exist, and its ``#anchor`` must name a heading of the page it points
to, as GitHub renders it. External (``http``, ``https``, ``mailto``) links are not fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

PAGES = sorted(
    [
        REPO / "README.md",
        *(REPO / "docs").rglob("*.md"),
        REPO / "bench" / "README.md",
        REPO / "deploy" / "kubernetes" / "README.md",
        REPO / "deploy" / "helm" / "inference-exporter" / "README.md",
    ]
)

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_TARGET = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.I)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text in lowercase, without characters
    other than letters, digits, spaces, hyphens and underscores, spaces made hyphens."""
    text = INLINE_LINK.sub(lambda m: m.group(1), heading)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page: its headings' slugs (a repeated slug gets ``-1``, ``-2`` …)
    and the ids of explicit ``<a id=…>`` / ``<a name=…>`` anchors."""
    out: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text):
        out.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(text: str) -> list[tuple[int, str]]:
    """Each link target of a page with its line: inline links and images, reference
    definitions and HTML ``href``/``src``; code (spans and fenced blocks) is not prose."""
    out: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        prose = CODE_SPAN.sub("code", line)
        targets = [m.group(2) for m in INLINE_LINK.finditer(prose)]
        targets += REFERENCE_DEFINITION.findall(prose) + HTML_TARGET.findall(prose)
        out.extend((number, target) for target in targets)
    return out


def broken_links(page: Path, root: Path) -> list[str]:
    """``file:line: target: why`` for each relative link of ``page`` that leads nowhere."""
    problems: list[str] = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path, _, fragment = target.partition("#")
        if not path:
            dest = page
        elif path.startswith("/"):
            dest = root / path.lstrip("/")
        else:
            dest = page.parent / path
        dest = dest.resolve()
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where}: outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading with this anchor")
    return problems


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Quick start", "quick-start"),
        ("Service level objectives", "service-level-objectives"),
        ("The request path: transport and retry loop", "the-request-path-transport-and-retry-loop"),
        ("`--web.config.file` and TLS", "--webconfigfile-and-tls"),
        ("Baseten latency (p95, 99%)", "baseten-latency-p95-99"),
        ("[Fine-tune jobs](metrics.md) in_depth", "fine-tune-jobs-in_depth"),
        ("TogetherQueueDepthHigh", "togetherqueuedepthhigh"),
        ("A — B", "a--b"),
    ],
)
def test_slug_is_githubs(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_anchors_number_repeated_headings_and_skip_code_blocks() -> None:
    page = "# Tests\n## Tests\n```sh\n# not a heading\n```\n  ```yaml\n  # nor this\n  ```\n### Tests\n"
    assert anchors(page) == {"tests", "tests-1", "tests-2"}
    assert anchors('text <a id="here"></a>\n## Closing ##\n') == {"here", "closing"}


def test_links_skip_code_and_find_every_kind() -> None:
    page = (
        "See [a](a.md#x), ![pic](img/p.png) and `[not](code.md)`.\n"
        "```\n[nor](fenced.md)\n```\n"
        '[ref]: ref.md\n<a href="h.md">h</a> [`jobs[].id`](c.md) <https://example.com>\n'
    )
    assert links(page) == [(1, "a.md#x"), (1, "img/p.png"), (5, "ref.md"), (6, "c.md"), (6, "h.md")]


def test_broken_links_and_anchors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n## Known part\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Top\n"
        "[ok](docs/page.md#known-part) [self](#top) [dir](docs/) [web](https://example.com/x#y)\n"
        "[gone](docs/missing.md) [bad anchor](docs/page.md#unknown-part) [bad self](#bottom)\n"
        "[escape](../elsewhere.md)\n",
        encoding="utf-8",
    )
    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "README.md:3: docs/missing.md: no such file",
        "README.md:3: docs/page.md#unknown-part: no heading with this anchor",
        "README.md:3: #bottom: no heading with this anchor",
        "README.md:4: ../elsewhere.md: outside the repository",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page, REPO) == []
