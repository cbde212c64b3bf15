"""Whether `ticketd status` finds the desk healthy: its problems, and the exit status that tells monitoring."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from jinja2.filters import do_filesizeformat

# The Nagios plugin convention (Nagios Plugin Development Guidelines, "Plugin Return Codes"), which Icinga,
# Sensu, Zabbix's external checks and check_mk read too. It also works where only zero and non-zero are told
# apart: systemd's ExecCondition (1-254 skips the unit), cron's `ticketd status || alert`. A bare 0/1 would
# make every fault a WARNING in Nagios, and a stopped desk would page nobody.
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "ok", WARNING: "warning", CRITICAL: "critical", UNKNOWN: "unknown"}

# Which state wins when several parts have problems: a part known to be down outweighs one status could not
# look at, which could hide a worse one and so outweighs a mere warning.
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


# Thresholds of the mail-flow checks (README.md, "Running it", lists each).
# Mail waiting this long for the processor means processing is stuck: bursts the daemon takes (bench/README.md)
# clear in well under it.
PROCESSING_STUCK_SECONDS = 5 * 60
# Quarantined and failed mail stays until retried or dismissed (`ticketd quarantine dismiss`, `ticketd outbox
# dismiss`: the admin looked at it): what happened within these days and nobody dismissed warns, so that one
# old case nobody dismissed does not keep the desk in WARNING for good and hide every new one.
QUARANTINE_RECENT_DAYS = 7
FAILED_RECENT_DAYS = 7
# Room for fewer than this many mails at smtp.max_message_bytes on a file system the desk writes to warns
# (250 MiB at the default 25 MiB); for less than one such mail it is critical: its files could not be written,
# and processing holds it and all mail after it until there is room (ticketd.pipeline.ProcessingDeferred).
DISK_LOW_MAILS = 10
# Mail not sent this long after it was queued: past a few retries (outbound.retry_base_seconds doubling from
# 30 s) and a recipient's greylisting.
OUTBOX_LATE_SECONDS = 30 * 60
# Mail waiting this long while nothing at all went out in that time: the smarthost, or delivery, is down.
OUTBOX_STUCK_SECONDS = 60 * 60
# Redis mode, after `ticketd run` started: the `ticketd worker`s started with it boot and beat
# (workers/broker_health.py, every 10 s) within this, so none seen yet is no problem.
WORKER_START_GRACE_SECONDS = 60
# agent_auth or customer_auth: when at least this many of the newest mails (ticketd.mail_auth_status) and none
# of them carries our MTA's Authentication-Results on top, every check they ask for fails. Fewer are no
# evidence: a new desk's first test mails, sent straight to the receiver.
MAIL_AUTH_EVIDENCE = 5
# What a check that always fails does, in the admin's words.
_AUTH_FAILING = {"agent_auth": "every agent's mail is refused",
                 "customer_auth": "a customer's mail that names a ticket only by its tag opens a new ticket"}


@dataclass(frozen=True)
class Health:
    """The worst state of the problems found, each problem (the part, its state, one line), and every check."""
    state: int = OK
    problems: list[dict] = field(default_factory=list)
    checks: dict[str, dict] = field(default_factory=dict)

    def summary(self) -> dict:
        """The fields `status --json` adds at its top level."""
        return {"healthy": self.state == OK, "health": NAMES[self.state], "problems": self.problems,
                "checks": self.checks}

    def line(self) -> str:
        """The first line of `ticketd status`, the one a Nagios check shows: `CRITICAL: what; what`."""
        if not self.problems:
            return "OK"
        return f"{NAMES[self.state].upper()}: " + "; ".join(p["text"] for p in self.problems)


def _problem(part: str, state: int, text: str) -> tuple[int, dict]:
    return state, {"part": part, "state": NAMES[state], "text": text}


def duration(seconds: float) -> str:
    """An age as status words it: `45 s`, `12 min`, `2 h 5 min`, `3 d 4 h` (rounded down)."""
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{hours // 24} d" + (f" {hours % 24} h" if hours % 24 else "")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _worst(states) -> int:
    return max(states, key=_SEVERITY.__getitem__, default=OK)


class _Found:
    """The problems found so far, and each check's state and detail."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, dict]] = []
        self.checks: dict[str, dict] = {}

    def check(self, name: str, problems: list[tuple[int, dict]], **detail) -> None:
        self.problems.extend(problems)
        self.checks[name] = {"state": NAMES[_worst(state for state, _ in problems)], **detail}


def _daemon(desk: dict) -> list[tuple[int, dict]]:
    daemon = desk["daemon"]
    if daemon["running"] is None:
        return [_problem("daemon", UNKNOWN, f"cannot tell whether the daemon runs: {daemon['error']}")]
    if not daemon["running"]:
        # Nothing is received, processed, sent or timed: the desk is down.
        return [_problem("daemon", CRITICAL, "the daemon is not running")]
    return []


def _queue(queue: dict) -> list[tuple[int, dict]]:
    if queue["backend"] == "redis" and not queue["reachable"]:
        # No job runs: mail waits in the outbox and tickets wait unassigned until Redis answers.
        return [_problem("queue", CRITICAL, f"Redis at {queue['url']} does not answer: {queue['error']}")]
    if queue["backend"] == "redis" and queue.get("write_error"):
        # It answers and reads, so the rest looks well; but no job can be enqueued or taken.
        return [_problem("queue", CRITICAL, f"Redis at {queue['url']} refuses writes: {queue['write_error']}: "
                                            "no job is enqueued or taken, mail waits in the outbox")]
    return []


def _workers(queue: dict, daemon: dict) -> list[tuple[int, dict]]:
    """Redis mode: only `ticketd worker`s send mail (`ticketd run`'s sweep still assigns tickets, late)."""
    if queue.get("workers"):
        return _workers_without_database(queue["workers"], queue.get("workers_without_database") or [])
    up = daemon.get("up_seconds")
    if daemon["running"] and up is not None and up < WORKER_START_GRACE_SECONDS:
        return []
    last = queue.get("last_beat_seconds_ago")
    # No beat left at all: the workers took themselves off as they stopped (or never ran); a beat left behind
    # ages from a worker that died or lost Redis, and says for how long nobody has been seen.
    none = "no `ticketd worker` running" if last is None else f"no `ticketd worker` seen for {duration(last)}"
    if queue["waiting"]:
        return [_problem("workers", CRITICAL, f"{none}, with {_n(queue['waiting'], 'job')} waiting in Redis: "
                                              "no mail is sent (tickets are still assigned, their agents' "
                                              "notices wait)")]
    # Nothing waits yet; the next mail's acknowledgement and agent's notice would.
    return [_problem("workers", WARNING, f"{none}: mail to send would wait")]


def _workers_without_database(alive: int, troubled: list[dict]) -> list[tuple[int, dict]]:
    """Workers that beat but cannot reach the database take jobs and give them up: mail is not sent by them."""
    if not troubled:
        return []
    first = troubled[0]   # the longest outage
    which = (f"`ticketd worker` {first['worker']}" if len(troubled) == 1
             else f"{len(troubled)} `ticketd worker`s ({', '.join(t['worker'] for t in troubled)})")
    what = (f"{which} cannot reach the database for {duration(first['seconds'])} ({first['error'][:200]})")
    if len(troubled) < alive:
        return [_problem("workers", WARNING, f"{what}: it takes no jobs, the other workers do them")]
    return [_problem("workers", CRITICAL, f"{what}: no worker does any job, no mail is sent")]


def _imap(boxes: list[dict]) -> list[tuple[int, dict]]:
    # One way in of several fails (the SMTP receiver and other mailboxes still take mail), and mail to it
    # waits on its server: a warning. A mailbox not polled yet is a daemon that just started.
    found = [_problem("imap", WARNING, f"mailbox {box['mailbox']} failing since {box['failing_since']}: "
                                       f"{box['error']}")
             for box in boxes if box["state"] == "failing"]
    # Mail over max_message_bytes stays on the server, and no sender can be told by mail (SMTP answers
    # 552): only the admin can take it, so status says so for as long as it lies there.
    for box in boxes:
        if box.get("oversized"):
            them = "it" if box["oversized"] == 1 else "them"
            found.append(_problem("imap", WARNING, f"mailbox {box['mailbox']}: {oversized(box)} left on the server, "
                                                   f"not taken: raise its max_message_bytes in ticketd.yaml to take "
                                                   f"{them}, or handle {them} in the mailbox"))
        # Mail the server refused to hand out, set aside so that the rest flows: the mailbox polls well, and
        # the message waits there unread, asked for again hourly and at each start; only the admin can mend it.
        if box.get("set_aside"):
            n = box["set_aside"]
            found.append(_problem("imap", WARNING, f"mailbox {box['mailbox']}: {set_aside(box)}, left unread on "
                                                   f"the server: it refused to hand {'it' if n == 1 else 'them'} "
                                                   "out (its log says why); mend or remove "
                                                   f"{'it' if n == 1 else 'them'} there, and the poller takes "
                                                   f"{'it' if n == 1 else 'them'} at its next try"))
    return found


def set_aside(box: dict) -> str:
    """"2 messages set aside (uid 7, 9)", for a mailbox's problem and status line."""
    n, uids = box["set_aside"], box.get("set_aside_uids") or []
    return f"{_n(n, 'message')} set aside (uid {', '.join(map(str, uids))})"


def oversized(box: dict) -> str:
    """"2 messages over max_message_bytes (the largest 31.5 MB)", for a mailbox's problem and status line.

    Sizes as the mails to agents give an attachment's (jinja2's filesizeformat).
    """
    count, largest = box["oversized"], do_filesizeformat(box["oversized_largest_bytes"] or 0)
    if count == 1:
        return f"1 message over max_message_bytes ({largest})"
    return f"{count} messages over max_message_bytes (the largest {largest})"


def _rules(rules: dict) -> list[tuple[int, dict]]:
    # The desk runs on (the daemon keeps the rules it loaded before), but the edit the admin saved is not in
    # force, and a restart would refuse to start.
    if rules["valid"] and rules.get("in_force") is False:
        why = (" (it names no agents, and the daemon's own would lose every open ticket at once: restart "
               "ticketd to run the desk without agents)" if rules.get("agents") == 0 else "")
        return [_problem("rules", WARNING, f"{rules['file']} as saved is not in force: the running daemon keeps "
                                           f"the rules it loaded before{why}; its log says why")]
    if rules["valid"]:
        return []
    errors = rules["errors"]
    more = f" (and {_n(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
    return [_problem("rules", WARNING, f"{errors[0]}{more}: the running daemon keeps the rules it loaded "
                                       "before, and would not start with these; `ticketd rules check` lists "
                                       "every error")]


def _no_group(no_group: dict) -> list[tuple[int, dict]]:
    """Open tickets nobody will take: unassigned, with no group for the sweep to give them out in."""
    n = no_group["open"]
    if not n:
        return []
    ids = ", ".join(f"#{i}" for i in no_group["ids"]) + (", ..." if n > len(no_group["ids"]) else "")
    return [_problem("tickets", WARNING, f"{_n(n, 'open ticket')} with no group and no agent, which nobody will "
                                         f"take ({ids}): no route of the rules in force gives "
                                         f"{'it' if n == 1 else 'them'} a group; give each to a group or an agent "
                                         "with `ticketd tickets assign ID GROUP-or-AGENT`")]


def _processing(inbox: dict) -> list[tuple[int, dict]]:
    """Mail accepted (250, or taken from IMAP) and not turned into tickets: customers wait unanswered."""
    oldest = inbox["oldest_waiting_seconds"]
    if oldest is None or oldest < PROCESSING_STUCK_SECONDS:
        return []
    waiting = inbox["waiting"] + inbox["processing"]
    return [_problem("processing", CRITICAL, f"processing is stuck: {_n(waiting, 'mail')} received and not made "
                                             f"into tickets, the oldest for {duration(oldest)}")]


def _disks(disks: list[dict], mail_bytes: int) -> list[tuple[int, dict]]:
    """A file system the desk writes to with too little room, read-only, or that status cannot look at."""
    found = []
    for disk in disks:
        where = f"{disk['path']} ({', '.join(disk['holds'])})"
        # What stops: processing writes the files, the receiver the database before its 250.
        then = " and ".join(({"data_dir": "mail with files waits unprocessed",
                              "database": "the database cannot grow, so mail is refused with 451"})[role]
                            for role in disk["holds"])
        if "error" in disk:
            found.append(_problem("disk", UNKNOWN, f"cannot look at {where}: {disk['error']}"))
        elif disk["read_only"]:
            found.append(_problem("disk", CRITICAL, f"{where} is on a read-only file system: {then}"))
        elif disk["free_bytes"] < DISK_LOW_MAILS * mail_bytes:
            state = CRITICAL if disk["free_bytes"] < mail_bytes else WARNING
            room = "less than one mail" if state == CRITICAL else f"room for fewer than {DISK_LOW_MAILS} mails"
            found.append(_problem("disk", state, f"{file_size(disk['free_bytes'])} free on {where}: {room} of "
                                                 f"smtp.max_message_bytes ({file_size(mail_bytes)}); once it is "
                                                 f"full, {then}"))
    return found


def file_size(n: int) -> str:
    """Bytes as status shows them: `79.3 GiB`."""
    return do_filesizeformat(n, binary=True)


def _mail_auth(auth: dict) -> list[tuple[int, dict]]:
    if auth["looked_at"] < MAIL_AUTH_EVIDENCE or auth["from_trusted"]:
        return []
    seen = [f"{authserv} on {n}" for authserv, n in auth["topmost_from"].items()]
    if auth["without_header"]:
        seen.append(f"none on {auth['without_header']}")
    asked = " and ".join(auth["asked_by"])
    return [_problem("mail_auth", WARNING, (
        f"none of the newest {auth['looked_at']} mails carries Authentication-Results from "
        f"{', '.join(auth['trusted_authserv_ids'])} on top, which {asked} "
        f"{'asks' if len(auth['asked_by']) == 1 else 'ask'} for (the topmost came from {', '.join(seen)}): "
        + "; ".join(_AUTH_FAILING[part] for part in auth["asked_by"])
        + ". Have our MTA write it, or list the authserv-id it writes in agent_auth.trusted_authserv_ids"))]


def _quarantine(recent: int) -> list[tuple[int, dict]]:
    if not recent:
        return []
    return [_problem("quarantine", WARNING, f"{_n(recent, 'mail')} quarantined in the last {QUARANTINE_RECENT_DAYS} "
                                            f"days, not made into {'a ticket' if recent == 1 else 'tickets'}: see "
                                            "`ticketd quarantine list`, dismiss what you have looked at with "
                                            "`ticketd quarantine dismiss`")]


def _outbox(out: dict, flow: dict) -> list[tuple[int, dict]]:
    found = []
    if flow["failed_recent"]:
        n = flow["failed_recent"]
        found.append(_problem("outbox", WARNING, f"{_n(n, 'mail')} failed for good in the last {FAILED_RECENT_DAYS} "
                                                 "days: see `ticketd outbox list --state failed`, send "
                                                 f"{'it' if n == 1 else 'them'} again with `ticketd outbox retry` "
                                                 "or dismiss with `ticketd outbox dismiss`"))
    oldest = out["oldest_unsent_seconds"]
    error = (flow["oldest_unsent_error"] or "").strip().splitlines()
    why = f" (last error: {error[0][:200]})" if error else ""
    silent = flow["last_sent_seconds_ago"] is None or flow["last_sent_seconds_ago"] >= OUTBOX_STUCK_SECONDS
    if oldest is not None and oldest >= OUTBOX_STUCK_SECONDS and silent:
        # Nothing goes out at all, not one recipient's trouble: customers get no answer, agents no notice.
        unsent = out["pending"] + out["sending"]
        found.append(_problem("outbox", CRITICAL, f"nothing sent for over {duration(OUTBOX_STUCK_SECONDS)} while "
                                                  f"{_n(unsent, 'mail')} {'waits' if unsent == 1 else 'wait'}, "
                                                  f"the oldest for {duration(oldest)}{why}: see `ticketd outbox list`"))
    elif flow["unsent_late"]:
        n = flow["unsent_late"]
        found.append(_problem("outbox", WARNING, f"{_n(n, 'mail')} queued more than {duration(OUTBOX_LATE_SECONDS)} "
                                                 f"ago {'is' if n == 1 else 'are'} not sent yet, the oldest for "
                                                 f"{duration(oldest or 0)}{why}: see `ticketd outbox list`"))
    return found


def mail_flow(engine) -> dict:
    """What the mail-flow checks need from the database beyond `desk_status`'s counts (indexed look-ups)."""
    from ticketd.clock import utcnow
    from ticketd.store.db import reading
    from ticketd.store.mail_flow import mail_flow as look

    now = utcnow()
    with reading(engine) as conn:
        flow = look(conn, quarantined_since=now - timedelta(days=QUARANTINE_RECENT_DAYS),
                    failed_since=now - timedelta(days=FAILED_RECENT_DAYS),
                    late_before=now - timedelta(seconds=OUTBOX_LATE_SECONDS))
    return {"quarantined_recent": flow.quarantined_recent, "failed_recent": flow.failed_recent,
            "unsent_late": flow.unsent_late, "oldest_unsent_error": flow.oldest_unsent_error,
            "last_sent_seconds_ago": None if flow.last_sent_at is None else
            max(0.0, (now - flow.last_sent_at).total_seconds())}


def assess(desk: dict, flow: dict | None = None) -> Health:
    """The health of what `views.desk_status` (with `queue` and `imap`) and `mail_flow` describe.

    Without `flow` (or `inbox`, `outbox`) the checks that read them are left out.
    """
    found = _Found()
    found.check("daemon", _daemon(desk))
    queue = desk["queue"]
    found.check("queue", _queue(queue))
    if queue["backend"] == "redis" and queue["reachable"]:
        from workers.broker_health import WORKER_GONE_SECONDS

        found.check("workers", _workers(queue, desk["daemon"]), alive=queue.get("workers"),
                    without_database=len(queue.get("workers_without_database") or []),
                    jobs_waiting=queue["waiting"], gone_after_seconds=WORKER_GONE_SECONDS,
                    last_beat_seconds_ago=queue.get("last_beat_seconds_ago"),
                    start_grace_seconds=WORKER_START_GRACE_SECONDS, daemon_up_seconds=desk["daemon"].get("up_seconds"))
    found.check("imap", _imap(desk["imap"]), failing=sum(box["state"] == "failing" for box in desk["imap"]))
    if "rules" in desk:
        found.check("rules", _rules(desk["rules"]), errors=len(desk["rules"]["errors"]),
                    in_force=desk["rules"].get("in_force"))
    if "inbox" in desk:
        inbox = desk["inbox"]
        found.check("processing", _processing(inbox), waiting=inbox["waiting"] + inbox["processing"],
                    oldest_seconds=inbox["oldest_waiting_seconds"], stuck_after_seconds=PROCESSING_STUCK_SECONDS)
    # A desk whose rules have no group at all gives no ticket out by design: its tickets wait for nobody.
    if "no_group" in desk and desk.get("rules", {}).get("groups") != 0:
        found.check("tickets", _no_group(desk["no_group"]), no_group=desk["no_group"]["open"])
    if desk.get("mail_auth") is not None:
        auth = desk["mail_auth"]
        found.check("mail_auth", _mail_auth(auth), looked_at=auth["looked_at"], from_trusted=auth["from_trusted"],
                    evidence=MAIL_AUTH_EVIDENCE)
    if "disks" in desk:
        found.check("disk", _disks(desk["disks"], desk["max_message_bytes"]), low_mails=DISK_LOW_MAILS)
    if flow is not None:
        found.check("quarantine", _quarantine(flow["quarantined_recent"]), recent=flow["quarantined_recent"],
                    recent_days=QUARANTINE_RECENT_DAYS)
        if "outbox" in desk:
            out = desk["outbox"]
            found.check("outbox", _outbox(out, flow), failed_recent=flow["failed_recent"],
                        recent_days=FAILED_RECENT_DAYS, late=flow["unsent_late"],
                        late_after_seconds=OUTBOX_LATE_SECONDS, oldest_unsent_seconds=out["oldest_unsent_seconds"],
                        oldest_unsent_error=flow["oldest_unsent_error"],
                        last_sent_seconds_ago=flow["last_sent_seconds_ago"],
                        stuck_after_seconds=OUTBOX_STUCK_SECONDS)
    return Health(_worst(state for state, _ in found.problems), [p for _, p in found.problems], found.checks)


def cannot_look(part: str, state: int, message: str) -> Health:
    """Status could not look past `part` (settings, usage, the database): that one problem, its text one line."""
    head, *rest = [line.strip() for line in message.strip().splitlines() if line.strip()] or [""]
    state, problem = _problem(part, state, f"{head} {'; '.join(rest)}" if rest else head)
    return Health(state, [problem], {part: {"state": NAMES[state]}})


def unreachable_database(message: str) -> Health:
    """A database status cannot use: the daemon cannot either, and nothing else can be looked at."""
    return cannot_look("database", CRITICAL, message)
