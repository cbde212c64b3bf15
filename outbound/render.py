"""Render a notice's templates with jinja2 (pure: no I/O beyond reading templates)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

import jinja2

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CANNED = "canned"                     # saved replies: <templates>/canned/<name>.txt
_CANNED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")   # a file name, never a path


def when(value) -> str:
    """A stored (naive UTC) time as people read it: `2030-12-01` at midnight, else to the minute with UTC."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    if value.time() == time():
        return value.date().isoformat()
    return value.strftime("%Y-%m-%d %H:%M UTC")


class TemplateError(RuntimeError):
    """A template is missing or failed to render; the message names it."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class Renderer:
    """Admin overrides first, then the shipped templates/ directory."""

    def __init__(self, override_dir: Path | None = None) -> None:
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
            env.filters["when"] = when

    def render(self, name: str, context: dict) -> Rendered:
        try:
            body = self.text_env.get_template(f"{name}.txt.j2")
            subject_tpl = self.text_env.get_template(f"{name}.subject.j2")
            subject = " ".join(subject_tpl.render(context).split())
            text = body.render(context)
            try:
                html_tpl = self.html_env.get_template(f"{name}.html.j2")
            except jinja2.TemplateNotFound:
                html = None
            else:
                html = html_tpl.render(context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {name}: file {exc.name} not found") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {name} failed to render: {exc}") from exc
        return Rendered(subject=subject, text=text, html=html)

    def canned_names(self) -> list[str]:
        """The saved replies there are (`#canned <name>`), admin's and shipped, sorted."""
        return sorted({p.stem for d in self.dirs for p in (d / CANNED).glob("*.txt")
                       if _CANNED_NAME.fullmatch(p.stem)})

    def canned(self, name: str, context: dict) -> str | None:
        """The saved reply `name` rendered (the ticket's variables, as in any template); None if there is none."""
        name = name.strip().lower()
        if not _CANNED_NAME.fullmatch(name) or name not in self.canned_names():
            return None
        try:
            return self.text_env.get_template(f"{CANNED}/{name}.txt").render(context).strip()
        except jinja2.TemplateError as exc:
            raise TemplateError(f"saved reply {name} failed to render: {exc}") from exc
