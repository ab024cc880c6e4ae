"""What a built site must satisfy, checked on its HTML files (shared by the site tests and the
browser test): every local link and image resolves, no page shows a traceback or a widget repr."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_LINKS = {"a": "href", "img": "src", "link": "href", "script": "src"}
RAW_PROBLEMS = re.compile(
    r"Traceback \(most recent call last\)|\b(?:HBox|VBox|FloatProgress|IntProgress)\(|"
    r"children=\(")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        name = _LINKS.get(tag)
        value = dict(attrs).get(name) if name else None
        if value:
            self.refs.append((tag, value))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(page: Path) -> _Refs:
    refs = _Refs()
    refs.feed(page.read_text(encoding="utf-8"))
    return refs


def pages(site: Path) -> list[Path]:
    """The site's pages (the theme's template fragments in _static/ are not pages)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


def broken_refs(site: Path) -> list[str]:
    """``page: tag -> target`` for every local link, image, style or script that is missing."""
    broken = []
    for page in pages(site):
        for tag, value in parse(page).refs:
            parts = urlsplit(value)
            if parts.scheme or parts.netloc or not parts.path:
                continue  # http(s), mailto, data:, or a #fragment of the page itself
            target = (page.parent / unquote(parts.path)).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag}> -> {value}")
    return broken


def images(page: Path) -> list[str]:
    return [value for tag, value in parse(page).refs if tag == "img"]


def visible_text(page: Path) -> str:
    return " ".join(parse(page).text)


def raw_problems(site: Path) -> list[str]:
    """Pages whose visible text shows a traceback or a widget's repr instead of the widget."""
    found = []
    for page in pages(site):
        match = RAW_PROBLEMS.search(visible_text(page))
        if match:
            found.append(f"{page.relative_to(site)}: {match[0]!r}")
    return found
