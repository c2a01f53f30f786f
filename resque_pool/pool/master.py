"""The pool's master: the process the supervisor watches, which never loads the application.

``manage.py resque_pool`` parses its options, daemonises, writes its pidfile and then
``exec``s ``python -m resque_pool.pool.master``: the pid stays, Django and the project's
jobs are gone. The master starts a *generation* (``python -m
resque_pool.management.generation``: a new interpreter that loads the code from disk, runs
the checks, loads the counts, says ``ready`` and becomes today's manager, forking the
workers) and relays the signals to it. On HUP it starts the next generation; once that one
is ready, the previous one retires (its workers finish their jobs and exit) and each slot
it frees is filled by the new one, so that per queue list old and new workers never add up
to more than the count (resqued's master and listener: docs/architecture.md says why).

A generation that fails to boot changes nothing: its one-line reason is logged, the
current generation and its workers go on, and the next try backs off (1 s doubling to
16 s). This module imports neither Django nor the application (``tests/test_pool_deploy.py``
checks it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import setproctitle

from resque_pool.logs import configure_logging
from resque_pool.pool.daemon import Pidfile, Redirects, reopen_logs
from resque_pool.pool.health_file import HealthFile
from resque_pool.pool.link import Link
from resque_pool.pool.signal_queue import QUEUED, REOPEN_LOGS, SIGNAL_29, SignalQueue, name
from resque_pool.unix.process import reaped

logger = logging.getLogger("resque_pool.pool.master")  # also when run as __main__

GENERATION_MODULE = "resque_pool.management.generation"
BOOT_MIN_DELAY = 1.0
BOOT_MAX_DELAY = 16.0
STOPS = (signal.SIGQUIT, signal.SIGINT, signal.SIGTERM)
# Every signal the master handles: blocked by the command from before it becomes the
# master until the master's handlers are in place.
MASTER_SIGNALS = frozenset({*QUEUED, signal.SIGCHLD, REOPEN_LOGS})


@dataclass
class Generation:
    number: int
    pid: int
    link: Link
    started: float
    state: str = "booting"  # booting, current, retiring
    superseded: bool = False
    failure: str | None = None
    held: dict[str, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    scheduler: bool = False
    acked: bool = False  # answered ``retire`` with the slots it still holds

    @property
    def busy(self) -> int:
        return sum(self.held.values())


class Master:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self.appname = spec["appname"]
        self.generations: dict[int, Generation] = {}
        self.current: Generation | None = None
        self.booting: Generation | None = None
        self.number = 0
        self.stopping = False
        self.deploy_wanted = True  # the first generation
        self.boot_delay = 0.0
        self.boot_not_before = 0.0
        self.waiting_logged = False
        self.last_others: dict[str, Any] | None = None
        self.title = ""
        self.signals = SignalQueue()
        self.redirects = Redirects(spec.get("stdout"), spec.get("stderr"))
        self.pidfile = Pidfile(spec["pidfile"]) if spec.get("pidfile") else None
        if self.pidfile:
            self.pidfile.pid = self.pid  # written by the command, before it became us
        self.health = HealthFile(self.pid)
        self.health_state: dict[str, Any] = {
            "pid": self.pid,
            "appname": self.appname,
            "pool": spec.get("pool"),
            "status": "starting",
            "loaded": False,
            "complete": False,
            "desired": 0,
            "workers": [],
        }

    # -- life cycle ------------------------------------------------------------------------

    def adopt_first_generation(self) -> None:
        """The command forked generation 1 before it became us, with the application it
        had loaded already: a start loads it once."""
        first = self.spec.get("first_generation")
        if not first:
            return
        self.number = 1
        generation = Generation(1, int(first["pid"]), Link.from_fd(int(first["fd"])), 0.0)
        generation.started = time.monotonic()
        self.generations[generation.pid] = generation
        self.booting = generation
        self.deploy_wanted = False
        logger.info("generation 1 (pid %d) loading the application", generation.pid)

    def run(self) -> None:
        self.adopt_first_generation()
        self.procline("(starting)")
        self.signals.install()
        signal.signal(REOPEN_LOGS, self.signals._enqueue)  # noqa: SLF001 (same queue)
        # The command blocked these before it became us; what arrived meanwhile is
        # delivered now, to the handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
        self.health.beat(self.health_state)
        try:
            while not (self.stopping and not self.generations):
                self.round()
        finally:
            self.finish()

    def round(self) -> None:
        self.reap()
        self.read_links()
        self.signals.log_dropped()
        signum = self.signals.pop()
        if signum is not None:
            self.handle_signal(signum)
        self.start_generation_when_due()
        self.procline(self.describe())
        if signum is None and not (self.stopping and not self.generations):
            self.sleep()

    def finish(self) -> None:
        self.signals.ignore_from_now_on()
        self.procline("(shutting down)")
        self.health.remove()
        if self.pidfile:
            self.pidfile.remove()
        logger.info("master finished")

    def sleep(self) -> None:
        timeout = 1.0
        if self.deploy_wanted and self.boot_not_before:
            timeout = min(timeout, max(self.boot_not_before - time.monotonic(), 0.0))
        links = [g.link for g in self.generations.values() if not g.link.closed]
        waker = self.signals.waker
        if self.signals.pending:
            return
        readable, _, _ = select.select([waker.read_fd, *links], [], [], timeout)
        if waker.read_fd in readable:
            waker.wait(0)

    # -- generations -----------------------------------------------------------------------

    def start_generation_when_due(self) -> None:
        if self.stopping or self.booting is not None:
            return
        if self.current is None:
            self.deploy_wanted = True  # nothing runs: keep trying, backing off
        if not self.deploy_wanted:
            return
        draining = [g for g in self.generations.values() if g.state == "retiring"]
        if draining and self.current is not None:
            # A third loaded copy of the application would cost what this design saves.
            if not self.waiting_logged:
                note = self.waiting_note(draining)
                logger.info("HUP: %s", note)
                self.current.link.send({"deploy": note})
                self.waiting_logged = True
            return
        if time.monotonic() < self.boot_not_before:
            return
        if self.waiting_logged and self.current is not None:
            self.current.link.send({"deploy": None})
        self.waiting_logged = False
        self.deploy_wanted = False
        self.spawn_generation()

    def waiting_note(self, draining: list[Generation]) -> str:
        numbers = ", ".join(str(g.number) for g in draining)
        busy = sum(g.busy for g in draining)
        return (
            f"generation {numbers} still drains {busy} worker(s); "
            "the new release loads once it is gone"
        )

    def spawn_generation(self) -> None:
        self.number += 1
        link, theirs = Link.pair()
        spec = {
            "fd": theirs.fileno(),
            "number": self.number,
            "master": self.pid,
            "must_load": self.current is not None,
            "cwd": self.spec.get("cwd"),
            "sys_path": self.spec["sys_path"],
            "argv": self.spec["argv"],
        }
        argv = [sys.executable, "-m", GENERATION_MODULE, json.dumps(spec)]
        # Its own process group (unless --single-process-group): a Ctrl-C on the master's
        # terminal reaches the master, which relays it, not every process at once.
        group = {} if self.spec.get("single_process_group") else {"setpgroup": 0}
        try:
            pid = os.posix_spawn(sys.executable, argv, os.environ, setsigmask=(), **group)
        except OSError as error:
            logger.error("could not start generation %d: %s", self.number, error)
            self.boot_failed(None)
            link.close()
            return
        finally:
            theirs.close()
        generation = Generation(self.number, pid, link, time.monotonic())
        self.generations[pid] = generation
        self.booting = generation
        logger.info("generation %d (pid %d) loading the application", self.number, pid)

    def ready(self, generation: Generation) -> None:
        if generation is not self.booting:
            return  # superseded: it is being killed
        self.booting = None
        self.boot_delay = 0.0
        self.boot_not_before = 0.0
        old, self.current = self.current, generation
        generation.state = "current"
        self.last_others = None
        if old is None:
            logger.info("generation %d is ready", generation.number)
        else:
            old.state = "retiring"
            old.link.send({"retire": True})
            logger.info(
                "HUP: gracefully restarting all workers: generation %d is ready, generation "
                "%d retires (its workers finish their jobs; each slot they free goes to "
                "generation %d)",
                generation.number,
                old.number,
                generation.number,
            )
        self.send_others()

    def send_others(self) -> None:
        """Tell the current generation which slots older ones still hold, once each of
        them answered ``retire`` (from then on they only shrink)."""
        current = self.current
        if current is None:
            return
        others: dict[str, int] = {}
        scheduler = False
        for generation in self.generations.values():
            if generation.state != "retiring":
                continue
            if not generation.acked:
                return
            for queues, count in generation.held.items():
                others[queues] = others.get(queues, 0) + count
            scheduler = scheduler or generation.scheduler
        message = {"others": others, "scheduler": scheduler}
        if message != self.last_others:
            self.last_others = message
            current.link.send(message)

    def back_off(self) -> None:
        """1 s doubling to 16 s between boots that fail (resqued's listener backoff)."""
        self.boot_delay = min(max(self.boot_delay * 2, BOOT_MIN_DELAY), BOOT_MAX_DELAY)
        self.boot_not_before = time.monotonic() + self.boot_delay

    def boot_failed(self, generation: Generation | None) -> None:
        self.back_off()
        number = generation.number if generation else self.number
        reason = (generation.failure if generation else None) or "it exited before it was ready"
        if self.current is not None:
            kept = f"keeping the current workers (generation {self.current.number})"
            retry = f"send HUP to try again (not before {self.boot_delay:.0f}s)"
        else:
            kept = "no generation is running"
            retry = f"next try in {self.boot_delay:.0f}s"
            self.deploy_wanted = True
        logger.error("generation %d did not boot: %s; %s; %s", number, reason, kept, retry)

    # -- children and links ----------------------------------------------------------------

    def reap(self) -> None:
        for pid, code in reaped():
            generation = self.generations.pop(pid, None)
            if generation is None:
                logger.info("reaped unknown child %d", pid)
                continue
            generation.link.receive()  # a last "failed" line
            generation.link.close()
            self.generation_exited(generation, code)

    def generation_exited(self, generation: Generation, code: int) -> None:
        described = f"signal {name(-code)}" if code < 0 else f"status {code}"
        if generation.state == "booting":
            if generation is self.booting:
                self.booting = None
            if generation.superseded or self.stopping:
                logger.info("generation %d stopped while booting", generation.number)
            else:
                self.boot_failed(generation)
            return
        if generation.state == "retiring":
            logger.info("generation %d retired (%s)", generation.number, described)
            self.send_others()
            return
        # The current one.
        self.current = None
        if self.stopping:
            logger.info("generation %d finished (%s)", generation.number, described)
            return
        self.back_off()
        self.deploy_wanted = True
        logger.error(
            "generation %d exited on its own (%s); starting another in %.0fs",
            generation.number,
            described,
            self.boot_delay,
        )

    def read_links(self) -> None:
        for generation in list(self.generations.values()):
            for message in generation.link.receive():
                self.received(generation, message)

    def received(self, generation: Generation, message: dict[str, Any]) -> None:
        if "failed" in message:
            generation.failure = str(message["failed"])
        if message.get("ready"):
            self.ready(generation)
        if "held" in message:
            generation.held = {str(q): int(n) for q, n in dict(message["held"]).items()}
            generation.pids = [int(pid) for pid in message.get("pids", [])]
            generation.scheduler = bool(message.get("scheduler"))
            if message.get("retired"):
                generation.acked = True
            if generation.state == "retiring":
                self.send_others()
        if "beat" in message and generation is self.current:
            if message["beat"] is not None:
                self.health_state = dict(message["beat"])
            self.health.beat(self.health_state)

    # -- signals ---------------------------------------------------------------------------

    def handle_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.hup()
        elif signum in STOPS:
            self.stop(signum)
        elif signum == REOPEN_LOGS:
            reopen_logs(self.redirects)
            self.relay(signum, self.ready_generations())
        elif signum in (signal.SIGWINCH, SIGNAL_29):
            self.relay(signum, [self.current] if self.current else [])
        else:  # USR1, USR2, CONT: every worker, the draining ones too
            self.relay(signum, self.ready_generations())

    def hup(self) -> None:
        logger.info("HUP: reload the application and its configuration in a new generation")
        # As resqued does on HUP; the new generation inherits the reopened files.
        reopen_logs(self.redirects)
        if self.stopping:
            return
        if self.booting is not None:
            logger.info(
                "HUP: generation %d is still booting; a fresh one replaces it",
                self.booting.number,
            )
            self.booting.superseded = True
            # Nothing forked yet, no job taken: nothing to lose.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.booting.pid, signal.SIGKILL)
            self.booting = None
        wait = self.boot_not_before - time.monotonic()
        if wait > 0:
            logger.info("HUP: the last reload failed; the next one starts in %.0fs", wait)
        self.deploy_wanted = True

    def stop(self, signum: int) -> None:
        self.stopping = True
        self.deploy_wanted = False
        for generation in self.generations.values():
            if generation.state == "booting":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(generation.pid, signal.SIGKILL)
        self.relay(signum, self.ready_generations())

    def ready_generations(self) -> list[Generation]:
        return [g for g in self.generations.values() if g.state != "booting"]

    def relay(self, signum: int, generations: list[Generation]) -> None:
        if not generations:
            logger.info("%s: no generation running", name(signum))
        for generation in generations:
            with contextlib.suppress(ProcessLookupError):
                os.kill(generation.pid, signum)

    # -- procline --------------------------------------------------------------------------

    def describe(self) -> str:
        pids = sorted(pid for g in self.generations.values() for pid in g.pids)
        text = f"managing {pids}"
        if self.booting is not None:
            text += f" (generation {self.booting.number} loading)"
        elif self.current is not None and any(
            g.state == "retiring" for g in self.generations.values()
        ):
            text += f" (switching to generation {self.current.number})"
        return text

    def procline(self, text: str) -> None:
        title = f"resque-pool-master[{self.appname}]: {text}"
        if title != self.title:
            setproctitle.setproctitle(title)
            self.title = title


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv if argv is not None else sys.argv[1:])[0])
    configure_logging(spec.get("log_format", "plain"))
    Master(spec).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
