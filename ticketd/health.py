"""Whether `ticketd status` finds the desk healthy: its problems, and the exit status that tells monitoring."""

from __future__ import annotations

from dataclasses import dataclass, field

# The Nagios plugin convention (Nagios Plugin Development Guidelines, "Plugin Return Codes"), which Icinga,
# Sensu, Zabbix's external checks and check_mk read too. It also works where only zero and non-zero are told
# apart: systemd's ExecCondition (1-254 skips the unit), cron's `ticketd status || alert`. A bare 0/1 would
# make every fault a WARNING in Nagios, and a stopped desk would page nobody.
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "ok", WARNING: "warning", CRITICAL: "critical", UNKNOWN: "unknown"}

# Which state wins when several parts have problems: a part known to be down outweighs one status could not
# look at, which could hide a worse one and so outweighs a mere warning.
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


@dataclass(frozen=True)
class Health:
    """The worst state of the problems found, and each problem: the part, its state and one line."""
    state: int = OK
    problems: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """The fields `status --json` adds at its top level."""
        return {"healthy": self.state == OK, "health": NAMES[self.state], "problems": self.problems}

    def line(self) -> str:
        """The first line of `ticketd status`, the one a Nagios check shows: `CRITICAL: what; what`."""
        if not self.problems:
            return "OK"
        return f"{NAMES[self.state].upper()}: " + "; ".join(p["text"] for p in self.problems)


def _problem(part: str, state: int, text: str) -> tuple[int, dict]:
    return state, {"part": part, "state": NAMES[state], "text": text}


def _found(desk: dict) -> list[tuple[int, dict]]:
    found = []
    daemon = desk["daemon"]
    if daemon["running"] is None:
        found.append(_problem("daemon", UNKNOWN, f"cannot tell whether the daemon runs: {daemon['error']}"))
    elif not daemon["running"]:
        # Nothing is received, processed, sent or timed: the desk is down.
        found.append(_problem("daemon", CRITICAL, "the daemon is not running"))
    queue = desk["queue"]
    if queue["backend"] == "redis" and not queue["reachable"]:
        # No job runs: mail waits in the outbox and tickets wait unassigned until Redis answers.
        found.append(_problem("queue", CRITICAL, f"Redis at {queue['url']} does not answer: {queue['error']}"))
    for box in desk["imap"]:
        # One way in of several fails (the SMTP receiver and other mailboxes still take mail), and mail to it
        # waits on its server: a warning. A mailbox not polled yet is a daemon that just started.
        if box["state"] == "failing":
            found.append(_problem("imap", WARNING, f"mailbox {box['mailbox']} failing since {box['failing_since']}: "
                                                   f"{box['error']}"))
    return found


def assess(desk: dict) -> Health:
    """The health of what `views.desk_status` (with `queue` and `imap`) describes."""
    found = _found(desk)
    if not found:
        return Health()
    return Health(max((state for state, _ in found), key=_SEVERITY.__getitem__), [p for _, p in found])


def unreachable_database(message: str) -> Health:
    """A database status cannot use: the daemon cannot either, and nothing else can be looked at."""
    state, problem = _problem("database", CRITICAL, message)
    return Health(state, [problem])
