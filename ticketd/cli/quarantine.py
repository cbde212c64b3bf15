"""`ticketd quarantine`: mail that could not be processed, kept whole; listed, dismissed, re-driven."""

from __future__ import annotations

import logging
import sys
import time

import click

from ticketd.cli.common import (
    ROW_ID,
    config_option,
    dismissed_line,
    ids_or_all,
    json_option,
    open_app,
    open_engine,
    open_for_change,
    print_json,
    wake_daemon,
    who_runs,
)


@click.group()
def quarantine() -> None:
    """Mail that could not be processed, kept whole with the reason."""


@quarantine.command("list")
@click.option("--state", type=click.Choice(["quarantined", "dismissed"]), default="quarantined", show_default=True,
              help="quarantined: not dismissed yet; dismissed: dismissed by `quarantine dismiss`")
@click.option("--all", "every", is_flag=True, help="both")
@config_option
@json_option
def quarantine_list(state: str, every: bool, config: str | None, as_json: bool) -> None:
    """Quarantined mail, oldest first (by default what nobody has dismissed)."""
    from ticketd.views import list_quarantine

    rows = list_quarantine(open_engine(config), None if every else state == "dismissed")
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no mail in quarantine" if every else "no dismissed mail" if state == "dismissed" else
                   "no quarantined mail waits to be looked at")
    for q in rows:
        first_line = (q["reason"] or "").splitlines()[0] if q["reason"] else ""
        line = f"{q['id']:>6}  {q['received_at']}  {q['size']:>9}  {q['message_id'] or '-'}  {first_line}"
        click.echo("  ".join(part for part in (line, dismissed_line(q)) if part))


@quarantine.command("dismiss")
@click.argument("raw_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every quarantined mail not dismissed yet")
@click.option("--reason", help="why, kept with the mail")
@config_option
def quarantine_dismiss(raw_ids: tuple[int, ...], every: bool, reason: str | None, config: str | None) -> None:
    """Mark quarantined mail as looked at: kept whole (`quarantine list --state dismissed`), `retry` still
    re-drives it, and `ticketd status` no longer warns of it."""
    from ticketd.clock import iso, utcnow
    from ticketd.store.db import reading
    from ticketd.store.inbox import dismiss_quarantined, quarantine_of

    wanted = ids_or_all(raw_ids, every)
    _settings, engine = open_for_change(config)
    who = who_runs()
    with engine.begin() as conn:
        dismissed = dismiss_quarantined(conn, wanted, who, reason, utcnow())
    for raw_id in dismissed:
        logging.getLogger("ticketd.admin").info("quarantined mail %s dismissed by %s", raw_id, who)
        click.echo(f"mail {raw_id} dismissed: kept in quarantine, listed by `ticketd quarantine list --state "
                   "dismissed`")
    problems = []
    with reading(engine) as conn:
        for raw_id in sorted(set(wanted or ()) - set(dismissed)):
            row = quarantine_of(conn, raw_id)
            if row is not None and row["state"] == "quarantined":
                click.echo(f"mail {raw_id} was already dismissed by {row['dismissed_by']} at "
                           f"{iso(row['dismissed_at'])}")
            else:
                problems.append(f"mail {raw_id} is not in quarantine")
    if every and not dismissed:
        click.echo("nothing to dismiss: no quarantined mail waits to be looked at")
    if problems:
        raise click.ClickException("; ".join(problems))


@quarantine.command("retry")
@click.argument("raw_ids", metavar="[ID]...", type=ROW_ID, nargs=-1)
@click.option("--all", "every", is_flag=True, help="every quarantined mail not dismissed yet")
@config_option
def quarantine_retry(raw_ids: tuple[int, ...], every: bool, config: str | None) -> None:
    """Re-drive quarantined mail through processing now, oldest first (a dismissed one by its ID: failing
    again, it is news); exit 1 if any is not in quarantine or fails again."""
    from ticketd.pipeline import ProcessingDeferred, process_raw
    from ticketd.store.inbox import requeue
    from ticketd.views import list_quarantine

    wanted = ids_or_all(raw_ids, every)
    app = open_app(config, writes=True)
    if wanted is None:
        wanted = [q["id"] for q in list_quarantine(app.engine)]
        if not wanted:
            click.echo("nothing to retry: no quarantined mail waits to be looked at")
            return
    # In arrival order, whatever order they were named in: an original opens its ticket before its reply.
    ordered = sorted(set(wanted))
    failed = processed = 0
    for n, raw_id in enumerate(ordered):
        if not requeue(app.engine, raw_id):
            click.echo(f"mail {raw_id} is not in quarantine", err=True)
            failed += 1
            continue
        try:
            outcome = process_raw(app, raw_id)
        except ProcessingDeferred as exc:
            rest = ordered[n + 1:]
            click.echo(f"mail {raw_id} is out of quarantine and waits: {exc}; the daemon takes it once that is "
                       "mended" + (f"; not retried, still in quarantine: {' '.join(map(str, rest))}" if rest else ""),
                       err=True)
            sys.exit(1)
        processed += outcome is not None and not outcome.quarantined
        if outcome is None:
            failed += not _said_what_the_daemon_did(app.engine, raw_id)
        elif outcome.quarantined:
            click.echo(f"mail {raw_id} failed again and stays in quarantine:\n{outcome.quarantined}", err=True)
            failed += 1
        elif outcome.matched_by == "copy":
            click.echo(f"mail {raw_id} processed: ticket {outcome.ticket_id} has it already (another delivery of "
                       f"it, its bytes changed on the way); not added twice")
        elif outcome.ticket_id is None:   # an agent's desk mail, say: about no ticket
            click.echo(f"mail {raw_id} processed: no ticket ({outcome.matched_by})")
        else:
            click.echo(f"mail {raw_id} processed: ticket {outcome.ticket_id} ({outcome.matched_by})")
    if processed:
        # What the mail queued (an acknowledgement, a notice) and a new ticket's assignment are jobs this
        # process cannot run: the daemon's sweep would take them only after its grace. Woken, it takes them now.
        wake_daemon(app.settings.data_dir)
    if failed:
        sys.exit(1)


# How long a retry beaten to its mail by the running daemon waits for the daemon to finish with it: one of its
# processing batches, which commits within a second or two.
DAEMON_FINISHES_SECONDS = 15.0


def _said_what_the_daemon_did(engine, raw_id: int) -> bool:
    """The running daemon took the mail back in line before this command could: say what became of it (the
    admin asked for its outcome, not for "taken"), once the daemon is done; False if it failed again."""
    from ticketd.store.db import reading
    from ticketd.store.inbox import fate_of

    taken = f"mail {raw_id} was taken by the running daemon first"
    deadline = time.monotonic() + DAEMON_FINISHES_SECONDS
    while True:
        with reading(engine) as conn:
            fate = fate_of(conn, raw_id)
        state = fate["state"] if fate else None
        if state not in ("received", "processing") or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if state == "done":
        how = f" ({fate['matched_by']})" if fate["matched_by"] else ""
        click.echo(f"{taken}, which processed it: " + (f"ticket {fate['ticket_id']}{how}"
                                                        if fate["ticket_id"] is not None else "no ticket"))
        return True
    if state == "quarantined":
        click.echo(f"{taken}, which failed it again: it stays in quarantine:\n{fate['reason']}", err=True)
        return False
    if state in ("received", "processing"):
        click.echo(f"{taken}, which has not finished with it after {DAEMON_FINISHES_SECONDS:.0f} s: "
                   "`ticketd quarantine list` and `ticketd tickets list` show what becomes of it")
        return True
    click.echo(f"{taken}, and it is {state or 'gone'} now")
    return True
