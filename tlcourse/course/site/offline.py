"""Whether a built site needs the network: scripts, styles, fonts or images from another host.

A page handed out on a USB stick or opened on a train must look the same as online. Links a
reader may follow (``<a href="https://...">``) are fine; what the browser *loads by itself*
(``<script src>``, ``<link href>`` for styles, icons and preloads, ``<img src>``, ``url(...)``
and ``@import`` in CSS, an address inside an inline ``<script>``) must be a file of the site.

Jupyter Book always loads ``sphinx_thebe``, whose inline script names thebe's CDN address for
a "run this code live" button the site never shows (launch buttons are off, and code from the
run must not run). :func:`drop_thebe` removes that script and thebe's loader from every page.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

_LOADED = {"script": "src", "img": "src", "link": "href", "iframe": "src", "source": "src",
           "video": "src", "audio": "src", "embed": "src", "object": "data"}
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s'"`]*""")
_THEBE = re.compile(
    r'<script>const THEBE_JS_URL = [^<]*</script>\s*|<script[^>]*src="[^"]*sphinx-thebe\.js[^"]*"[^>]*></script>\s*')
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.IGNORECASE)


def is_remote(url: str) -> bool:
    """``https://cdn...``, ``//cdn...``: fetched from another host. ``data:`` and paths are not."""
    return bool(_REMOTE.match(url or ""))


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        name = _LOADED.get(tag)
        if name and values.get(name):
            if tag != "link" or (values.get("rel") or "").lower() != "canonical":
                self.urls.append(str(values[name]))
        if values.get("style"):
            self.urls += _CSS_URL.findall(str(values["style"]))
        self._in_style, self._in_script = tag == "style", tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += _CSS_URL.findall(data)
        if self._in_script:
            self.urls += _SCRIPT_URL.findall(data)


def page_assets(text: str) -> list[str]:
    """Every URL an HTML page makes the browser load by itself."""
    parser = _Assets()
    parser.feed(text)
    return parser.urls


def remote_assets(site: Path) -> list[tuple[str, str]]:
    """``(file, url)`` for every asset of the site's HTML and CSS files fetched from elsewhere."""
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            urls = page_assets(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".css":
            urls = _CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        found += [(path.relative_to(site).as_posix(), url) for url in urls if is_remote(url)]
    return found


def drop_thebe(site: Path) -> None:
    """Remove sphinx-thebe's CDN address and loader from every page of ``site``."""
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        cleaned = _THEBE.sub("", text)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")
    for leftover in site.glob("_static/sphinx-thebe.js"):
        leftover.unlink()
