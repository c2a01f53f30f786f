"""Is a pool alive? From a file on this host that the manager's main loop keeps fresh.

The manager (``pool/health_file.py``) writes ``<dir>/<pid>.json`` (``<dir>``:
``/dev/shm/resque-pool-<uid>``, else the same name in the temporary directory) when it
starts, rewrites it when what it says changes (status, worker ids), touches it each time
its loop comes round (at least once a second) and removes it when it exits. Liveness is
the file's age, as for the workers' progress files (``pool/hangs.py``): a local channel,
so a Redis outage, which the manager waits out while it goes on reaping and respawning,
never makes a healthy pool look dead.

This module imports nothing of Django, so that a probe run every few seconds costs a
Python start and a few system calls: ``python -m resque_pool.health [--pidfile FILE |
--appname NAME] [--max-age SECONDS]`` (liveness only). ``manage.py resque_health`` gives
the same answer and, with ``--ready``, asks Redis too (``management/commands``).

Exit status: 0 alive, 1 not alive, 2 no such pool (or a usage error).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import time
from typing import Any

from resque_pool.unix.files import UnusablePidfile, memory_dir, pid_alive, read_pid

ALIVE, NOT_ALIVE, NO_POOL = 0, 1, 2
# A loop that comes round at least once a second, whose slowest step (a Redis call of the
# manager) gives up after 5 s: 30 s without a touch is a stuck loop, not a slow one.
DEFAULT_MAX_AGE = 30.0


def health_dir() -> str:
    """Where the managers of this user write their files: a memory filesystem when there
    is one (a touch a second is then no disk write), one directory per user."""
    return os.path.join(memory_dir() or tempfile.gettempdir(), f"resque-pool-{os.getuid()}")


def pid_of(name: str) -> int | None:
    """The manager's pid a file of ``health_dir()`` is named after (None: not one)."""
    stem, dot, extension = name.partition(".")
    return int(stem) if dot and extension == "json" and stem.isdigit() else None


class NoPool(Exception):
    """There is no pool to answer about; the message says why, in one line."""


class PoolHealth:
    """What a probe reads about one manager: its pid, the seconds since its loop last came
    round, and the state it wrote (appname, status, worker ids, ...). (A plain class: the
    dataclasses module alone would add a tenth to the probe's imports.)"""

    def __init__(self, pid: int, age: float, state: dict[str, Any]) -> None:
        self.pid = pid
        self.age = age
        self.state = state

    @property
    def name(self) -> str:
        return f"pool {self.pid} ({self.state.get('appname', '?')})"


def _read(path: str, pid: int) -> PoolHealth | None:
    """None when there is no such file (or it is not one of ours)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        state = json.loads(data)
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    return PoolHealth(pid=pid, age=max(time.time() - info.st_mtime, 0.0), state=state)


def find_pools(pidfile: str | None = None, appname: str | None = None) -> list[PoolHealth]:
    """The managers a probe asks about: the one in ``pidfile``, or every one of
    ``appname`` on this host. Raises ``NoPool`` (exit 2) when there is none; a manager
    that is not running any more is returned with an infinite age (exit 1)."""
    directory = health_dir()
    if pidfile is not None:
        try:
            pid = read_pid(pidfile)
        except UnusablePidfile as error:
            raise NoPool(f"cannot use pidfile {pidfile}: {error}") from None
        if pid is None:
            raise NoPool(f"no pidfile at {pidfile}")
        if pid <= 0:
            raise NoPool(f"pidfile {pidfile} holds no pid")
        if not pid_alive(pid):
            return [PoolHealth(pid=pid, age=float("inf"), state={"appname": pidfile})]
        found = _read(os.path.join(directory, f"{pid}.json"), pid)
        if found is None:
            raise NoPool(f"pid {pid} from {pidfile} is not a pool manager of this user")
        return [found]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    pools = []
    for name in names:
        pid = pid_of(name)
        found = _read(os.path.join(directory, name), pid) if pid is not None else None
        if found is None or found.state.get("appname") != appname:
            continue
        if not pid_alive(pid):
            found.age = float("inf")
        pools.append(found)
    if not pools:
        raise NoPool(f"no pool of app {appname} on this host")
    return pools


def liveness(pools: list[PoolHealth], max_age: float) -> tuple[int, str]:
    """Exit status and the line: alive only when every pool's loop came round within
    ``max_age`` seconds."""
    for pool in pools:
        if pool.age == float("inf"):
            return NOT_ALIVE, f"not alive: {pool.name} is not running"
        if pool.age > max_age:
            return NOT_ALIVE, (
                f"not alive: {pool.name}: its main loop last came round {pool.age:.1f}s ago "
                f"(--max-age {max_age:g})"
            )
    described = ", ".join(f"{pool.name} {pool.age:.1f}s ago" for pool in pools)
    return ALIVE, f"alive: main loop came round: {described}"


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """Which pool a command of this host is about: ``--pidfile`` or ``--appname`` (the
    probes and ``resque_pool.stop`` share them)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-p", "--pidfile", metavar="FILE", help="the pool whose pid FILE holds")
    which.add_argument(
        "-a",
        "--appname",
        metavar="NAME",
        help="every pool of app NAME on this host (default: the current directory's name, "
        "as resque_pool's)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both probes share."""
    add_pool_arguments(parser)
    parser.add_argument(
        "--max-age",
        type=seconds,
        default=DEFAULT_MAX_AGE,
        metavar="SECONDS",
        help=f"alive when the main loop came round within this long (default {DEFAULT_MAX_AGE:g})",
    )


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A usage error is one line on stderr and exit status 2 (argparse's, and "no such
    pool": never 1, which means "not alive"), without the usage text."""

    def error(message: str) -> None:
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        sys.exit(NO_POOL)

    parser.error = error  # type: ignore[method-assign]
    return parser


def seconds(text: str) -> float:
    """An option's number of seconds: finite and above 0; argparse's one-line error else."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


def default_appname() -> str:
    """What ``resque_pool`` names its app without ``--appname``."""
    return os.path.basename(os.getcwd())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resque_pool.health",
        description="Is the pool's main loop alive? Exit 0 alive, 1 not, 2 no such pool. "
        "Needs no Django; manage.py resque_health --ready asks Redis too.",
    )
    add_arguments(one_line_errors(parser))
    options = parser.parse_args(argv)
    try:
        pools = find_pools(options.pidfile, options.appname or default_appname())
    except NoPool as error:
        print(f"no pool: {error}")
        return NO_POOL
    code, line = liveness(pools, options.max_age)
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
