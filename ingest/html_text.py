"""Readable plain text from an HTML mail body (for HTML-only mail).

A single regular-expression tokenizer rather than html.parser: mail HTML is
often hundreds of kilobytes of nested tables, and html.parser spends most
of a mail's parse time there. Blockquotes become "> " quoting, so quoted
history in HTML-only replies can be stripped like plain-text quoting.
"""

from __future__ import annotations

import html
import re

_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"                                   # comments, including Outlook's conditional ones
    r"|<!\[CDATA\[.*?(?:\]\]>|\Z)"
    r"|<[!?][^>]*>"                                        # doctype, processing instructions
    r"|<(/?)([a-zA-Z][\w:.-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.DOTALL,
)
_SKIP = {"script", "style", "head", "title", "template", "noscript", "xml", "svg"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "pre", "hr", "center"}
_LINE = {"div", "br", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "address",
         "form", "fieldset", "caption", "figure", "figcaption", "main", "nav", "aside", "blockquote"}
_CELL = {"td", "th"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source", "embed", "param"}
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all", re.IGNORECASE)


def _attr(attrs: str, name: str) -> str | None:
    match = re.search(r"""(?:^|\s)%s\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""" % name, attrs, re.IGNORECASE)
    if not match:
        return None
    return html.unescape(next(g for g in match.groups() if g is not None))


class _Writer:
    """Collects text into lines, each remembering its blockquote depth."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.line_depth = 0
        self.depth = 0
        self.pre = 0

    def text(self, chunk: str) -> None:
        if not self.current:
            self.line_depth = self.depth
        self.current.append(chunk)

    def newline(self, blank: bool = False) -> None:
        self.lines.append((self.line_depth if self.current else self.depth, "".join(self.current)))
        self.current = []
        self.line_depth = self.depth
        if blank:
            self.lines.append((self.depth, ""))

    def result(self) -> str:
        if self.current:
            self.newline()
        rows: list[tuple[int, str]] = []
        for depth, line in self.lines:
            if "\x00pre" in line:
                line = line.replace("\x00pre", "").rstrip()
            else:
                line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
            rows.append((depth, line))
        out: list[str] = []
        last_depth = None
        for i, (depth, line) in enumerate(rows):
            if line:
                out.append("> " * depth + line)
                last_depth = depth
                continue
            # One blank line at most, none on top or bottom, none at a quote's edge.
            following = next((d for d, text in rows[i + 1:] if text), None)
            if last_depth == depth == following and out and out[-1].strip("> "):
                out.append(("> " * depth).rstrip())
        return "\n".join(out)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document, with line structure and > quoting."""
    writer = _Writer()
    skipping: list[str] = []          # element names whose content is not shown
    link: list[str | None] = []       # hrefs of open <a> elements
    link_text_start: list[int] = []
    pos = 0

    def emit(chunk: str) -> None:
        if skipping or not chunk:
            return
        chunk = html.unescape(chunk)
        if writer.pre:
            for i, piece in enumerate(chunk.split("\n")):
                if i:
                    writer.newline()
                if piece:
                    writer.text("\x00pre" + piece)
        else:
            writer.text(re.sub(r"\s+", " ", chunk))

    for match in _TOKEN.finditer(markup):
        emit(markup[pos:match.start()])
        pos = match.end()
        name = (match.group(2) or "").lower()
        if not name:
            continue  # comment, doctype, CDATA
        closing, attrs = match.group(1) == "/", match.group(3) or ""
        self_closing = attrs.rstrip().endswith("/") or name in _VOID
        if skipping:
            if closing and name == skipping[-1]:
                skipping.pop()
            elif not closing and not self_closing and name == skipping[-1]:
                skipping.append(name)  # nested element of the same name inside a hidden one
            continue
        hidden = "style" in attrs and not self_closing and _HIDDEN.search(_attr(attrs, "style") or "")
        if not closing and (name in _SKIP or hidden):
            if not self_closing:
                skipping.append(name)
            continue
        if name == "blockquote":
            writer.newline()
            writer.depth = max(0, writer.depth + (-1 if closing else 1))
            writer.line_depth = writer.depth
            continue
        if name == "pre":
            writer.newline(blank=True)
            writer.pre = max(0, writer.pre + (-1 if closing else 1))
            continue
        if name == "a":
            if not closing:
                link.append(_attr(attrs, "href"))
                link_text_start.append(len("".join(writer.current)))
            elif link:
                href, start = link.pop(), link_text_start.pop()
                shown = re.sub(r"\[[^\]]*\]", "", "".join(writer.current)[start:]).strip()  # not image alts
                # Show where a link goes unless its text already says so.
                if href and re.match(r"(?i)https?:|mailto:", href) and shown and \
                        href.split(":", 1)[1].strip("/") not in shown and not re.match(r"(?i)https?:|www\.", shown):
                    writer.text(f" <{href[7:] if href.lower().startswith('mailto:') else href}>")
            continue
        if name == "img" and not closing:
            alt = (_attr(attrs, "alt") or "").strip()
            if alt:
                writer.text(f"[{alt}]")
            continue
        if name in _PARAGRAPH:
            writer.newline(blank=True)
        elif name in _LINE:
            if name == "br" or writer.current:
                writer.newline()
            if name == "li" and not closing:
                writer.text("- ")
        elif name in _CELL and closing:
            writer.text(" ")
    emit(markup[pos:])
    return writer.result()
