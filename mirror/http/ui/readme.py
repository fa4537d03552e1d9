"""README markdown to HTML that can never run a script.

Raw HTML in the markdown is not passed through (``html: False`` escapes it as text), and a link
or image whose scheme is not http, https or mailto (``javascript:``, ``data:``, ``vbscript:``...)
is not made a link at all: markdown-it then leaves its source as plain text. Links that stay are
marked ``rel="nofollow noopener noreferrer"``. The pages' Content-Security-Policy is the second
line of defence.

Headings move down ``HEADING_SHIFT`` levels (``#`` becomes ``<h3>``), so the README sits under
the page's own headings in the document outline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
#: a URL's first segment: a colon in it makes the URL absolute (RFC 3986 section 4.2)
_FIRST_SEGMENT_RE = re.compile(r"^[^/?#]*")
#: what browsers strip from a URL before reading its scheme (``java\tscript:`` is ``javascript:``)
_IGNORED_BY_BROWSERS_RE = re.compile(r"[\x00-\x20\x7f]")
LINK_REL = "nofollow noopener noreferrer"
HEADING_SHIFT = 2


def safe_link(url: str) -> bool:
    """True for relative URLs and http, https and mailto ones; anything else with a colon before
    its first ``/``, ``?`` or ``#`` (a scheme, however disguised) is refused."""
    first = _FIRST_SEGMENT_RE.match(_IGNORED_BY_BROWSERS_RE.sub("", url))
    head = first.group(0) if first else ""
    return ":" not in head or head.partition(":")[0].lower() in ALLOWED_SCHEMES


def _link_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    tokens[idx].attrSet("rel", LINK_REL)
    return renderer.renderToken(tokens, idx, options, env)


def _shifted_heading(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    token.tag = f"h{min(int(token.tag[1:]) + HEADING_SHIFT, 6)}"
    return renderer.renderToken(tokens, idx, options, env)


def markdown_renderer() -> MarkdownIt:
    """CommonMark plus tables, raw HTML off, links limited to ``safe_link``, headings shifted."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("heading_open", _shifted_heading)
    md.add_render_rule("heading_close", _shifted_heading)
    return md


def render_readme(md: MarkdownIt, text: str | None) -> Markup:
    """The README as HTML, safe to insert in a page as it is."""
    return Markup(md.render(text or ""))
