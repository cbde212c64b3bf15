"""`ticketd outbox`: mail to send, what waits or failed, sent again or dismissed."""

from __future__ import annotations

import logging

import click

from ticketd.cli.common import (
    ROW_ID,
    config_option,
    dismissed_line,
    ids_or_all,
    json_option,
    mail_goes,
    open_engine,
    open_for_change,
    print_json,
    read_settings,
    who_runs,
)
from ticketd.domain.notices import DELIVERY_FAILED

OUTBOX_STATES = ("pending", "sending", "failed", "sent", "dismissed")
UNSENT = ("pending", "sending", "failed")
RETRY_ACTOR = "admin:cli"


@click.group()
def outbox() -> None:
    """Mail to send: what waits or failed, and sending failed mail again."""


@outbox.command("list")
@config_option
@click.option("--state", "states", multiple=True, type=click.Choice(OUTBOX_STATES),
              help="only rows in this state (repeatable; default: pending, sending and failed; failed: not dismissed; "
                   "dismissed: failed rows dismissed by `outbox dismiss`)")
@click.option("--all", "every", is_flag=True, help="every row, sent and dismissed ones too")
@json_option
def outbox_list(config: str | None, states: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Mail to send, newest first (by default everything not sent yet and not dismissed)."""
    from ticketd.views import list_outbox

    if every and states:
        raise click.UsageError("--all lists every state: drop --state or --all")
    rows = list_outbox(open_engine(config), OUTBOX_STATES if every else states or UNSENT)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("nothing in the outbox" if every else f"no {' or '.join(states)} mail" if states else
                   "no mail to send")
    for r in rows:
        ticket = f"[#{r['ticket_id']}]" if r["ticket_id"] else "-"
        state = "dismissed" if r["dismissed_at"] else r["state"]
        click.echo(f"{r['id']:>6}  {state:<7} {r['attempts']:>3}x {ticket:>8}  {r['created_at']}  "
                   f"{r['recipient']:<28} {r['template']:<28} {_outbox_detail(r)}")


def _outbox_detail(row: dict) -> str:
    """When it goes next or went, the last error's first line, and who dismissed it."""
    when = f"sent {row['sent_at']}" if row["state"] == "sent" else (
        "" if row["state"] == "failed" else f"next {row['next_attempt_at']}")
    error = (row["last_error"] or "").strip().splitlines()
    return "  ".join(part for part in (when, error[0] if error else "", dismissed_line(row)) if part)


@outbox.command("dismiss")
@click.argument("outbox_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every failed row not dismissed yet")
@click.option("--reason", help="why, kept with the row (and in its ticket's history)")
@config_option
def outbox_dismiss(outbox_ids: tuple[int, ...], every: bool, reason: str | None, config: str | None) -> None:
    """Mark failed mail as looked at: kept as it is (`outbox list --state dismissed`), left out of
    `retry --all-failed` (its ID still sends it), and no longer a warning of `ticketd status`."""
    from ticketd.clock import iso, utcnow
    from ticketd.store.db import reading
    from ticketd.store.outbox import dismiss_failed, dismissal_of
    from ticketd.store.tickets import add_event

    wanted = ids_or_all(outbox_ids, every)
    _settings, engine = open_for_change(config)
    who = who_runs()
    with engine.begin() as conn:
        now = utcnow()
        dismissed = dismiss_failed(conn, wanted, who, reason, now)
        for r in dismissed:
            if r["ticket_id"] is not None:   # the ticket's history says what became of its mail
                add_event(conn, r["ticket_id"], now, RETRY_ACTOR, "delivery_dismissed", to_value=r["recipient"],
                          reason=f"{r['template']}: failed outbox {r['id']} dismissed by {who} with `ticketd outbox "
                                 "dismiss`" + (f": {reason}" if reason else ""))
    for r in dismissed:
        logging.getLogger("ticketd.admin").info("outbox %s dismissed by %s", r["id"], who)
        ticket = f" (ticket [#{r['ticket_id']}])" if r["ticket_id"] else ""
        click.echo(f"outbox {r['id']}: {r['template']} to {r['recipient']}{ticket} dismissed: kept failed, "
                   "listed by `ticketd outbox list --state dismissed`")
    problems = []
    with reading(engine) as conn:
        for outbox_id in sorted(set(wanted or ()) - {r["id"] for r in dismissed}):
            row = dismissal_of(conn, outbox_id)
            if row is not None and row["state"] == "failed":
                click.echo(f"outbox {outbox_id} was already dismissed by {row['dismissed_by']} at "
                           f"{iso(row['dismissed_at'])}")
            else:
                problems.append(f"no outbox row {outbox_id}" if row is None else
                                f"outbox {outbox_id} is {row['state']}, not failed: only failed mail is dismissed")
    if every and not dismissed:
        click.echo("nothing to dismiss: no failed mail waits to be looked at")
    if problems:
        raise click.ClickException("; ".join(problems))


@outbox.command("retry")
@click.argument("outbox_id", type=ROW_ID, required=False)
@click.option("--all-failed", is_flag=True, help="every failed row instead of one")
@config_option
def outbox_retry(outbox_id: int | None, all_failed: bool, config: str | None) -> None:
    """Send failed mail again: queued anew (a new outbox ID, after the mail already waiting to the same person
    about the same ticket), attempts reset, due now; the running daemon sends it at once."""
    if (outbox_id is None) != all_failed:
        raise click.UsageError("give one outbox ID or --all-failed")
    settings = read_settings(config)
    engine = open_engine(config, settings, writes=True)
    requeued, reports_left, bounced = _requeue_failed(engine, None if all_failed else [outbox_id])
    if outbox_id is not None and not requeued:
        from ticketd.store.db import reading
        from ticketd.store.outbox import state_of

        with reading(engine) as conn:
            state = state_of(conn, outbox_id)
        raise click.ClickException(f"no outbox row {outbox_id} (a row sent again has a new ID: "
                                   "`ticketd outbox list`)" if state is None else
                                   f"outbox {outbox_id} is {state}, not failed: nothing to retry")
    for r in requeued:
        ticket = f" (ticket [#{r['ticket_id']}])" if r["ticket_id"] else ""
        click.echo(f"outbox {r['retried_id']}: {r['template']} to {r['recipient']}{ticket} is pending again as "
                   f"outbox {r['id']}, Message-ID <{r['message_id']}>")
    reports = f"{reports_left} failed {DELIVERY_FAILED} mail{'' if reports_left == 1 else 's'}"
    if not requeued:
        # Only the agents' failure reports may be failed: they are not "no failed mail", and nothing was retried.
        if reports_left or not bounced:
            click.echo("no failed mail" if not reports_left else
                       f"no failed mail to retry but {reports}, which --all-failed leaves failed (retry one by its "
                       "ID to send it, or `ticketd outbox dismiss` it)")
        if bounced:
            click.echo(_bounced_left(bounced))
        return
    if reports_left:
        click.echo(f"{reports} left failed: they report the failures just retried, and a mail that fails again is "
                   "reported anew (retry one by its ID to send it, or `ticketd outbox dismiss` it)")
    if bounced:
        click.echo(_bounced_left(bounced))
    click.echo(mail_goes(settings, "it" if len(requeued) == 1 else "them"))


# How many of the rows --all-failed leaves for a bounced recipient are named, one by one.
BOUNCED_NAMED = 10


def _bounced_left(rows: list[dict]) -> str:
    """What --all-failed left failed for a recipient that bounced, and why: sent again, it bounces again."""
    named = ", ".join(f"outbox {r['id']} to {r['recipient']}" + (f" (ticket [#{r['ticket_id']}])"
                                                                 if r["ticket_id"] else "")
                      for r in rows[:BOUNCED_NAMED]) + (", ..." if len(rows) > BOUNCED_NAMED else "")
    one = len(rows) == 1
    return (f"{len(rows)} failed mail{'' if one else 's'} to an address that bounced left failed: {named}. A "
            f"delivery report proved {'that address' if one else 'those addresses'} undeliverable on "
            f"{'its ticket' if one else 'their tickets'}, so sent again {'it' if one else 'they'} would bounce "
            f"again (retry one by its ID to send it all the same, or `ticketd outbox dismiss` it)")


def _requeue_failed(engine, outbox_ids: list[int] | None) -> tuple[list[dict], int, list[dict]]:
    """Failed rows queued anew, each retry an event on its ticket; (rows, reports left, rows left for a
    recipient that bounced).

    Every failed row but the agents' failure reports, whose news the retry
    makes stale ("the customer has not seen it" as the mail goes out again),
    and but the mail to an address a delivery report proved bounced on its
    ticket, which would only bounce again; one asked for by its ID is sent.
    One transaction per ticket, holding its lock as every writer of its mail does (ticketd/store/outbox.py): the
    retried mail goes after what its line already holds, in the order the
    failed rows were queued.
    """
    from itertools import groupby

    from ticketd.clock import utcnow
    from ticketd.store.db import reading
    from ticketd.store.outbox import failed_count, failed_to_bounced, failed_to_retry, requeue_failed
    from ticketd.store.tickets import add_event, lock_ticket

    every = outbox_ids is None
    except_templates = (DELIVERY_FAILED,) if every else ()
    with reading(engine) as conn:
        failed = failed_to_retry(conn, outbox_ids, except_templates, except_bounced=every)
        bounced = failed_to_bounced(conn, except_templates) if every else []
    requeued = []
    for ticket_id, rows in groupby(sorted(failed, key=lambda r: (r[1] is None, r[1] or 0, r[0])), lambda r: r[1]):
        with engine.begin() as conn:
            ticket = lock_ticket(conn, ticket_id) if ticket_id is not None else None
            now = utcnow()
            for outbox_id, _ in rows:
                r = requeue_failed(conn, outbox_id, now)   # None: retried meanwhile by another
                if r is None:
                    continue
                requeued.append(r)
                if ticket is not None:
                    add_event(conn, ticket_id, now, RETRY_ACTOR, "delivery_retried", to_value=r["recipient"],
                              reason=f"{r['template']}: outbox {r['retried_id']} sent again as outbox {r['id']} "
                                     "by `ticketd outbox retry`")
    if not except_templates:
        return sorted(requeued, key=lambda r: r["retried_id"]), 0, bounced
    with reading(engine) as conn:
        return sorted(requeued, key=lambda r: r["retried_id"]), failed_count(conn, except_templates), bounced
