"""The exporter's HTML pages: the landing page and ``/targets``.

Rendered from Jinja templates with escaping on for every value, since target ids,
error details and the config path can carry vendor or user text. Pure: the data and
the current time come in as arguments; the pages need no external assets (the CSS is
inline) and no JavaScript.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exporter.web.pages import timefmt

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _env() -> jinja2.Environment:
    """The templates' environment, made when a page is first asked for: a daemon that is
    only scraped never loads Jinja."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("exporter.web.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(iso=timefmt.iso, span=timefmt.span, ago=timefmt.ago, duration=timefmt.duration)
    return env


def render_page(template: str, **context: Any) -> str:
    """One page from ``templates/``; every value in ``context`` is escaped where it lands."""
    return _env().get_template(template).render(**context)


def stream_page(template: str, **context: Any) -> Iterator[str]:
    """``render_page`` as the pieces of text the template makes, one after the other, so
    that a large page can be made in steps."""
    return _env().get_template(template).generate(**context)
