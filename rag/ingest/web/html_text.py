"""HTML fragments of feed items -> plain text (:func:`html_to_text`). Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from ..loaders import normalize_text


_BLOCK = frozenset("address article aside blockquote dd div dl dt figcaption figure footer "
                   "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody "
                   "thead tfoot tr ul".split())


_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object"})


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")
            self.pre += tag == "pre"
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"[ \t\r\n\f\v]+", " ", data))


def html_to_text(fragment: str) -> str:
    """Readable text of an HTML fragment (a feed item's content): blocks become
    paragraphs, scripts and styles are dropped, entities decoded."""
    parser = _TextParser()
    try:
        parser.feed(fragment)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; never fail on markup
        return normalize_text(html.unescape(re.sub(r"<[^>]*>", " ", fragment)))
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return normalize_text(text)
