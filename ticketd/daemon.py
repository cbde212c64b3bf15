"""`ticketd run`: the receiver in this process, processing and workers in a child; stop them cleanly."""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from ingest.imap import Poller
from ingest.smtp import STOP_SECONDS as RECEIVER_STOP_SECONDS
from ingest.smtp import Receiver
from ticketd.app import App, build_app
from ticketd.erase import RetentionKeeper, settle_interrupted_erasures
from ticketd.logs import configure_logging
from ticketd.outage import Outage
from ticketd.pidlock import AlreadyRunning, PidLock, pid_path
from ticketd.pipeline import ProcessingDeferred, drain
from ticketd.prepare_pool import ProcessPreparer
from ticketd.repeating_failures import RepeatingFailures
from ticketd.rules_watch import RulesWatcher, log_warnings, replan_armed_timers
from ticketd.settings import Settings, environment_sources
from ticketd.store.checkpoint import Checkpointer
from ticketd.store.db import ping
from ticketd.timer_replan import rules_timers_follow
from workers.database_pause import PauseWhileAway
from workers.runtime import WorkerPool, bind, make_broker, send_in_hand_seconds, worker_components

log = logging.getLogger("ticketd.daemon")
_failures = RepeatingFailures(log)   # processing with the database down fails the same way at every wake-up


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


# `ticketd run` stops the receiver first, then the back office: what the
# receiver committed in its last moments is processed before the processor
# exits, for at most this long (what is left waits for the next start).
LAST_PASS_SECONDS = 30
# The processor's stop waits for that pass, and for a batch begun at its deadline.
PROCESSOR_STOP_SECONDS = 2 * LAST_PASS_SECONDS


class Processor:
    """Turns committed raw mail into tickets, in arrival order, in one thread.

    One thread keeps the order a reply needs (its original is processed
    first); the raw table is the queue, so a restart simply carries on.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processor", daemon=True)
        self._deferred = Outage()   # a mail the desk cannot take now (data_dir full): told when it begins and ends

    def start(self) -> None:
        if self.app.settings.prepare_processes:
            self.app.preparer = ProcessPreparer(self.app.settings, self.app.signer,
                                                self.app.settings.prepare_processes)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.app.mail_arrived.wait(self.app.settings.sweep_seconds)
            self.app.mail_arrived.clear()
            try:
                try:
                    while drain(self.app) and not self._stop.is_set():
                        pass
                finally:
                    self.app.backlog.ended()   # nothing left, or processing fails: nobody waits for it
                _failures.worked()
                if (waited := self._deferred.worked()) is not None:
                    log.info("mail is made into tickets again, after waiting %.0f s", waited)
            except ProcessingDeferred as exc:   # retried at each wake-up, and every mail after it waits with it
                if self._deferred.failed(exc):
                    log.error("raw mail %s waits, and the mail after it: %s; taken again every few seconds until "
                              "it can be", exc.raw_id, exc)
                self._stop.wait(1)
            except Exception:  # the database is down: try again on the next wake-up
                _failures.failed("processing pass failed; retrying")
                self._stop.wait(1)
        self._last_pass()

    def _last_pass(self) -> None:
        """Mail the receiver committed before it stopped becomes tickets before we exit (bounded)."""
        deadline = time.monotonic() + LAST_PASS_SECONDS
        try:
            while drain(self.app) and time.monotonic() < deadline:
                pass
        except ProcessingDeferred as exc:
            log.warning("raw mail %s and the mail after it wait for the next start: %s", exc.raw_id, exc)
        except Exception:
            log.exception("the last processing pass failed; the mail waits for the next start")
        finally:
            self.app.backlog.ended()   # the workers stop next: none of their jobs waits for mail left to the next start

    def stop(self) -> None:
        self._stop.set()
        self.app.mail_arrived.set()
        self._thread.join(timeout=PROCESSOR_STOP_SECONDS)
        if self.app.preparer is not None:
            self.app.preparer.close()
            self.app.preparer = None


def build_back_office(app: App) -> list[Component]:
    """Everything of `ticketd run` but the SMTP receiver, in start order (stopped in reverse)."""
    components: list[Component] = [RulesWatcher(app, notes=True)]   # also sets app.reload_rules for SIGHUP
    if app.engine.dialect.name == "sqlite":
        components.append(Checkpointer(app.engine))
    components.extend(worker_components(app, in_process=app.settings.redis_url is None))
    components.append(Processor(app))
    # Also with retention off (its pass then runs no query): it sweeps files no row names, no one's data.
    components.append(RetentionKeeper(app))
    if app.settings.imap:
        components.extend(Poller(app, box) for box in app.settings.imap)
    return components


def build_components(app: App) -> list[Component]:
    """Everything `ticketd run` runs, in one process, in start order (stopped in reverse)."""
    return [*build_back_office(app), Receiver(app)]


def _stop_on_signals(reload=None, sweep=None, say=log.info) -> threading.Event:
    """SIGTERM and SIGINT stop; SIGHUP reloads the rules; SIGUSR1 sweeps now (`ticketd outbox retry`).

    `say` tells the first stopping signal (the back office, stopped by `ticketd run`, says it at DEBUG,
    so that one SIGTERM is one line); a second one while stopping is not told again.
    """
    stop = threading.Event()

    def on_signal(signum, _frame):
        if not stop.is_set():
            say("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if reload is not None:
        signal.signal(signal.SIGHUP, lambda *_: reload())
    if sweep is not None:
        signal.signal(signal.SIGUSR1, lambda *_: sweep())
    return stop


def _stop_all(components: list[Component]) -> None:
    for component in reversed(components):
        _stop_one(component)


def _stop_one(component: Component) -> None:
    """Stop one component; a failure is logged, and the others are stopped all the same."""
    try:
        component.stop()
    except Exception:
        log.exception("stopping %s failed", type(component).__name__)


def _stop_together(components: list[Component], deadline: float, ask_time: bool = False) -> None:
    """Stop components at once, each in a thread, waiting for them until `deadline` (time.monotonic()).

    Their waits overlap rather than add up, so the deadline bounds the
    whole stop; one still stopping then is named and left (its threads are
    daemon threads: the process ends all the same). `ask_time`: the wait
    asks the service manager for more time (the main process of a unit only).
    """
    stopping = [threading.Thread(target=_stop_one, args=(c,), name=f"stop {type(c).__name__}", daemon=True)
                for c in components]
    for thread in stopping:
        thread.start()
    for component, thread in zip(components, stopping):
        if ask_time:
            _wait_asking_time(thread.join, thread.is_alive, deadline)
        else:
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.error("%s did not stop by the back office's stop deadline; left to end with the process",
                      type(component).__name__)


# How long `ticketd run` waits for its processing process to start.
BACK_OFFICE_START_SECONDS = 120
# The back office's stop: its components all at once against one deadline, then the final WAL checkpoint
# (a PASSIVE one, which waits for nobody), then its interpreter's exit; `ticketd run` waits that long.
FINAL_CHECKPOINT_SECONDS = 10
BACK_OFFICE_EXIT_SECONDS = 10


def back_office_stop_seconds(app: App) -> float:
    """The back office's one stop deadline: the longest wait not to cut (the last pass, the mail on the wire),
    then the final checkpoint."""
    return max(PROCESSOR_STOP_SECONDS, send_in_hand_seconds(app)) + FINAL_CHECKPOINT_SECONDS


def back_office_wait_seconds(app: App) -> float:
    """How long `ticketd run` waits for its back office to stop before it kills it: past its deadline."""
    return back_office_stop_seconds(app) + BACK_OFFICE_EXIT_SECONDS


def run_stop_seconds(app: App) -> float:
    """The longest a stop of `ticketd run` takes: the receiver, then the back office; a service manager's
    stop timeout must be above it (deploy/ticketd.service)."""
    return RECEIVER_STOP_SECONDS + back_office_wait_seconds(app)


# `ticketd worker`'s stop: the database watch first (it must not resume the consumers being stopped), then the
# pool with the mail on the wire and the rules watcher together.
WORKER_WATCH_STOP_SECONDS = 10


def worker_stop_seconds(app: App) -> float:
    """The longest a stop of `ticketd worker` takes; a service manager's stop timeout must be above it
    (deploy/ticketd-worker@.service)."""
    return WORKER_WATCH_STOP_SECONDS + send_in_hand_seconds(app) + BACK_OFFICE_EXIT_SECONDS


def _stop_back_office(components: list[Component], app: App) -> None:
    """Everything at once, the checkpointer last (it leaves a short WAL behind), within one deadline."""
    deadline = time.monotonic() + back_office_stop_seconds(app)
    last = [c for c in components if isinstance(c, Checkpointer)]
    _stop_together([c for c in components if c not in last], deadline - FINAL_CHECKPOINT_SECONDS)
    _stop_together(last, deadline)


def run(app: App) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean stop, 1 if the processing process died.

    Two processes, so that two cores work and a client's wait for 250 does
    not queue behind ticket processing for one interpreter's lock: this one
    receives SMTP and commits raw mail; a child ("back office") processes it
    into tickets and runs the workers, sweeps, timers and IMAP pollers
    (`build_back_office`). They share only the database and an event that
    says mail arrived. SIGHUP is passed on to the child, which reloads the
    rules. The pid file's lock (`ticketd.pidlock`) is held for the whole
    run: a second `ticketd run` on the same data_dir refuses to start.
    """
    # SIGUSR1's default is to terminate: a `ticketd outbox retry` that finds
    # the pid file before the handlers are in place must not stop the daemon.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        lock = PidLock(pid_path(app.settings.data_dir)).acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:   # a read-only data_dir, or another user's: one line, not a traceback
        log.error("cannot open the pid file %s (%s): ticketd run needs to write it under data_dir %s",
                  exc.filename or pid_path(app.settings.data_dir), exc.strerror or exc, app.settings.data_dir)
        return 1
    try:
        # The pid lock is per data_dir: a second daemon with its own data_dir
        # but this smtp.listen would otherwise run its back office (timers,
        # sweeps) on the shared database before the receiver found the port taken.
        if (taken := listen_taken(app.settings)) is not None:
            log.error("%s", taken)
            return 1
        return _run_processes(app)
    finally:
        lock.release()


def _listen_text(settings: Settings) -> str:
    """smtp.listen as written in ticketd.yaml: host:port, an IPv6 host in brackets."""
    host, port = settings.smtp.host_port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# What to do about each reason a bind fails (errno, bind(2)); the port in use is the common one.
_LISTEN_ADVICE = {
    errno.EADDRINUSE: "another ticketd or mail server may hold it: stop it, or give this daemon a free address",
    errno.EADDRNOTAVAIL: "no network interface of this machine has that address: give one it has "
                         "(127.0.0.1, 0.0.0.0 for all)",
    errno.EACCES: "a port below 1024 needs root or CAP_NET_BIND_SERVICE: grant it, or listen on a port "
                  "above 1023 behind the mail server",
}


_UNRESOLVED_ADVICE = ("the host is no name this machine resolves: write an address (127.0.0.1, 0.0.0.0 for all) "
                      "or a name it resolves")


def listen_error(settings: Settings, exc: OSError, environ: Mapping[str, str] = os.environ) -> str:
    """One line for an smtp.listen the receiver cannot bind: which setting (and the variable, when one set it),
    which address, why, what to do."""
    if isinstance(exc, socket.gaierror):   # its errno is a resolver's code, which may equal an errno's number
        advice = _UNRESOLVED_ADVICE
    else:
        advice = _LISTEN_ADVICE.get(exc.errno, "give this daemon an address it can listen on")
    sources = environment_sources(dict(environ))   # any spelling the settings read: TICKETD_SMTP__listen, TICKETD_SMTP
    variable = sources.get("smtp.listen") or sources.get("smtp")
    by_variable = f" (set by {variable})" if variable else ""
    return (f"cannot listen on smtp.listen {_listen_text(settings)}{by_variable}: "
            f"{exc.strerror or exc}; {advice}")


def listen_taken(settings: Settings) -> str | None:
    """Why smtp.listen cannot be listened on now (listen_error's line), else None; the port is let go again.

    Listening, as the receiver will, with SO_REUSEADDR as asyncio's
    create_server sets it: a TIME_WAIT left by our own last run is no
    conflict, another process listening there is.
    """
    host, port = settings.smtp.host_port
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:   # the receiver could not bind it either: said before any back office runs
        return listen_error(settings, exc)
    for family, kind, proto, _, address in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                probe.listen(1)
        except OSError as exc:
            return listen_error(settings, exc)
    return None


def _run_processes(app: App) -> int:
    """The receiver here and the back office in a child, until a signal or the child's death."""
    ctx = multiprocessing.get_context("spawn")   # not fork: threads hold locks here
    app.mail_arrived = ctx.Event()
    ready = ctx.Event()
    back_office = ctx.Process(target=run_back_office, name="ticketd back office",
                              args=(app.settings, app.mail_arrived, ready, os.getpid()))
    def forward(signum: int):
        def to_back_office() -> None:
            # Only once the back office has its own handlers (it sets `ready`
            # after them); an error here would surface in the main loop.
            if ready.is_set() and back_office.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(back_office.pid, signum)
        return to_back_office

    stop = _stop_on_signals(reload=forward(signal.SIGHUP), sweep=forward(signal.SIGUSR1))
    back_office.start()
    receiving: list[Component] = []
    code = 0
    try:
        deadline = time.monotonic() + BACK_OFFICE_START_SECONDS
        while not ready.wait(0.1):
            if stop.is_set():
                return 0
            if not back_office.is_alive() or time.monotonic() > deadline:
                log.error("the back office did not start (exit code %s)", back_office.exitcode)
                return 1
        receiver = Receiver(app)
        try:
            receiver.start()
        except OSError as exc:   # taken between listen_taken and now (two daemons starting at once)
            log.error("%s", listen_error(app.settings, exc))
            return 1
        receiving.append(receiver)
        log.info("ticketd running")
        if not _same_file(sys.stdout, sys.stderr):
            print("ticketd running", flush=True)   # for whoever waits on stdout; the log has it already
        notify("READY=1")
        while not stop.wait(1):
            if not back_office.is_alive():
                log.error("the back office exited (code %s); stopping", back_office.exitcode)
                code = 1
                break
    finally:
        notify("STOPPING=1")
        # The receiver stops first (new mail gets 421, mail in flight is
        # committed), then the back office finishes its mail and stops.
        _stop_all(receiving)
        if back_office.is_alive():
            back_office.terminate()
        waited = back_office_wait_seconds(app)
        _wait_asking_time(back_office.join, back_office.is_alive, time.monotonic() + waited)
        if back_office.is_alive():
            log.error("the back office did not stop in %s s; killed", waited)
            back_office.kill()
            back_office.join()
    log.info("ticketd stopped")
    return code


# sd_notify(3) EXTEND_TIMEOUT_USEC (systemd 236+): while a stop waits, within the daemon's own budget, for a part
# that is stopping (the back office finishing a send the smarthost has taken), `ticketd run` and `ticketd worker`
# ask for this much more time every EXTEND_EVERY_SECONDS. The service manager's stop timeout (TimeoutStopSec)
# then need not grow with outbound.timeout_seconds, and a stop that hangs past the budget, which no longer asks,
# is still cut within EXTEND_SECONDS of it. Only the main process may ask (NotifyAccess=main).
EXTEND_SECONDS = 20
EXTEND_EVERY_SECONDS = 5


def extend_timeout(seconds: float) -> str:
    """The notification that asks the service manager for `seconds` more before it times the current state out."""
    return f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}"


def _wait_asking_time(join, alive, deadline: float) -> None:
    """Wait for a stopping thread or process (its join and is_alive) until `deadline` (time.monotonic()), asking
    the service manager for more time as long as the wait goes on; past the deadline, no more is asked."""
    while alive() and (left := deadline - time.monotonic()) > 0:
        notify(extend_timeout(min(EXTEND_SECONDS, left + EXTEND_EVERY_SECONDS)))
        join(min(EXTEND_EVERY_SECONDS, left))


def notify(state: str, environ: Mapping[str, str] = os.environ) -> None:
    """Tell a service manager that asked for it (NOTIFY_SOCKET: systemd's Type=notify, sd_notify(3)) how the
    daemon is: READY=1 once it takes mail, STOPPING=1 as it stops, EXTEND_TIMEOUT_USEC while its stop is within
    its own budget. Without one, nothing."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):   # an abstract socket's name (Linux)
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:   # the daemon runs on; the service manager times out and says so
        log.warning("cannot tell the service manager %s at NOTIFY_SOCKET %s: %s", state, environ["NOTIFY_SOCKET"],
                    exc.strerror or exc)


def _same_file(one, other) -> bool:
    """Whether two streams write to one file (a terminal, or `>log 2>&1`): a line for both is then shown twice."""
    try:
        a, b = os.fstat(one.fileno()), os.fstat(other.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _check_overrides(settings: Settings) -> None:
    """Say at start which of the admin's templates fail: a mail that needs one is quarantined."""
    if settings.templates_dir is None:
        return   # the shipped ones are tested
    from outbound.template_check import check_templates, unused_overrides

    for line in check_templates(settings.templates_dir)[0]:
        log.error("%s; mail that needs it will be quarantined (see `ticketd templates check`)", line)
    for line in unused_overrides(settings.templates_dir):
        log.warning("templates_dir %s: %s", settings.templates_dir, line)


def _settle_erasures(app: App) -> None:
    """Files an erasure killed midway left set aside (`ticketd.store.files`): put back or removed now."""
    try:
        settle_interrupted_erasures(app.engine, app.settings.attachments_dir)
    except Exception:
        log.exception("settling files set aside by an interrupted erasure failed; the next erasure retries")


def _replan_timers(app: App) -> None:
    """A rules.yaml edited while ticketd was stopped: the armed timers re-planned to it, as a reload does."""
    try:
        planned_under = rules_timers_follow(app)
    except Exception:
        log.exception("reading which rules the armed timers follow failed; they keep their due times "
                      "until the next start")
        return
    if planned_under is not None:
        log.info("rules %s are not those the armed timers follow (%s): re-planning them",
                 app.rules.digest[:12], planned_under.digest[:12])
        # On failure the rules watcher tries again every few seconds (ticketd/rules_watch.py).
        replan_armed_timers(app, planned_under)


def run_back_office(settings: Settings, mail_arrived, ready, parent_pid: int) -> None:
    """The child of `ticketd run`: processing, workers, sweeps, IMAP; stops with SIGTERM or its parent."""
    # Out of `ticketd run`'s process group: a terminal's hang-up or Ctrl-C, or a kill of the group, reaches
    # `ticketd run` alone, which passes it on once; heard twice, a SIGHUP reloaded (and logged) twice.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    configure_logging(settings.log_level)
    app = build_app(settings, create_schema=False)
    app.mail_arrived = mail_arrived
    log_warnings(app.rules)   # here, not in the receiver's process too: once per start
    _check_overrides(settings)
    _settle_erasures(app)
    components = build_back_office(app)
    # docs/rules.md: once, before the sweeper (a component) fires a timer by a time the file no longer gives.
    _replan_timers(app)
    # `ticketd run` has said which signal stops it; this stop is its SIGTERM to us.
    stop = _stop_on_signals(reload=getattr(app, "reload_rules", None), sweep=app.sweep_now, say=log.debug)
    started: list[Component] = []
    try:
        for component in components:
            component.start()
            started.append(component)
        ready.set()
        # A parent killed with SIGKILL cannot stop us; an orphan is re-parented.
        while not stop.wait(1):
            if os.getppid() != parent_pid:
                log.error("ticketd run (pid %s) is gone; the back office stops", parent_pid)
                break
    finally:
        _stop_back_office(started, app)
    log.info("back office stopped")


def run_worker(app: App, threads: int = 4) -> int:
    """`ticketd worker`: consume the Redis queue until SIGTERM or SIGINT; rules.yaml followed as `run` does.

    A worker assigns tickets (the rule worker), so it watches the rules file
    and reloads on SIGHUP like `ticketd run`: otherwise routing would follow
    a change while assignment kept the old agents until every worker was
    restarted, a rules change half applied (PRODUCT.md).
    """
    watcher = RulesWatcher(app)
    log_warnings(app.rules)
    stop = _stop_on_signals(reload=app.reload_rules)
    broker = make_broker(app)
    bind(app, broker)
    pool = WorkerPool(broker, threads, stop_seconds=send_in_hand_seconds(app))
    pause = PauseWhileAway(pool.worker, broker.database_health, lambda: ping(app.engine))
    watcher.start()
    pool.start()
    pause.start()
    print("ticketd worker running", flush=True)
    notify("READY=1")
    try:
        while not stop.wait(1):
            pass
    finally:
        notify("STOPPING=1")
        deadline = time.monotonic() + WORKER_WATCH_STOP_SECONDS
        _stop_together([pause], deadline, ask_time=True)
        _stop_together([pool, watcher], deadline + send_in_hand_seconds(app), ask_time=True)
    return 0
