"""``manage.py resque_pool``: resque-pool's command line on a preloaded Django project.

Option precedence follows argument order, as resque-pool's OptionParser does: each of
``--pidfile``, ``--no-pidfile`` and ``--hot-swap`` sets every attribute it touches, so the
last one given wins; ``--daemon``'s defaults are filled in after parsing, only where
nothing was given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from resque_pool import checks
from resque_pool.conf import settings
from resque_pool.config_error import ConfigError, one_line
from resque_pool.logs import configure_logging
from resque_pool.pool import daemon, master
from resque_pool.pool.config import default_file_present
from resque_pool.pool.generation import BootFailed, GenerationManager, MasterGone
from resque_pool.pool.link import Link
from resque_pool.pool.loaders import Source, choose_source
from resque_pool.pool.manager import GRACEFUL, GRACEFUL_AND_WAIT, Manager, Options
from resque_pool.pool.master import MASTER_SIGNALS
from resque_pool.version import __version__
from resque_pool.worker.options import term_child_enabled

logger = logging.getLogger(__name__)

DAEMON_STDOUT = "log/resque-pool.stdout.log"
DAEMON_STDERR = "log/resque-pool.stderr.log"
DAEMON_PIDFILE = "tmp/pids/resque-pool.pid"
HOT_SWAP_LOCK = "tmp/resque-pool.lock"
ENVIRONMENT_VARIABLES = ("RACK_ENV", "RAILS_ENV", "RESQUE_ENV")
TRUTHY = {"yes", "y", "true", "t", "1", "okay", "sure", "please"}


class PidfileAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        namespace.pidfile = values
        namespace.no_pidfile = False


class NoPidfileAction(argparse.Action):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.pidfile = None
        namespace.no_pidfile = True


class HotSwapAction(argparse.Action):
    """``--hot-swap`` (``const="take_over"``: the other pools' slots one by one) or
    ``--hot-swap-all-at-once`` (``const="kill_others"``: resque-pool's, a whole second
    pool first); both write no pidfile and hold the hot-swap lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.pidfile = None
        namespace.no_pidfile = True
        namespace.lock_file = namespace.lock_file or HOT_SWAP_LOCK
        setattr(namespace, self.const, True)


def apply_daemon_defaults(options: dict[str, Any]) -> None:
    """resque-pool's ``||=`` defaults for ``--daemon``."""
    if options["daemon"]:
        options["stdout_file"] = options["stdout_file"] or DAEMON_STDOUT
        options["stderr_file"] = options["stderr_file"] or DAEMON_STDERR
        if not options["no_pidfile"]:
            options["pidfile"] = options["pidfile"] or DAEMON_PIDFILE


def term_behavior(options: dict[str, Any]) -> str | None:
    if options["term_graceful_wait"]:
        return GRACEFUL_AND_WAIT
    if options["term_graceful"]:
        return GRACEFUL
    if term_child_enabled():
        logger.info("TERM_CHILD enabled, so will use 'term-graceful-and-wait' behaviour")
        return GRACEFUL_AND_WAIT
    if os.environ.get("DYNO"):
        logger.warning("WARNING: Are you running on Heroku? You should probably set TERM_CHILD=1")
    return None


def environment_name() -> str | None:
    for variable in ENVIRONMENT_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


class Command(BaseCommand):
    help = "Run a pool of Resque workers (resque-pool's options, plus --pool and --test)."
    # Only this app's checks (its settings): Django's whole set imports the URLconf and
    # every admin view, which a pool never serves, and delays every start by tens of ms.
    # ``manage.py check`` still runs them all.
    requires_system_checks = [checks.TAG]
    # The arguments as typed (run_from_argv), for the master to start each generation
    # with; None when called from code (call_command): the pool then runs in this process.
    argv: list[str] | None = None

    def run_from_argv(self, argv: list[str]) -> None:
        self.argv = list(argv[2:])
        super().run_from_argv(argv)

    def get_version(self) -> str:
        """``--version`` (resque-pool's ``-v`` is Django's ``--verbosity``)."""
        return f"django-resque-pool {__version__}"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(
            pidfile=None, no_pidfile=False, lock_file=None, kill_others=False, take_over=False
        )
        add = parser.add_argument
        add("-c", "--config", metavar="PATH", help="resque-pool YAML file (or RESQUE_POOL_CONFIG)")
        add("-a", "--appname", metavar="NAME", help="app name in proclines (default: cwd name)")
        add("-d", "--daemon", action="store_true", help="run in the background")
        add(
            "-k",
            "--kill-others",
            action="store_true",
            dest="kill_others",
            help="QUIT other pools of this app on this host once our workers registered",
        )
        # dest is not "stdout"/"stderr": Django's execute() would take a path given there
        # for the stream its own messages (a CommandError) are written to.
        add(
            "-o",
            "--stdout",
            metavar="FILE",
            dest="stdout_file",
            help="append stdout to FILE (reopened on HUP)",
        )
        add(
            "-e",
            "--stderr",
            metavar="FILE",
            dest="stderr_file",
            help="append stderr to FILE (reopened on HUP)",
        )
        add("--nosync", action="store_true", help="do not line-buffer stdout and stderr")
        add("-p", "--pidfile", metavar="FILE", action=PidfileAction, help="write the pid to FILE")
        add("--no-pidfile", action=NoPidfileAction, help="write no pidfile")
        add("-l", "--lock", metavar="FILE", dest="lock_file", help="hold a shared lock on FILE")
        add(
            "-H",
            "--hot-swap",
            action=HotSwapAction,
            const="take_over",
            help="take the slots of this app's other pools on this host one by one as their "
            f"workers finish (never more workers than the counts); --no-pidfile, and --lock "
            f"{HOT_SWAP_LOCK} unless given",
        )
        add(
            "--hot-swap-all-at-once",
            action=HotSwapAction,
            const="kill_others",
            help="resque-pool's hot swap: start every worker, then QUIT the other pools "
            "(--kill-others; two sets of workers meanwhile)",
        )
        add("-E", "--environment", metavar="ENV", help="sets RACK_ENV, RAILS_ENV and RESQUE_ENV")
        add(
            "-s",
            "--spawn-delay",
            metavar="MS",
            type=int,
            help="milliseconds to wait after each spawn",
        )
        add(
            "--term-graceful-wait",
            action="store_true",
            help="on TERM: workers finish their jobs, the manager waits for them",
        )
        add(
            "--term-graceful",
            action="store_true",
            help="on TERM: workers finish their jobs, the manager exits at once",
        )
        add(
            "--term-immediate",
            action="store_true",
            help="on TERM: workers stop at once, the manager exits (the default)",
        )
        add(
            "--single-process-group",
            action="store_true",
            help="keep workers in the manager's process group",
        )
        add("--pool", metavar="NAME", help="pool name for database counts (default: host name)")
        add("--test", action="store_true", help="print the workers the config defines and exit")
        add(
            "--no-scheduler",
            action="store_false",
            dest="scheduler",
            default=None,
            help="run no scheduler child (default: RESQUE_SCHEDULER)",
        )
        # Internal: how the master starts a generation (pool/master.py).
        add("--generation", metavar="SPEC", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            configure_logging(settings.RESQUE_LOG_FORMAT)
        except ValueError as error:  # only with --skip-checks: the checks refuse it first
            raise CommandError(str(error)) from None
        if options["environment"]:
            for variable in ENVIRONMENT_VARIABLES:
                os.environ[variable] = options["environment"]
        environment = environment_name()
        pool = options["pool"] or socket.gethostname()
        config_path = options["config"] or os.environ.get("RESQUE_POOL_CONFIG") or None
        try:
            source = choose_source(config_path, pool)
        except ConfigError as error:
            raise CommandError(str(error), returncode=2) from None
        if source.description == "database":
            # resque-pool would read this file; here the database wins unless it is named.
            stray = default_file_present()
            if stray:
                logger.warning(
                    "%s exists but is not read: counts come from the database "
                    "(pass --config %s to use the file)",
                    stray,
                    stray,
                )
        if options["test"]:
            self.print_test(source, *self.load_or_exit(source, environment))
            return
        if options["generation"]:
            apply_daemon_defaults(options)
            self.run_generation(source, environment, pool, options)
            return
        if source.strict:
            # An explicitly named file that fails is fatal now, before anything forks. A
            # database or loader failing at start-up only starts the pool empty: the
            # manager keeps retrying (and logs why).
            self.load_or_exit(source, environment)
        apply_daemon_defaults(options)
        self.run_pool(source, environment, pool, options)

    @staticmethod
    def load_or_exit(source: Source, environment: str | None) -> tuple[dict, dict, dict]:
        """The source's counts, limits and maximums, validated; one line and exit status
        2 if not."""
        try:
            config = source.load(environment)
            counts = source.counts_of(config)
            return counts, source.limits_of(config), source.maximums_of(config, counts)
        except ConfigError as error:
            raise CommandError(str(error), returncode=2) from None
        except Exception as error:  # noqa: BLE001 (database down, loader raising)
            raise CommandError(f"{source.description}: {one_line(error)}", returncode=2) from None

    def print_test(
        self,
        source: Source,
        counts: dict[str, int],
        limits: dict[str, dict[str, int]],
        maximums: dict[str, int],
    ) -> None:
        self.stdout.write(f"Workers defined in {source.description}")
        number = 0
        for queues, count in counts.items():
            for _ in range(count):
                number += 1
                self.stdout.write(f"{number}: {queues}")
        # Only a configuration with limits adds lines: without them the output stays
        # resqued's format, line for line.
        shown = [(q, limits[q]) for q, count in counts.items() if count and limits.get(q)]
        if shown:
            self.stdout.write("Limits per queue list")
        for queues, own in shown:
            values = ", ".join(f"{name}={value}" for name, value in own.items())
            self.stdout.write(f"{queues}: {values}")
        scaled = [(q, maximums[q]) for q, count in counts.items() if q in maximums]
        if scaled:
            self.stdout.write("Autoscaled up to")
        for queues, maximum in scaled:
            self.stdout.write(f"{queues}: {maximum}")

    def run_pool(
        self, source: Source, environment: str | None, pool: str, options: dict[str, Any]
    ) -> None:
        if not options["nosync"]:
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(line_buffering=True)
        pidfile = daemon.Pidfile(options["pidfile"]) if options["pidfile"] else None
        redirects = daemon.Redirects(options["stdout_file"], options["stderr_file"])
        try:
            # Every file is opened (or its temporary file created) before detaching, so a
            # path that cannot be used is one line on the terminal and a non-zero exit,
            # never a daemon that dies unseen after the command said 0.
            lock = daemon.obtain_shared_lock(options["lock_file"]) if options["lock_file"] else None
            if pidfile:
                pidfile.prepare()  # also refuses a live pidfile, visibly
            redirects.open()
            if options["daemon"]:
                connections.close_all()
                daemon.daemonize()
            redirects.apply()
            if pidfile:
                pidfile.write()
        except daemon.DaemonError as error:
            if pidfile:
                pidfile.discard()
            redirects.close()
            raise CommandError(str(error)) from None
        if environment:
            logger.info("Resque Pool running in %s environment", environment)
        else:
            # resque-pool says "development" here; nothing here picks such a section.
            logger.info(
                "Resque Pool running with no environment set (--environment, %s)",
                ", ".join(ENVIRONMENT_VARIABLES),
            )
        if self.argv is None:
            try:
                Manager(source, self.manager_options(environment, pool, options)).run()
            finally:
                if pidfile:
                    pidfile.remove()
                del lock
            return
        self.become_master(source, environment, pool, options, lock)

    @staticmethod
    def manager_options(environment: str | None, pool: str, options: dict[str, Any]) -> Options:
        return Options(
            environment=environment,
            pool=pool,
            appname=appname(options),
            spawn_delay=(options["spawn_delay"] or 0) / 1000.0,
            term_behavior=term_behavior(options),
            single_process_group=single_process_group(options),
            handle_winch=options["daemon"],
            kill_others=options["kill_others"],
            take_over=options["take_over"],
            redirects=daemon.Redirects(options["stdout_file"], options["stderr_file"]),
            **({} if options["scheduler"] is None else {"scheduler": options["scheduler"]}),
        )

    def become_master(
        self,
        source: Source,
        environment: str | None,
        pool: str,
        options: dict[str, Any],
        lock: Any,
    ) -> None:
        """``exec`` into the master (``pool/master.py``): the same pid, without Django or
        the application, which each later generation loads afresh. The first generation
        is forked from here first, with the application this process already loaded, so
        that a start loads it once."""
        cwd, paths = logical_paths()
        spec = {
            "appname": appname(options),
            "pool": pool,
            "argv": self.argv,
            "cwd": cwd,
            "sys_path": paths,
            "pidfile": options["pidfile"],
            "stdout": options["stdout_file"],
            "stderr": options["stderr_file"],
            "single_process_group": single_process_group(options),
            "log_format": settings.RESQUE_LOG_FORMAT,
        }
        if lock is not None:
            os.set_inheritable(lock.fileno(), True)  # workers hold it, as they always did
        connections.close_all()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        ours, theirs = Link.pair()
        master_pid = os.getpid()
        # Blocked from here until the master's handlers are in place (the mask survives
        # exec, and a pending signal waits): a HUP or TERM from a supervisor that arrives
        # while the master starts must be handled, not kill the pool by default action.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            ours.close()
            self.first_generation(source, environment, pool, options, theirs, master_pid)
            return
        theirs.close()
        os.set_inheritable(ours.fileno(), True)
        spec["first_generation"] = {"pid": pid, "fd": ours.fileno()}
        env = dict(os.environ)
        # The master imports only this package: where it is found, whatever the cwd.
        root = str(Path(master.__file__).resolve().parents[2])  # .../resque_pool/pool/master.py
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        os.execve(
            sys.executable,
            [sys.executable, "-m", master.__name__, json.dumps(spec)],
            env,
        )

    def first_generation(
        self,
        source: Source,
        environment: str | None,
        pool: str,
        options: dict[str, Any],
        sock: Any,
        master_pid: int,
    ) -> None:
        """In the child forked before the exec: generation 1, on the code loaded at start."""
        if not single_process_group(options):
            os.setpgid(0, 0)  # as the master starts the later ones
        link = Link(sock)
        os.set_inheritable(sock.fileno(), False)
        self.generation(source, environment, pool, options, link, 1, master_pid, False)

    def run_generation(
        self, source: Source, environment: str | None, pool: str, options: dict[str, Any]
    ) -> None:
        """In a generation the master started (``management/generation.py`` loaded the
        code and ran the checks): load the counts, say ready, then manage the workers."""
        spec = json.loads(options["generation"])
        link = Link.from_fd(spec["fd"])
        self.generation(
            source,
            environment,
            pool,
            options,
            link,
            spec["number"],
            spec["master"],
            spec["must_load"],
        )

    def generation(
        self,
        source: Source,
        environment: str | None,
        pool: str,
        options: dict[str, Any],
        link: Link,
        number: int,
        master_pid: int,
        must_load: bool,
    ) -> None:
        manager = GenerationManager(
            source,
            self.manager_options(environment, pool, options),
            link,
            number,
            master_pid,
            must_load,
        )
        try:
            manager.boot()
        except BootFailed as error:
            link.send({"failed": str(error)})  # the master logs it, once
            raise SystemExit(3) from None
        except MasterGone:
            raise SystemExit(3) from None
        manager.run()


def logical_paths() -> tuple[str, list[str]]:
    """The working directory by the path it was entered with (``$PWD``) and the module
    path under it: a deploy that points a symbolic link (``/srv/app/current``) at a new
    release is then seen by the next generation, where the process's own directory still
    is the old release (resqued's START_CTX does the same)."""
    physical = os.getcwd()
    logical = os.environ.get("PWD") or physical
    try:
        if not os.path.samefile(logical, physical):
            logical = physical
    except OSError:
        logical = physical
    paths = []
    for path in sys.path:
        if not path:
            continue
        if path == physical or path.startswith(physical + os.sep):
            path = logical + path[len(physical) :]
        paths.append(path)
    return logical, paths


def appname(options: dict[str, Any]) -> str:
    return options["appname"] or os.path.basename(os.getcwd())


def single_process_group(options: dict[str, Any]) -> bool:
    return bool(
        options["single_process_group"]
        or os.environ.get("RESQUE_SINGLE_PGRP", "").strip().lower() in TRUTHY
    )
