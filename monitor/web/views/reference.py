"""The settings reference page: docs/rules.md, readable from the settings page.

The wheel ships the document as ``monitor/docs/rules.md`` (pyproject force-includes
it, as it does the migrations); a source checkout reads ``docs/rules.md``. It is
rendered by the small Markdown subset below, which is what that document uses
(headings, paragraphs, one level of nested lists, numbered lists, tables, fenced
code, inline code, bold, italics, links, ``<br>`` in table cells), rather than a
Markdown dependency for one page. Every piece of text is escaped before any markup
is added, so the document cannot inject HTML either.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from aiohttp import web
from markupsafe import Markup, escape

from monitor.web.views import render as pages

HEADING = re.compile(r"(#{1,4})\s+(.*)")
ITEM = re.compile(r"( *)(?:[-*]|([0-9]+)\.)\s+(.*)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def rules_path() -> Path:
    package = Path(__file__).resolve().parents[2]
    packaged = package / "docs" / "rules.md"  # the wheel's copy
    return packaged if packaged.is_file() else package.parent / "docs" / "rules.md"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def inline(text: str) -> str:
    """Escaped text with code spans, bold, italics, links and ``<br>``."""
    out = []
    for index, part in enumerate(re.split(r"`([^`]*)`", text)):
        if index % 2:
            out.append(f"<code>{escape(part)}</code>")
            continue
        html = str(escape(part)).replace("&lt;br&gt;", "<br>")
        html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
        html = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", html)
        html = LINK.sub(
            lambda m: f'<a href="{m[2]}">{m[1]}</a>' if m[2].startswith(("http", "#")) else m[1],
            html,
        )
        out.append(html)
    return "".join(out)


def cells(line: str) -> list[str]:
    """A table row's cells; a ``|`` inside a code span stays in its cell."""
    parts, current, in_code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()]


def render_markdown(source: str) -> Markup:
    lines = source.splitlines()
    html: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines)
            )
            html.append(f"<pre><code>{escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
        elif match := HEADING.fullmatch(line):
            level, text = len(match[1]), match[2]
            html.append(f'<h{level} id="{slug(text)}">{inline(text)}</h{level}>')
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
            trs = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body
            )
            table = f"<thead><tr>{head}</tr></thead><tbody>{trs}</tbody>"
            html.append(f'<div class="table-scroll"><table class="list">{table}</table></div>')
        elif ITEM.fullmatch(line):
            i = _list(lines, i, html)
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
                para.append(lines[i].strip())
                i += 1
            html.append(f"<p>{inline(' '.join(para))}</p>")
    return Markup("\n".join(html))


def _starts_block(line: str) -> bool:
    return line.startswith(("```", "|", "#")) or ITEM.fullmatch(line) is not None


def _list(lines: list[str], i: int, html: list[str]) -> int:
    """One list (and the lists nested in it, by indent) from line ``i``; the next line."""
    first = ITEM.fullmatch(lines[i])
    assert first is not None
    indent, tag = len(first[1]), "ol" if first[2] else "ul"
    html.append(f"<{tag}>")
    while i < len(lines) and (match := ITEM.fullmatch(lines[i])) and len(match[1]) == indent:
        text = [match[3]]
        i += 1
        while i < len(lines) and lines[i].strip() and not ITEM.fullmatch(lines[i]):
            if _starts_block(lines[i]):
                break
            text.append(lines[i].strip())
            i += 1
        html.append(f"<li>{inline(' '.join(text))}")
        if i < len(lines) and (nested := ITEM.fullmatch(lines[i])) and len(nested[1]) > indent:
            i = _list(lines, i, html)
        html.append("</li>")
    html.append(f"</{tag}>")
    return i


@functools.cache
def rules_html() -> Markup:
    return render_markdown(rules_path().read_text(encoding="utf-8"))


async def rules_page(request: web.Request) -> web.Response:
    context = {"document": rules_html(), "crumbs": [("Settings reference", None)]}
    return pages.render(request, "reference.html", context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/docs/rules", rules_page)
