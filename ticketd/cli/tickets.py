"""`ticketd tickets`: list, show and search tickets; their files; merge, assign, close, follow."""

from __future__ import annotations

from pathlib import Path

import click

from ticketd.cli.common import (
    COUNT,
    TICKET_ID,
    admin_change,
    config_option,
    confirm,
    json_option,
    mail_goes,
    open_app,
    open_engine,
    print_json,
    read_settings,
)
from ticketd.domain.ids import MAX_ID
from ticketd.domain.statuses import Status


@click.group()
def tickets() -> None:
    """Look at tickets and act on them: list, show, files, assign, close, follow, merge, delete."""


@tickets.command("list")
@config_option
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in Status]),
              help="only tickets in this status (repeat for several)")
@click.option("--open", "open_only", is_flag=True, help="only tickets not closed")
@click.option("--assignee", metavar="EMAIL", help="only this agent's tickets; `none`: unassigned ones")
@click.option("--requester", metavar="EMAIL", help="only tickets this address opened")
@click.option("--search", metavar="WORDS",
              help='only tickets holding every word (any case; "a phrase" in double quotes) in their '
                   "subject, a message's text or sender, the requester, or a file's name")
@click.option("--limit", type=COUNT, help="at most this many, the newest")
@json_option
def tickets_list(config: str | None, statuses: tuple[str, ...], open_only: bool, assignee: str | None,
                 requester: str | None, search: str | None, limit: int | None, as_json: bool) -> None:
    """Tickets, newest first."""
    from ticketd.domain.search import search_terms
    from ticketd.store.read_models import UNASSIGNED
    from ticketd.views import list_tickets

    terms: list[str] = []
    if search is not None:
        try:
            terms = search_terms(search)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if open_only:
        if Status.CLOSED.value in statuses:
            raise click.UsageError("--open leaves out closed tickets: drop --status closed or --open")
        statuses = statuses or tuple(s.value for s in Status if s is not Status.CLOSED)
    if assignee is not None and assignee.strip().lower() == "none":
        assignee = UNASSIGNED
    limit = min(limit, MAX_ID) if limit is not None else None   # more than any desk holds: all of them
    rows = list_tickets(open_engine(config), limit=limit, statuses=statuses, assignee=assignee, requester=requester,
                        terms=terms)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no tickets" + (" match" if terms or statuses or assignee or requester else ""))
    for t in rows:
        click.echo(f"{t['tag']:>8}  {t['status']:<18} {t['priority']:<7} {t['assignee'] or '-':<24} "
                   f"{t['requester']:<28} {t['subject']}")
        if t.get("hit"):
            click.echo(f"{'':>10}{t['hit']['snippet']}")


@tickets.command("show")
@click.argument("ticket_id", type=TICKET_ID)
@config_option
@json_option
def tickets_show(ticket_id: int, config: str | None, as_json: bool) -> None:
    """One ticket with its messages and history."""
    from ticketd.domain.conversation import NOT_SENT
    from ticketd.views import show_ticket

    ticket = show_ticket(open_engine(config), ticket_id)
    if ticket is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    if as_json:
        print_json(ticket)
        return
    click.echo(f"{ticket['tag']} {ticket['subject']}")
    click.echo(f"status {ticket['status']}, priority {ticket['priority']}, type {ticket['type'] or '-'}, "
               f"assignee {ticket['assignee'] or '-'}, group {ticket['group'] or '-'}")
    click.echo(f"requester {ticket['requester']}; followers {', '.join(ticket['followers']) or '-'}")
    if ticket["merged_into"] is not None:
        click.echo(f"merged into [#{ticket['merged_into']}]: its conversation and mail to it are there")
    if ticket["merged_from"]:
        click.echo("merged into this one: " + ", ".join(f"[#{t}]" for t in ticket["merged_from"]))
    # A mail kept on the ticket that changed nothing and went nowhere (a forwarded address's outsider, an
    # unproven From, refused commands) is marked as in the agents' quotes (ticketd.domain.conversation).
    kept_apart = {e["message"]: NOT_SENT[e["kind"]] for e in ticket["events"]
                  if e["kind"] in NOT_SENT and e["message"] is not None}
    for m in ticket["messages"]:
        flag = (" (internal)" if m["internal"] else "") + (f" ({kept_apart[m['id']]})" if m["id"] in kept_apart else "")
        click.echo(f"\n--- {m['direction']} {m['created_at']} {m['from'] or '-'}{flag} [{m['matched_by'] or '-'}]")
        click.echo(m["text"])
        for a in m["attachments"]:
            click.echo(f"    [attachment] {a['filename']} ({a['size']} bytes, sha256 {a['sha256'][:12]})")
    click.echo("\nhistory:")
    for e in ticket["events"]:
        change = (f" {e['from']} -> {e['to']}" if e["from"] else f" -> {e['to']}") if e["to"] else ""
        click.echo(f"  {e['at']} {e['actor']}: {e['kind']}{change}" + (f" ({e['reason']})" if e["reason"] else ""))


@tickets.command("files")
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--out", type=click.Path(file_okay=False), help="copy the files into this directory")
@config_option
@json_option
def tickets_files(ticket_id: int, out: str | None, config: str | None, as_json: bool) -> None:
    """The files customers and agents sent on a ticket; with --out, copies of them (for one too large to mail)."""
    from ticketd.ticket_files import copy_files, files_of
    from ticketd.views import show_ticket

    settings = read_settings(config)
    ticket = show_ticket(open_engine(config, settings), ticket_id)
    if ticket is None:
        raise click.ClickException(f"no ticket {ticket_id}")
    files = files_of(ticket)
    copied = copy_files(files, settings.attachments_dir, Path(out)) if out else [(f, None) for f in files]
    if as_json:
        print_json([{**f, "copied_to": str(path) if path else None} for f, path in copied] if out else files)
        return
    if not files:
        click.echo(f"ticket [#{ticket_id}] has no files")
    for f, path in copied:
        if out:
            click.echo(f"{path}" if path else f"{f['filename']}: not on disk (erased), not copied")
            continue
        note = " (internal note)" if f["internal"] else ""
        click.echo(f"message {f['message']} from {f['from']}{note}: {f['filename']} "
                   f"({f['size']} bytes, {f['content_type']}, sha256 {f['sha256'][:12]})")



@tickets.command("merge")
@click.argument("source_id", metavar="SOURCE", type=TICKET_ID)
@click.argument("into_id", metavar="INTO", type=TICKET_ID)
@click.option("--yes", is_flag=True, help="merge without asking")
@config_option
@json_option
def tickets_merge(source_id: int, into_id: int, yes: bool, config: str | None, as_json: bool) -> None:
    """Merge ticket SOURCE into INTO: its messages, people and tags move there, and SOURCE is closed.

    Mail that names SOURCE (its reply address, its Message-IDs, its tag)
    goes to INTO from then on. Nobody gets mail about the merge.
    """
    from ticketd.merge import MergeRefused, merge

    app = open_app(config, writes=True)   # the rules too: the customer's words may open INTO, with its timers
    what = f"ticket [#{source_id}] into [#{into_id}]"
    try:
        if not yes:
            preview = merge(app, source_id, into_id, dry_run=True)
            confirm(f"would merge {what}: {preview.summary()}", f"Merge {what}? Mail to [#{source_id}] then goes "
                     f"to [#{into_id}]", f"not merged: no terminal to confirm on; run again with --yes to merge "
                     f"{what}", as_json)
        merged = merge(app, source_id, into_id)
    except MergeRefused as exc:
        raise click.ClickException(f"not merged: {exc}") from None
    if as_json:
        print_json({"source": source_id, "into": into_id, "moved": merged.counts(), "assignee": merged.assignee,
                    "reopened_from": merged.reopened_from})
    else:
        click.echo(f"ticket [#{source_id}] merged into [#{into_id}]: {merged.summary()}; "
                   f"[#{source_id}] is closed")


@tickets.command("assign")
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("target", metavar="AGENT_OR_GROUP")
@config_option
def tickets_assign(ticket_id: int, target: str, config: str | None) -> None:
    """Give a ticket to an agent (address or full name; even an away one), or to a group by its strategy; the
    agent is told."""
    from ticketd.admin import assign

    app, (assignee, outbox_ids) = admin_change(config, lambda app: assign(app, ticket_id, target))
    who = assignee or f"nobody yet: it waits in {target} for someone available"
    mail = mail_goes(app.settings, "the mail") if outbox_ids else "no mail to send"
    click.echo(f"ticket [#{ticket_id}] assigned to {who}; {mail}")


@tickets.command("close")
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--reason", help="why, for the history and the customer's closing mail")
@click.option("--silent", is_flag=True, help="no closing mail (and rating request) to the customer")
@config_option
def tickets_close(ticket_id: int, reason: str | None, silent: bool, config: str | None) -> None:
    """Close a ticket as an agent's #close does, logged as the admin's; the customer gets the closing mail."""
    from ticketd.admin import close

    app, outbox_ids = admin_change(config, lambda app: close(app, ticket_id, reason, tell_customer=not silent))
    mail = mail_goes(app.settings, "the mail") if outbox_ids else "no mail to send"
    click.echo(f"ticket [#{ticket_id}] closed; {mail}")


@tickets.command("follow")
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("address")
@config_option
def tickets_follow(ticket_id: int, address: str, config: str | None) -> None:
    """Make someone a follower of a ticket, as an agent's #follow does: they get its public replies from now on."""
    from ticketd.admin import follow

    _app, added = admin_change(config, lambda app: follow(app, ticket_id, address))
    click.echo(f"{added} follows ticket [#{ticket_id}]")


@tickets.command("unfollow")
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("address")
@config_option
def tickets_unfollow(ticket_id: int, address: str, config: str | None) -> None:
    """Take a follower off a ticket, as an agent's #unfollow does: they get its public replies no more."""
    from ticketd.admin import unfollow

    _app, removed = admin_change(config, lambda app: unfollow(app, ticket_id, address))
    click.echo(f"{removed} no longer follows ticket [#{ticket_id}]")
