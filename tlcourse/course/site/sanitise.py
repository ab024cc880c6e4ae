"""An executed notebook from someone else, made into one the website can show safely.

Jupyter Book renders more than text: MyST markdown has directives and roles that read files
(``{include}``, ``{literalinclude}``, a link or image to a local path is copied into the site),
raw HTML passes through to the page, a ``text/html`` or ``application/javascript`` output is
inserted as is, and notebook or cell metadata (``mystnb``) can change how the build works,
including whether it executes the notebook. A run folder may come from another machine, so the
page is built from a *new* notebook that holds only what was checked:

- markdown cells whose every token is plain Markdown (headings, emphasis, lists, tables, code,
  ``http(s)``/``mailto`` links); a cell with anything else (raw HTML, a directive, a role, a
  local link or image) is shown as its literal source with a note saying so;
- code cells' source (shown as code, never run) and their outputs: text and errors as text,
  PNG and JPEG images whose bytes are what they claim, HTML cleaned by bleach (the sanitiser
  nbconvert uses: ``<script>``, event handlers and ``javascript:`` URLs come out as inert
  text), ipywidgets as text (:mod:`.widgets`); every other output type is dropped;
- no notebook, cell or output metadata except the kernel's language, and no attachments.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import CourseError
from .widgets import WIDGET_VIEW, widget_states, widget_text

# The MyST settings of the site: no optional syntax extension (no math, no colon fences, no
# substitutions), so the parser that checks a cell here is the one Sphinx uses.
MYST_EXTENSIONS: list[str] = []
URL_SCHEMES = ("http", "https", "mailto")
_SAFE_TOKENS = {
    "paragraph_open", "paragraph_close", "heading_open", "heading_close", "inline", "text",
    "text_special", "softbreak", "hardbreak", "em_open", "em_close", "strong_open",
    "strong_close", "s_open", "s_close", "code_inline", "code_block", "fence",
    "bullet_list_open", "bullet_list_close", "ordered_list_open", "ordered_list_close",
    "list_item_open", "list_item_close", "blockquote_open", "blockquote_close", "hr",
    "table_open", "table_close", "thead_open", "thead_close", "tbody_open", "tbody_close",
    "tr_open", "tr_close", "th_open", "th_close", "td_open", "td_close", "link_open",
    "link_close",
}
_FENCE_INFO = re.compile(r"^[A-Za-z0-9_+.-]*$")
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
_IMAGES = {"image/png": _PNG, "image/jpeg": _JPEG}
_HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "details", "div", "em", "h1",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "small", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "u", "ul",
}
_HTML_ATTRIBUTES = {
    "*": ["class", "style", "title"],
    "a": ["href", "title"],
    "table": ["class", "border", "style"],
    "td": ["colspan", "rowspan", "style", "class"],
    "th": ["colspan", "rowspan", "style", "class"],
}
LITERAL_NOTE = ("*The site shows this cell as its source: it uses markup a page built from "
                "someone else's files does not render ({why}).*")


@lru_cache(maxsize=1)
def _markdown_parser():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    config = MdParserConfig(enable_extensions=set(MYST_EXTENSIONS), url_schemes=URL_SCHEMES)
    return create_md_parser(config, RendererHTML)


def _walk(tokens: Iterable[Any]) -> Iterable[Any]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _token_problem(token: Any) -> str | None:
    if token.type not in _SAFE_TOKENS:
        return {"html_block": "raw HTML", "html_inline": "raw HTML", "myst_role": "a MyST role",
                "image": "an image file"}.get(token.type, f"MyST {token.type!r}")
    if token.type == "fence" and not _FENCE_INFO.match(token.info.strip()):
        return f"the directive {token.info.strip()[:40]!r}"
    if token.type == "link_open":
        href = str(token.attrGet("href") or "")
        scheme = href.split(":", 1)[0].lower() if ":" in href else ""
        if scheme not in URL_SCHEMES and not href.startswith("#"):
            return f"a link to {href[:60]!r}, which is not an http(s) address"
    return None


def markdown_problem(text: str) -> str | None:
    """Why a markdown cell cannot be rendered as MyST safely, or None when it can."""
    tokens = _markdown_parser().parse(text)
    return next((p for p in map(_token_problem, _walk(tokens)) if p), None)


def literal_markdown(text: str, why: str) -> str:
    """``text`` as a fenced block no backtick run inside it can close, with the note above."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{LITERAL_NOTE.format(why=escape_markdown(why))}\n\n{fence}text\n{text}\n{fence}"


def escape_markdown(text: Any) -> str:
    """Any value as inert Markdown text: every ASCII punctuation mark backslash-escaped (which
    CommonMark allows for all of them), so no role, link, HTML or table syntax survives."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(text).split()))


def _clean_html(text: str) -> str:
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    return bleach.clean(text, tags=_HTML_TAGS, attributes=_HTML_ATTRIBUTES,
                        protocols={"http", "https", "mailto"}, strip=False, strip_comments=True,
                        css_sanitizer=CSSSanitizer())


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _image(data: Any, magic: bytes) -> str | None:
    try:
        raw = base64.b64decode(_joined(data).replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if raw.startswith(magic) else None


def _clean_data(data: Mapping[str, Any], states: Mapping[str, Any]) -> dict[str, str]:
    if WIDGET_VIEW in data:
        text = widget_text(data[WIDGET_VIEW], states)
        return {"text/plain": text} if text else {}
    clean: dict[str, str] = {}
    for mime, magic in _IMAGES.items():
        image = _image(data[mime], magic) if mime in data else None
        if image:
            clean[mime] = image
    if "text/html" in data:
        clean["text/html"] = _clean_html(_joined(data["text/html"]))
    for mime in ("text/plain", "text/markdown", "text/latex"):  # the first one, as literal text
        if mime in data:
            clean["text/plain"] = _joined(data[mime])
            break
    return clean


def _clean_output(output: Mapping[str, Any], states: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return {"output_type": "stream", "name": name, "text": _joined(output.get("text"))}
    if kind == "error":
        return {"output_type": "error", "ename": str(output.get("ename", "")),
                "evalue": str(output.get("evalue", "")),
                "traceback": [str(line) for line in output.get("traceback") or []]}
    if kind in ("display_data", "execute_result"):
        data = _clean_data(output.get("data") or {}, states)
        if not data:
            return None
        clean = {"output_type": kind, "data": data, "metadata": {}}
        if kind == "execute_result":
            clean["execution_count"] = None
        return clean
    return None


def _clean_cell(cell: Mapping[str, Any], states: Mapping[str, Any]) -> dict[str, Any]:
    import nbformat

    source = _joined(cell.get("source"))
    if cell.get("cell_type") == "code":
        outputs = [_clean_output(o, states) for o in cell.get("outputs") or []
                   if isinstance(o, Mapping)]
        new = nbformat.v4.new_code_cell(source)
        new.outputs = [nbformat.from_dict(o) for o in outputs if o is not None]
        return new
    if cell.get("cell_type") == "markdown":
        problem = markdown_problem(source)
        return nbformat.v4.new_markdown_cell(literal_markdown(source, problem) if problem else source)
    return nbformat.v4.new_markdown_cell(literal_markdown(source, "a raw cell"))


def _language(metadata: Mapping[str, Any]) -> str:
    name = str((metadata.get("language_info") or {}).get("name") or "python")
    return name if re.fullmatch(r"[A-Za-z0-9_+-]{1,30}", name) else "python"


def read_notebook(path: Path) -> Any:
    """The notebook at ``path`` (format 4), or a CourseError naming it."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and version errors alike
        raise CourseError(
            f"{path} is not a readable notebook ({type(exc).__name__}: {exc}); run that notebook "
            "again with `tlcourse run --resume`, or take it out of the run folder's summary."
        ) from exc


def safe_notebook(notebook: Any, first_cells: Iterable[str] = ()) -> Any:
    """A new notebook holding only the checked content of ``notebook`` (see the module doc),
    after ``first_cells`` (markdown the site wrote itself, trusted as it is)."""
    import nbformat

    states = widget_states(notebook.get("metadata") or {})
    new = nbformat.v4.new_notebook()
    new.metadata = {"language_info": {"name": _language(notebook.get("metadata") or {})}}
    new.cells = [nbformat.v4.new_markdown_cell(text) for text in first_cells]
    new.cells += [_clean_cell(c, states) for c in notebook.get("cells") or [] if isinstance(c, Mapping)]
    return new
