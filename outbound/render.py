"""Render a notice's templates with jinja2 (pure: no I/O beyond reading templates)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from ingest.html_text import html_to_text

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CANNED = "canned"                     # saved replies: <templates>/canned/<name>.txt
CANNED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")   # a file name, never a path
# Nesting (brackets, blocks) hundreds of levels deep, past jinja2's recursion: in no template a person writes.
NESTED_TOO_DEEP = "nested too deep to read (hundreds of levels of brackets or blocks in one of its files)"


def when(value, zone: str = "UTC", *, day_alone: bool = True) -> str:
    """A stored (naive UTC) time as people in `zone` read it: `2030-12-01` at their midnight (a date an
    agent set; unless not `day_alone`), else to the minute with the zone's name (`2030-12-01 09:00
    Europe/Berlin`)."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    if day_alone and local.time() == time():
        return local.date().isoformat()
    return f"{local:%Y-%m-%d %H:%M} {zone}"


@jinja2.pass_context
def _when_for_reader(context, value) -> str:
    # The mail's `timezone` (outbound.outbox.compose): the recipient agent's, else the desk's.
    return when(value, context.get("timezone") or "UTC")


@jinja2.pass_context
def _stamp_for_reader(context, value) -> str:
    # When something happened (a message of the conversation): to the minute, at midnight too.
    return when(value, context.get("timezone") or "UTC", day_alone=False)


def _where(exc: jinja2.TemplateError, dirs: list[Path]) -> str:
    """`<file> line <n>: ` of the template text that failed (an included part's own), or "" if unknown."""
    # A syntax error knows its place; an error while rendering is found in the traceback, whose
    # frames jinja2 rewrites to the template's file and line.
    filename, lineno = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    if filename is None:
        roots = [d.resolve() for d in dirs]
        tb = exc.__traceback__
        while tb is not None:   # the innermost template frame: an included part's, not the includer's
            path = Path(tb.tb_frame.f_code.co_filename).resolve()
            if any(root in path.parents for root in roots):
                filename, lineno = str(path), tb.tb_lineno
            tb = tb.tb_next
    if filename is None:
        return ""
    return f"{filename} line {lineno}: " if lineno else f"{filename}: "


class TemplateError(RuntimeError):
    """A template is missing or failed to render; the message names it."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class Renderer:
    """Admin overrides first, then the shipped templates/ directory; both bodies of a mail from one of them."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        # jinja2's FileSystemLoader names a file os.path.normpath(<search path>/<name>).
        self._override_prefix = os.path.normpath(override_dir) + os.sep if override_dir else None
        paths = [str(override_dir)] if override_dir else []
        paths.append(str(DEFAULT_TEMPLATES))
        self.dirs = [Path(p) for p in paths]
        loader = jinja2.FileSystemLoader(paths)
        # Customer text is data, never template source: it only ever arrives
        # as a variable, and StrictUndefined turns a typo into an error.
        self.text_env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined,
                                           autoescape=False, keep_trailing_newline=True)
        self.html_env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=True)
        for env in (self.text_env, self.html_env):
            env.filters["when"] = _when_for_reader
            env.filters["stamp"] = _stamp_for_reader

    def overridden(self, name: str) -> set[str]:
        """Which of a template's files (`subject`, `txt`, `html`) templates_dir holds now."""
        if self.override_dir is None:
            return set()
        return {part for part in ("subject", "txt", "html") if (self.override_dir / f"{name}.{part}.j2").is_file()}

    def _is_override(self, template: jinja2.Template) -> bool:
        # Where the loader found it, not what is on disk now: jinja2 keeps a shipped file it loaded while
        # that file is unchanged, so an override added while the daemon runs is used from the next start.
        return self._override_prefix is not None and (template.filename or "").startswith(self._override_prefix)

    def render(self, name: str, context: dict) -> Rendered:
        # The text and HTML parts are alternatives of the same content (RFC 2046 section 5.1.4): a client
        # shows one of them. An admin's text beside the shipped HTML would never reach the many who read
        # HTML, so an override of one body never pairs with the shipped other one. Text alone goes out as
        # text only: every client shows it, and HTML made from it would add nothing but markup. HTML alone
        # gets a text part made from it, since HTML-only mail is scored as spam (SpamAssassin MIME_HTML_ONLY)
        # and text-only readers would get nothing.
        try:
            subject_tpl = self.text_env.get_template(f"{name}.subject.j2")
            subject = " ".join(subject_tpl.render(context).split())
            text_tpl = self.text_env.get_template(f"{name}.txt.j2")
            try:
                html_tpl = self.html_env.get_template(f"{name}.html.j2")
            except jinja2.TemplateNotFound:
                html_tpl = None
            admin_text = self._is_override(text_tpl)
            admin_html = html_tpl is not None and self._is_override(html_tpl)
            if admin_text and not admin_html:
                html_tpl = None
            html = html_tpl.render(context) if html_tpl is not None else None
            if admin_html and not admin_text:
                text = html_to_text(html) + "\n"
            else:
                text = text_tpl.render(context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {name}: file {exc.name} not found") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {name} failed to render: {_where(exc, self.dirs)}{exc}") from exc
        except UnicodeDecodeError as exc:   # jinja2 reads templates as UTF-8 and names no file when one is not
            files = [f"{name}.{part}.j2" for part in ("subject", "txt", "html")]
            raise TemplateError(f"template {name} failed to render: {self._not_utf8(files, exc)}") from exc
        except RecursionError:   # jinja2 parses and compiles by recursing once per level of nesting
            raise TemplateError(f"template {name} failed to render: {NESTED_TOO_DEEP}") from None
        return Rendered(subject=subject, text=text, html=html)

    def _not_utf8(self, files: list[str], error: UnicodeDecodeError) -> str:
        """Which of `files` (or of the shared parts they include) is not UTF-8, and where; else the error."""
        for directory in self.dirs:
            parts = sorted(p.relative_to(directory).as_posix() for p in (directory / "_parts").glob("*"))
            for relative in files + parts:
                path = directory / relative
                if not path.is_file():
                    continue
                try:
                    path.read_bytes().decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (f"{path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                            "save it as UTF-8")
        return str(error)

    def canned_names(self) -> list[str]:
        """The saved replies there are (`#canned <name>`), admin's and shipped, sorted."""
        return sorted({p.stem for d in self.dirs for p in (d / CANNED).glob("*.txt")
                       if CANNED_NAME.fullmatch(p.stem)})

    def canned(self, name: str, context: dict) -> str | None:
        """The saved reply `name` rendered (the ticket's variables, as in any template); None if there is none."""
        name = name.strip().lower()
        if not CANNED_NAME.fullmatch(name) or name not in self.canned_names():
            return None
        try:
            return self.text_env.get_template(f"{CANNED}/{name}.txt").render(context).strip()
        except jinja2.TemplateError as exc:
            raise TemplateError(f"saved reply {name} failed to render: {_where(exc, self.dirs)}{exc}") from exc
        except UnicodeDecodeError as exc:
            raise TemplateError(f"saved reply {name} failed to render: "
                                f"{self._not_utf8([f'{CANNED}/{name}.txt'], exc)}") from exc
        except RecursionError:
            raise TemplateError(f"saved reply {name} failed to render: {NESTED_TOO_DEEP}") from None
