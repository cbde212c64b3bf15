"""`ticketd tickets delete` and `ticketd forget`: erasure (GDPR Art. 17), previewed and confirmed."""

from __future__ import annotations

import re

import click

from ticketd.cli.common import (
    TICKET_ID,
    config_option,
    confirm,
    json_option,
    open_app,
    open_for_change,
    print_json,
)

yes_option = click.option("--yes", is_flag=True, help="erase without asking")


def _confirm_erasure(what: str, preview, as_json: bool) -> None:
    """Show what would be erased and ask; without a terminal to ask on, refuse (exit 1)."""
    from ticketd.erase import summary

    confirm(f"would erase {what}: {summary(preview)}", f"Erase {what}? This cannot be undone",
             f"not erased: no terminal to confirm on; run again with --yes to erase {what}", as_json)



@click.command("delete")
@click.argument("ticket_id", type=TICKET_ID)
@yes_option
@config_option
@json_option
def tickets_delete(ticket_id: int, yes: bool, config: str | None, as_json: bool) -> None:
    """Erase one ticket and everything stored for it; its raw mail stays only as a tombstone."""
    from ticketd.erase import erase_ticket, summary

    settings, engine = open_for_change(config)
    why = f"`ticketd tickets delete {ticket_id}`"
    if not yes:
        preview = erase_ticket(engine, settings.attachments_dir, ticket_id, why, dry_run=True)
        if preview is None:
            raise click.ClickException(f"no ticket {ticket_id}")
        _confirm_erasure(f"ticket [#{ticket_id}]", preview, as_json)
    erased = erase_ticket(engine, settings.attachments_dir, ticket_id, why)
    if erased is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        print_json({"ticket_id": ticket_id, "erased": erased.counts()})
    else:
        click.echo(f"ticket [#{ticket_id}] erased: {summary(erased)}")


def _not_an_address(written: str) -> str | None:
    """Why `written` is not the bare address `forget` takes, or None.

    An erasure is never guessed at: "Ann <ann@example.org>" forgotten as
    written matches no stored address and erases nothing, yet reports
    success; the address it holds is named for the admin to give instead.
    """
    from email.utils import getaddresses

    from ingest.headers import is_address

    address = written.strip().lower()
    if is_address(address) and not address.startswith("mailto:"):
        return None
    found = [a.strip().lower() for _, a in getaddresses([re.sub(r"(?i)^\s*mailto:", "", written)]) if a.strip()]
    hint = (f"; to forget {found[0]}, give it alone: `ticketd forget {found[0]}`"
            if len(found) == 1 and is_address(found[0]) and not found[0].startswith("mailto:") else "")
    return f"{written!r} is not an email address (local@domain){hint}"


@click.command()
@click.argument("address")
@yes_option
@config_option
@json_option
def forget(address: str, yes: bool, config: str | None, as_json: bool) -> None:
    """Erase one person: the tickets they opened, their words and address on other tickets, their mail."""
    from ingest.headers import mailbox
    from ticketd.erase import forget as forget_person
    from ticketd.erase import summary
    from ticketd.ticket_changes import is_ours

    refused = _not_an_address(address)
    if refused:
        raise click.UsageError(refused)
    app = open_app(config, writes=True)   # the rules: an agent is not forgotten behind rules.yaml's back
    address = mailbox(address.strip())   # as every address read from mail is kept: "ann@example.org." too
    if app.rules.agent(address) is not None:
        raise click.ClickException(f"{address} is an agent in {app.settings.rules_file}: remove them "
                                   "from it first (and let the daemon reload it), then forget them")
    if is_ours(app, address):
        raise click.ClickException(f"{address} is one of ticketd's own addresses")
    why = "`ticketd forget`"
    if not yes:
        preview = forget_person(app.engine, app.settings.attachments_dir, address, why, dry_run=True, app=app)
        _confirm_erasure(address, preview, as_json)
    erased = forget_person(app.engine, app.settings.attachments_dir, address, why, app=app)
    if as_json:
        print_json({"address": address, "tickets_erased": erased.tickets, "erased": erased.counts()})
    else:
        tickets_erased = ", ".join(f"[#{t}]" for t in erased.tickets) or "none"
        click.echo(f"{address} forgotten: tickets erased {tickets_erased}; {summary(erased)}")
