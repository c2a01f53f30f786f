"""Helpers for the pool tests: custom loaders and hooks used by pool processes (through
tests/support/pool_settings.py, whose ``TEST_*`` settings they read), and process
inspection for the tests themselves."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from django.conf import settings

from resque_pool import hooks, job
from resque_pool.pool.loaders import Throttled

# With TEST_BALLAST_MB in the environment (an environment variable: this module is
# imported while the settings load), every process of a pool that imported it holds that
# many MB more, touched: the manager from its boot, each worker from after_prefork on
# (it writes every page of its inherited copy, so the copy becomes its own). The memory
# budget's tests then see workers of a known size, and a manager of about the same size
# (a new worker's estimate before the first one exists).
_BALLAST = bytearray(int(os.environ.get("TEST_BALLAST_MB") or 0) * 2**20)
_BALLAST[::4096] = b"\1" * len(range(0, len(_BALLAST), 4096))


@hooks.after_prefork
def dirty_the_ballast(worker) -> None:
    if _BALLAST:
        _BALLAST[::4096] = b"\2" * len(range(0, len(_BALLAST), 4096))


@hooks.after_prefork
def crash_on_crash_queue(worker) -> None:
    """Workers for a queue list containing ``crash`` die before they start working."""
    if "crash" in str(worker.id).split(":")[-1].split(","):
        raise RuntimeError("crash queue: this worker dies at once")


@hooks.after_prefork
def record_prefork(worker) -> None:
    """With ``TEST_RECORD_PREFORK``, remember each worker the hook was given."""
    if getattr(settings, "TEST_RECORD_PREFORK", False):
        from resque_pool.resque.connection import get_redis, key

        get_redis().sadd(key("test", "prefork"), f"{os.getpid()} {worker.id}")


@hooks.after_prefork
def slow_start(worker) -> None:
    """With ``TEST_PREFORK_SECONDS``, a worker's start takes that long (before its own
    signal handlers exist); it says so in ``<ns>:test:starting``."""
    seconds = getattr(settings, "TEST_PREFORK_SECONDS", 0)
    if seconds:
        import time

        from resque_pool.resque.connection import get_redis, key

        get_redis().sadd(key("test", "starting"), str(os.getpid()))
        time.sleep(seconds)


def failing_loader(environment):
    """A custom loader whose source is down (``RESQUE_POOL_CONFIG_LOADER``)."""
    raise RuntimeError("the count source is down")


class ReversingLoader:
    """resque-pool's spec loader: ``{environment reversed: count}``; the count comes from the
    file named by the ``TEST_COUNT_FILE`` setting and is cached until ``reset()`` (HUP)."""

    def __init__(self) -> None:
        self.count: int | None = None

    def __call__(self, environment):
        if self.count is None:
            self.count = int(Path(settings.TEST_COUNT_FILE).read_text())
        return {str(environment)[::-1]: self.count}

    def reset(self) -> None:
        self.count = None


class LimitingLoader:
    """A custom loader with ``limits()``: the counts of the ``TEST_LOADER_LISTS`` setting
    (one worker on ``demo`` by default), every list with the limits of
    ``TEST_LOADER_LIMITS`` (e.g. ``{"job_timeout": 1}``). Each ``limits()`` call appends a
    line to the file ``TEST_LOADER_LIMITS_CALLS`` names, when it names one."""

    def counts(self):
        return dict(settings.TEST_LOADER_LISTS)

    def __call__(self, environment):
        return self.counts()

    def limits(self, environment):
        calls = settings.TEST_LOADER_LIMITS_CALLS
        if calls:
            with open(calls, "a") as log:
                log.write("limits()\n")
        return {queues: dict(settings.TEST_LOADER_LIMITS) for queues in self.counts()}


# Wrapped as docs/pool.md shows: Throttled must pass limits() on to the loader.
throttled_limiting_loader = Throttled(LimitingLoader(), period=30)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux procfs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(part) for part in (task / "children").read_text().split())
    return sorted(found)


def pool_children(pid: int) -> list[int]:
    """The children of a pool's master that a lone manager would have had: its
    generations' workers and scheduler (a generation, ``resque-pool-generation[...]``, is
    the manager of one release: pool/master.py)."""
    found: list[int] = []
    for child in children(pid):
        title = cmdline(child)
        if not title or not alive(child):  # exiting or a zombie: not yet reaped
            continue
        if is_generation(title):
            found.extend(children(child))
        else:
            found.append(child)
    return sorted(found)


def is_generation(title: str) -> bool:
    """A generation's title, or its command line while it boots (before its title)."""
    return (
        title.startswith("resque-pool-generation[") or "resque_pool.management.generation" in title
    )


def generations(pid: int) -> dict[int, str]:
    """The master's generations: pid and title."""
    titles = {child: cmdline(child) for child in children(pid)}
    return {p: t for p, t in titles.items() if is_generation(t)}


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (Linux procfs)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def worker_titles(pid: int) -> dict[int, str]:
    """The titles of a pool's workers and scheduler (through its generations)."""
    return {child: cmdline(child) for child in pool_children(pid)}


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (workers live in process groups of their own,
    so killing the manager's group at teardown would leave them behind)."""
    pending, seen = [pid], []
    while pending:
        current = pending.pop()
        seen.append(current)
        pending.extend(children(current))
    for target in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


@job(queue="demo", name="SlowRecord")
class SlowRecord:
    """Sleeps, then records its token in ``<ns>:demo:done`` (a job that is in flight long
    enough to be interrupted)."""

    @staticmethod
    def perform(token, seconds=1.0):
        import time

        from resque_pool.resque.connection import get_redis, key

        time.sleep(float(seconds))
        get_redis().sadd(key("demo", "done"), str(token))


@job(queue="demo", name="SlowOnceRecord")
class SlowOnceRecord:
    """Sleeps ``seconds`` on its first run only (a job a stop interrupts), then records its
    token in ``<ns>:demo:done``; every run is counted in ``<ns>:test:runs:<token>``."""

    @staticmethod
    def perform(token, seconds=1.0):
        import time

        from resque_pool.resque.connection import get_redis, key

        client = get_redis()
        if client.incr(key("test", "runs", str(token))) == 1:
            time.sleep(float(seconds))
        client.sadd(key("demo", "done"), str(token))


@job(queue="demo", name="SlowOnceThenFail")
class SlowOnceThenFail:
    """Its first run sleeps ``seconds`` and then fails (a job a partition interrupts, whose
    late outcome must not count); later runs record the token in ``<ns>:demo:done``. Every
    run is counted in ``<ns>:test:runs:<token>``."""

    @staticmethod
    def perform(token, seconds=1.0):
        import time

        from resque_pool.resque.connection import get_redis, key

        client = get_redis()
        if client.incr(key("test", "runs", str(token))) == 1:
            time.sleep(float(seconds))
            raise RuntimeError(f"the first run of {token} ended late")
        client.sadd(key("demo", "done"), str(token))
