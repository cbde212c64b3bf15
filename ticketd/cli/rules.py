"""`ticketd rules check|test` and `ticketd templates check`: what admins edit, checked before it applies."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ticketd.cli.common import config_option, read_settings, settings_file


@click.group()
def rules() -> None:
    """Check and try out rules.yaml."""


def _rules_path(file: str | None, config: str | None) -> Path:
    if file:
        return Path(file)
    return read_settings(config).rules_file   # a broken config is an error, not a cue to check ./rules.yaml


@rules.command("check")
@click.argument("file", required=False, type=click.Path(readable=False))
@config_option
def rules_check(file: str | None, config: str | None) -> None:
    """Validate rules; exit 1 and print every error (file:line:column: path: what to write)."""
    from ticketd.rules_file import RulesError, load_rules, summary

    path = _rules_path(file, config)
    try:
        loaded = load_rules(path)
    except RulesError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        click.echo(f"{path}: {len(exc.errors)} error(s); nothing would be applied", err=True)
        sys.exit(1)
    # Warnings are no errors (PRODUCT.md's exit 1 is for errors): the file applies, with mail waiting for nobody.
    for line in loaded.warnings:
        click.echo(line, err=True)
    warned = f" ({len(loaded.warnings)} warning(s))" if loaded.warnings else ""
    click.echo(f"{path}: OK: {summary(loaded)}{warned}")


@click.group()
def templates() -> None:
    """The mail templates and saved replies (templates_dir overrides first)."""


@templates.command("check")
@config_option
def templates_check(config: str | None) -> None:
    """Render every template and saved reply with sample values; exit 1 and name each that fails.

    Also names each template overridden in part and what its mail is then made of (templates/README.md).
    """
    from outbound.template_check import check_templates, partial_overrides, unused_overrides

    override_dir = read_settings(config).templates_dir
    errors, templates_count, canned_count = check_templates(override_dir)
    where = f"templates_dir {override_dir}" if override_dir else "the shipped templates"
    for line in partial_overrides(override_dir) + unused_overrides(override_dir):
        click.echo(line)
    if errors:
        for line in errors:
            click.echo(line, err=True)
        click.echo(f"{where}: {len(errors)} error(s); mail that needs them would be quarantined, and "
                   "`ticketd run` and `ticketd worker` refuse to start", err=True)
        sys.exit(1)
    click.echo(f"{where}: OK: {templates_count} templates and {canned_count} saved replies render")


@rules.command("test")
@click.argument("file", type=click.Path(readable=False))
@click.argument("mail", type=click.Path(readable=False))
@click.option("--config", type=click.Path(readable=False),
              help="read this daemon's database (read only): the round-robin cursor, and which ticket a reply joins "
                   "(default: $TICKETD_CONFIG, else ./ticketd.yaml if present)")
def rules_test(file: str, mail: str, config: str | None) -> None:
    """Dry run: which route and timers would apply to MAIL, and what would be sent. Writes nothing."""
    from ticketd.clock import utcnow
    from ticketd.rules_dryrun import mail_lines
    from ticketd.rules_file import RulesError, load_rules

    try:
        loaded = load_rules(file)
    except RulesError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(1)
    # As `rules check` gives them (stderr, exit 0): an admin who only tries a mail is told of them too.
    for line in loaded.warnings:
        click.echo(line, err=True)
    engine = app = settings = None
    if settings_file(config) is not None:
        from ticketd.app import App
        from ticketd.domain.signing import Signer
        from ticketd.signing_key import desk_keys
        from ticketd.store.assignment import has_cursor_table
        from ticketd.store.db import make_engine, sqlite_file
        from ticketd.store.locks import READ_PATIENCE_SECONDS

        settings = read_settings(config)
        missing = sqlite_file(settings.database_url)
        if missing is None or missing.exists():   # opening a SQLite file that is not there would create it
            engine = make_engine(settings.database_url, patience=READ_PATIENCE_SECONDS)   # it only reads
            if not has_cursor_table(engine):
                engine = None
        # Threading needs the daemon's key; a key not made yet has signed nothing to thread by.
        keys = desk_keys(settings.secret_key, settings.data_dir, engine, create=False)
        if engine is not None and keys.signing is not None:
            app = App(settings=settings, engine=engine, rules=loaded,
                      signer=Signer(keys.signing, tuple(settings.previous_secret_keys) + keys.also_verifying))
    # A mail past the MIME limits is one outcome among others: "would be quarantined: ...", exit 0.
    try:
        raw = Path(mail).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read the mail {mail}: {exc.strerror}") from None
    for line in mail_lines(loaded, raw, utcnow(), engine, app, settings):
        click.echo(line)
