"""Reload rules.yaml on change or SIGHUP and re-plan the armed timers; a file that fails validation is never applied."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from ticketd.app import App
from ticketd.assignment import keep_cursor_places, release_departed, sweep_unassigned
from ticketd.domain.rules import RuleSet
from ticketd.regrouping import regroup_stranded
from ticketd.rules_file import RulesError, load_rules_bytes, summary
from ticketd.rules_in_force import Refused, note_rules_in_force
from ticketd.timer_replan import replan_timers

log = logging.getLogger("ticketd.rules")

# Set on the App while a re-plan of the armed timers is owed (it failed, say
# with the database down): the rules those timers still follow.
_TIMERS_PLANNED_UNDER = "timers_planned_under"
# Set on the App once it refused a rules file, until rules are swapped in or the file is back to those in force:
# the file's digest and why (a Refused), noted for the commands that act by the rules (ticketd/rules_in_force.py).
_REFUSED = "rules_refused"
# How often the watcher tries an owed re-plan again.
REPLAN_RETRY_SECONDS = 10.0


def reload(app: App, data: bytes | None = None) -> bool:
    """Load the rules file (or `data`, its bytes already read) and swap it in if valid; True if new rules are in force.

    On any error the last good rules stay in force and every message is
    logged at ERROR: an admin must never get a silently half-applied file.
    """
    path = app.settings.rules_file
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.error("rules file %s cannot be read (%s); keeping rules %s", path, exc.strerror,
                      app.rules.digest[:12])
            return False
    digest = hashlib.sha256(data).hexdigest()
    if digest == app.rules.digest:
        setattr(app, _REFUSED, None)   # the file is the rules in force again
        return False
    try:
        # The bytes hashed are the bytes loaded: a second read could see a newer, half-written file.
        rules = load_rules_bytes(data, str(path))
    except RulesError as exc:
        log.error("rules file %s NOT applied (%d errors); keeping rules %s", path, len(exc.errors),
                  app.rules.digest[:12])
        for line in exc.errors:
            log.error("  %s", line)
        setattr(app, _REFUSED, Refused(digest, f"it has {len(exc.errors)} error(s): `ticketd rules check` "
                                               "lists them"))
        return False
    if app.rules.agents and not rules.agents:
        # Valid YAML, but every open ticket would lose its agent at once: an `agents:` block cut out
        # by mistake, or a file from another desk. A desk truly left without agents starts with it.
        log.error("rules file %s NOT applied: it names no agents, and the %d in force would lose every open "
                  "ticket; keeping rules %s (to run the desk without agents, restart ticketd with this file)",
                  path, len(app.rules.agents), app.rules.digest[:12])
        setattr(app, _REFUSED, Refused(digest, f"it names no agents, and the {len(app.rules.agents)} in force "
                                               "would lose every open ticket"))
        return False
    previous, app.rules = app.rules, rules
    setattr(app, _REFUSED, None)
    log.info("rules reloaded from %s: %s", path, summary(rules))
    log_warnings(rules)
    # After the swap: a timer armed from now on follows the new rules, and
    # those armed before are re-planned (PRODUCT.md: never half applied).
    replan_armed_timers(app, timers_planned_under(app) or previous)
    # A group renamed or removed leaves its open tickets to the routes in force;
    # an agent removed from the file leaves their open tickets to their groups;
    # someone may have become available (away: false, a higher max_open). Round robin first goes on
    # where an agent who left a group stood, for their tickets and every one after.
    try:
        keep_cursor_places(app, previous)
        regroup_stranded(app)
        release_departed(app)
        sweep_unassigned(app, grace_seconds=0)
    except Exception:
        log.exception("assigning tickets after the reload failed; the sweep and the next start retry")
    return True


def log_warnings(rules: RuleSet) -> None:
    """Each of the rules' warnings at WARNING, as `ticketd rules check` prints them (at start and on each reload)."""
    for line in rules.warnings:
        log.warning("%s", line)


def refused(app: App) -> Refused | None:
    """The rules file the daemon refused last while keeping the rules in force, and why; None if none since."""
    return getattr(app, _REFUSED, None)


def timers_planned_under(app: App) -> RuleSet | None:
    """The rules the armed timers still follow while their re-plan after a reload is owed; None if none is."""
    return getattr(app, _TIMERS_PLANNED_UNDER, None)


def replan_armed_timers(app: App, planned_under: RuleSet) -> bool:
    """Re-plan the armed timers from `planned_under` to the rules in force; False (and owed) if that failed."""
    try:
        done = replan_timers(app, planned_under, app.rules)
    except Exception:
        setattr(app, _TIMERS_PLANNED_UNDER, planned_under)
        log.exception("timers NOT re-planned for rules %s: armed timers keep the due times of rules %s until "
                      "this succeeds; trying again every %.0fs", app.rules.digest[:12], planned_under.digest[:12],
                      REPLAN_RETRY_SECONDS)
        return False
    setattr(app, _TIMERS_PLANNED_UNDER, None)
    log.info("timers re-planned: %s", done)
    if done.due_now:
        app.sweep_now()   # a time already past fires now, not at the next sweep
    return True


class RulesWatcher:
    """Polls the rules file once a second (mtime, size, then content hash).

    A change is loaded only once the file has stopped changing for `settle`
    seconds: an editor that truncates and then writes, or a large file
    written in pieces, would otherwise be loaded half written, and a half
    list of agents is valid YAML that unassigns everyone cut off.
    """

    def __init__(self, app: App, interval: float = 1.0, settle: float = 0.5, *, notes: bool = False) -> None:
        """Watch app.settings.rules_file every `interval` seconds; hook SIGHUP to an immediate reload.

        `notes`: note the rules in force under data_dir as it starts and on each reload (`ticketd run`'s
        watcher, for `ticketd status`; a worker's, maybe on another host, leaves the note to the daemon).
        """
        self.app = app
        self.notes = notes
        self.interval = interval
        self.settle = settle
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._replan_tried = 0.0   # time.monotonic() of the last try of an owed re-plan
        self._missing_told = False   # the file is gone and the log said so
        self._thread = threading.Thread(target=self._run, name="rules-watch", daemon=True)
        # daemon.run() hooks SIGHUP to this (ticketd/daemon.py).
        app.reload_rules = self.reload

    def reload(self) -> bool:
        """SIGHUP: reload now, and say so even when the file is unchanged or still broken."""
        with self._lock:
            changed = reload(self.app)
            self._note()   # the new rules in force, or the file refused
            if not changed:
                log.info("SIGHUP: rules %s stay in force", self.app.rules.digest[:12])
                if (owed := timers_planned_under(self.app)) is not None:
                    replan_armed_timers(self.app, owed)
            return changed

    def _retry_replan(self) -> None:
        """Try an owed re-plan of the armed timers again, every REPLAN_RETRY_SECONDS."""
        if timers_planned_under(self.app) is None or time.monotonic() - self._replan_tried < REPLAN_RETRY_SECONDS:
            return
        self._replan_tried = time.monotonic()
        with self._lock:
            if (owed := timers_planned_under(self.app)) is not None:
                replan_armed_timers(self.app, owed)

    def _stamp(self) -> tuple | None:
        """The file's (mtime, size, inode), or None if it cannot be seen (mid-rename, deleted)."""
        try:
            st = self.app.settings.rules_file.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _settled(self, stamp: tuple) -> bool:
        """Whether the file still has `stamp` after `settle` seconds, i.e. nobody is writing it now."""
        if self._stop.wait(self.settle):
            return False   # stopping: load nothing half seen
        return self._stamp() == stamp

    def _poll(self) -> None:
        """Reload if the file changed and has stopped changing; a file still being written waits a poll."""
        self._retry_replan()
        stamp = self._stamp()
        if stamp is None:
            self._tell_missing()
            return
        self._missing_told = False
        if stamp == self._seen or not self._settled(stamp):
            return   # unchanged, or still being written: the next poll looks again
        try:
            data = self.app.settings.rules_file.read_bytes()
        except OSError:
            return
        if self._stamp() != stamp:
            return   # written again while read: the next poll looks again
        self._seen = stamp
        digest = hashlib.sha256(data).hexdigest()
        last_refused = refused(self.app)
        if digest == (last_refused.digest if last_refused else self.app.rules.digest):
            return   # unchanged, or the same refused file already reported
        with self._lock:
            reload(self.app, data)   # also a file saved back as the rules in force: no longer one refused
            self._note()   # the new rules in force, or the file refused

    def _note(self) -> None:
        if self.notes:
            note_rules_in_force(self.app.settings.data_dir, self.app.rules.digest, refused(self.app))

    def _tell_missing(self) -> None:
        """Log once that the file is gone, as SIGHUP would: an editor's save renames a new file over the old
        one, so only a file still missing after `settle` seconds is gone. Its return is loaded as any change."""
        if self._missing_told or self._stop.wait(self.settle) or self._stamp() is not None:
            return
        self._missing_told = True
        log.error("rules file %s is gone (deleted or moved); keeping rules %s",
                  self.app.settings.rules_file, self.app.rules.digest[:12])

    def _run(self) -> None:
        """The watcher thread: route again the tickets of removed groups and release removed agents' tickets once,
        then poll until stopped."""
        # The file may have lost a group or an agent while the daemon was stopped; the sweep assigns what waits.
        try:
            regroup_stranded(self.app)
        except Exception:
            log.exception("routing again the tickets of removed groups failed; the next reload or start retries")
        try:
            release_departed(self.app)
        except Exception:
            log.exception("releasing the tickets of removed agents failed; the next reload or start retries")
        while not self._stop.wait(self.interval):
            try:
                self._poll()
            except Exception:
                log.exception("watching the rules file failed; trying again")

    def start(self) -> None:
        """Note the rules in force, then start polling in the background."""
        self._note()
        self._thread.start()   # the first poll compares the file with the rules in force

    def stop(self) -> None:
        """Stop polling (a settle wait in progress ends at once) and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)
