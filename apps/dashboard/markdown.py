"""Markdown written by template authors (a marketplace readme, a changelog), rendered safely.

markdown-it-py with raw HTML off (`<script>` and every other tag come out as text), links only to
http(s), mailto and relative or fragment addresses (a `javascript:` or `data:` link stays text),
images only from https, and every absolute link opened with `rel="nofollow noopener noreferrer"`.
"""

from urllib.parse import urlsplit

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

LINK_SCHEMES = {"http", "https", "mailto"}
IMAGE_SCHEMES = {"https"}


def _scheme(url: str) -> str:
    try:
        return urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return "invalid"


def _link_allowed(url: str) -> bool:
    scheme = _scheme(url)
    return scheme in LINK_SCHEMES or (scheme == "" and not url.strip().startswith("//"))


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return _link_allowed(url)


def _build() -> MarkdownIt:
    md = _Markdown("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    default_image = md.renderer.rules["image"]

    def link_open(renderer, tokens, idx, options, env):
        token = tokens[idx]
        if _scheme(token.attrGet("href") or ""):
            token.attrSet("rel", "nofollow noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    def image(renderer, tokens, idx, options, env):
        token = tokens[idx]
        if _scheme(token.attrGet("src") or "") not in IMAGE_SCHEMES:
            # Not fetched from anywhere but https: its alt text instead.
            return renderer.renderInline(token.children or [], options, env)
        token.attrSet("loading", "lazy")
        token.attrSet("referrerpolicy", "no-referrer")
        return default_image(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("image", image)
    return md


_MD = _build()


def render_markdown(text: str) -> SafeString:
    """HTML for an author's Markdown: escaped raw HTML, checked link schemes (module docstring)."""
    return mark_safe(_MD.render(text or ""))  # noqa: S308 (raw HTML off, links checked above)
