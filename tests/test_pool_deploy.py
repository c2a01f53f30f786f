"""Deploys with real processes: HUP starts a new generation of the application beside the
master (pool/master.py), which never loads it; workers move over slot by slot.

Each test installs an app of its own (``deployapp``, in the directory of the test's
settings module) whose ``jobs.py`` it rewrites between generations, as a release would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from resque_pool import enqueue
from tests.support.common import ROOT, wait_until
from tests.support.pool_fixtures import processing_worker, write
from tests.support.processes import alive, children, cmdline, generations, pool_children

pytestmark = pytest.mark.slow

JOBS = """\
import os
import time

from resque_pool import job
from resque_pool.resque.connection import get_redis, key

RELEASE = {release!r}
if os.path.exists({slow_marker!r}):
    time.sleep(30)  # a release that takes long to boot


@job(queue="deploy", name="Release")
class Release:
    @staticmethod
    def perform(token, seconds=0):
        time.sleep(float(seconds))
        get_redis().sadd(key("deploy", "ran"), f"{{token}}:{{RELEASE}}")
"""


class App:
    """The test's ``deployapp``: its jobs module, rewritten for each release."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"deployapp_{uuid.uuid4().hex[:8]}"
        self.directory = tmp_path / "settings-modules" / self.name
        self.directory.mkdir(parents=True)
        (self.directory / "__init__.py").write_text("")
        self.slow_marker = str(tmp_path / "slow-boot")
        self.release("first")

    def release(self, name: str) -> None:
        # A different length each time: the bytecode cache checks size and mtime.
        text = JOBS.format(release=name, slow_marker=self.slow_marker)
        (self.directory / "jobs.py").write_text(text)

    def broken(self) -> None:
        (self.directory / "jobs.py").write_text("RELEASE = 'broken'\ndef perform(:\n")

    def settings(self, **extra) -> dict:
        from tests.support import pool_settings

        return {"INSTALLED_APPS": [*pool_settings.INSTALLED_APPS, self.name], **extra}


def busy_worker(resque) -> int:
    """The pid of the worker running a job (once one does)."""
    worker_id = wait_until(lambda: processing_worker(resque), 20, message="a job in flight")
    return int(worker_id.split(":")[1])


def ran(resque) -> set[str]:
    return resque.client.smembers(resque.key("deploy", "ran"))


def workers_of(pool) -> dict[int, list[int]]:
    """Each generation's number and its workers' pids."""
    found = {}
    for pid, title in generations(pool.pid).items():
        number = re.match(r"resque-pool-generation\[[^\]]*\] (\d+)", title)
        if number:
            found[int(number.group(1))] = [
                child
                for child in children(pid)
                if not cmdline(child).startswith("resque-scheduler")
            ]
    return found


class Sampler(threading.Thread):
    """Counts, every 20 ms, the workers and generations the pool runs at once."""

    def __init__(self, pool) -> None:
        super().__init__(daemon=True)
        self.pool = pool
        self.most_workers = 0
        self.most_generations = 0
        self.most_schedulers = 0
        self.seen: dict[int, str] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            titles = {pid: cmdline(pid) for pid in pool_children(self.pool.pid)}
            # Resque's worker titles; a child forked a moment ago still bears its
            # generation's title (the scheduler too), and gets its own within a moment.
            workers = [t for t in titles.values() if re.match(r"resque-[\d.]+: ", t)]
            schedulers = [t for t in titles.values() if t.startswith("resque-scheduler")]
            if len(workers) > self.most_workers:
                self.most_workers = len(workers)
                self.seen = titles
            self.most_schedulers = max(self.most_schedulers, len(schedulers))
            self.most_generations = max(self.most_generations, len(generations(self.pool.pid)))
            time.sleep(0.02)

    def stop(self) -> Sampler:
        self.running = False
        self.join(5)
        return self


def test_the_master_loads_neither_django_nor_the_application():
    code = (
        "import sys, resque_pool.pool.master;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'redis', 'yaml'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_hup_ships_changed_code_slot_by_slot(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 3\n")
    pool = start_pool("-c", str(config), settings=app.settings(RESQUE_SCHEDULER=True))
    first = set(pool.wait_for_workers({"deploy": 3}))
    enqueue("Release", "a", queue="deploy")
    wait_until(lambda: ran(resque) == {"a:first"}, 20, message="the first release's job")
    assert cmdline(pool.pid).startswith("resque-pool-master[")
    assert list(workers_of(pool)) == [1]

    app.release("second-release")
    sampler = Sampler(pool)
    sampler.start()
    pool.signal(signal.SIGHUP)
    wait_until(lambda: list(workers_of(pool)) == [2], 60, message="generation 2 alone")
    second = set(pool.wait_for_workers({"deploy": 3}))
    sampler.stop()
    assert not second & first
    enqueue("Release", "b", queue="deploy")
    wait_until(lambda: "b:second-release" in ran(resque), 20, message="the new code running")
    # Never more workers than configured, never a third copy, never two schedulers.
    assert sampler.most_workers <= 3, sampler.seen
    assert sampler.most_generations <= 2
    assert sampler.most_schedulers <= 1
    assert pool.state()["generation"] == 2
    assert pool.process.poll() is None
    log = pool.log()
    assert "HUP: gracefully restarting all workers: generation 2 is ready" in log
    assert "generation 1 finished" in log


def test_a_signal_while_the_master_starts_is_handled_not_fatal(start_pool, tmp_path):
    # A supervisor's HUP (or TERM) can come while the command is becoming the master:
    # signals are blocked across that exec until the master's handlers are in place,
    # so the HUP is handled (a deploy), where its default action would kill the pool.
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config))
    # The moment the command has exec'd into the master's interpreter, which has not yet
    # imported anything: the widest window there is.
    wait_until(
        lambda: "resque_pool.pool.master" in cmdline(pool.pid), 60, 0.0005, "the exec"
    )
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"generation 2 \(pid \d+\) loading the application", timeout=60)
    pool.wait_for_workers({"demo": 1})
    assert pool.process.poll() is None


def test_a_busy_slot_keeps_its_job_while_the_idle_ones_move(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 2\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    pool.wait_for_workers({"deploy": 2})
    enqueue("Release", "long", 8, queue="deploy")
    busy = busy_worker(resque)
    app.release("second-release")
    sampler = Sampler(pool)
    sampler.start()
    pool.signal(signal.SIGHUP)
    # The idle slot runs the new code while the long job goes on in the old generation.
    wait_until(
        lambda: (w := workers_of(pool)) and w.get(1) == [busy] and len(w.get(2, [])) == 1,
        60,
        message="one slot moved, the busy one kept",
    )
    enqueue("Release", "short", queue="deploy")
    wait_until(lambda: "short:second-release" in ran(resque), 20, message="new code, idle slot")
    assert "long:first" not in ran(resque)  # still running, on the code it started with
    wait_until(lambda: list(workers_of(pool)) == [2], 60, message="generation 1 drained")
    pool.wait_for_workers({"deploy": 2})
    sampler.stop()
    assert "long:first" in ran(resque)
    assert sampler.most_workers <= 2
    assert resque.client.get(resque.key("stat", "processed")) == "2"  # each job ran once
    assert resque.client.llen(resque.key("failed")) == 0


def test_a_broken_release_changes_nothing(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 2\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    before = set(pool.wait_for_workers({"deploy": 2}))
    app.broken()
    pool.signal(signal.SIGHUP)
    line = pool.wait_for_log(r"generation 2 did not boot: .*", timeout=30).group(0)
    assert "SyntaxError" in line and "jobs.py, line 2" in line, line
    assert "keeping the current workers (generation 1)" in line
    assert line.count("\n") == 0
    time.sleep(2)
    assert set(pool.workers()) == before
    assert list(workers_of(pool)) == [1]
    enqueue("Release", "still", queue="deploy")
    wait_until(lambda: "still:first" in ran(resque), 20, message="the old code still serving")
    assert "Traceback" not in pool.log()

    # Fixed, the next HUP ships it.
    app.release("fixed-release")
    pool.signal(signal.SIGHUP)
    wait_until(lambda: list(workers_of(pool)) == [3], 60, message="generation 3 alone")
    enqueue("Release", "fixed", queue="deploy")
    wait_until(lambda: "fixed:fixed-release" in ran(resque), 20, message="the fixed code")


def test_repeated_broken_releases_back_off(start_pool, tmp_path, resque):
    # resqued's listener backoff: each failed boot doubles the wait before the next one
    # (1 s, 2 s, 4 s, ... up to 16 s), and a HUP sent sooner waits for it.
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    before = set(pool.wait_for_workers({"deploy": 1}))
    app.broken()
    for attempt, delay in ((2, 1), (3, 2), (4, 4)):
        pool.signal(signal.SIGHUP)
        pool.wait_for_log(
            rf"generation {attempt} did not boot: .*\(not before {delay}s\)", timeout=60
        )
    assert set(pool.workers()) == before
    assert pool.process.poll() is None


def test_a_release_whose_settings_fail_the_checks_changes_nothing(start_pool, tmp_path):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    before = set(pool.wait_for_workers({"deploy": 1}))
    (module,) = (tmp_path / "settings-modules").glob("test_settings_*.py")
    module.write_text(module.read_text() + "RESQUE_POOL_DRAIN_TIMEOUT = -5\n")
    pool.signal(signal.SIGHUP)
    line = pool.wait_for_log(r"generation 2 did not boot: .*", timeout=30).group(0)
    assert "system check failed: resque_pool.E" in line and "RESQUE_POOL_DRAIN_TIMEOUT" in line
    assert "keeping the current workers (generation 1)" in line
    time.sleep(1)
    assert set(pool.workers()) == before and list(workers_of(pool)) == [1]


def test_a_hup_during_a_slow_boot_supersedes_it(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    before = set(pool.wait_for_workers({"deploy": 1}))
    app.release("slow-release")
    Path(app.slow_marker).write_text("")
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"generation 2 \(pid \d+\) loading")
    slow = int(re.search(r"generation 2 \(pid (\d+)\)", pool.log()).group(1))
    time.sleep(1)
    assert alive(slow) and set(pool.workers()) == before
    os.unlink(app.slow_marker)
    app.release("quick-release")
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"generation 2 is still booting; a fresh one replaces it")
    wait_until(lambda: list(workers_of(pool)) == [3], 60, message="generation 3 alone")
    assert not alive(slow)
    enqueue("Release", "quick", queue="deploy")
    wait_until(lambda: "quick:quick-release" in ran(resque), 20, message="the last release")


def test_a_hup_while_a_generation_drains_waits_for_it(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    pool = start_pool("-c", str(config), settings=app.settings())
    pool.wait_for_workers({"deploy": 1})
    enqueue("Release", "long", 15, queue="deploy")  # outlasts generation 2's boot
    busy_worker(resque)
    sampler = Sampler(pool)
    sampler.start()
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"generation 1 retires")
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"HUP: generation 1 still drains 1 worker\(s\)")
    wait_until(lambda: "still drains" in (pool.state().get("deploy") or ""), 10, message="state")
    wait_until(lambda: list(workers_of(pool)) == [3], 60, message="generation 3 after the drain")
    sampler.stop()
    assert sampler.most_generations <= 2
    assert "long:first" in ran(resque)
    assert pool.state().get("deploy") is None


def test_the_drain_timeout_stops_a_long_job_under_the_loss_policy(start_pool, tmp_path, resque):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    pool = start_pool(
        "-c",
        str(config),
        settings=app.settings(RESQUE_POOL_DRAIN_TIMEOUT=1, RESQUE_REQUEUE_DIRTY_JOBS=True),
    )
    pool.wait_for_workers({"deploy": 1})
    enqueue("Release", "endless", 600, queue="deploy")
    busy_worker(resque)
    app.release("second-release")
    pool.signal(signal.SIGHUP)
    pool.wait_for_log(r"still busy after 1s \(RESQUE_POOL_DRAIN_TIMEOUT\)", timeout=40)
    wait_until(lambda: list(workers_of(pool)) == [2], 40, message="generation 2 alone")
    # Requeued by the loss policy, the job starts again, on the new code.
    wait_until(lambda: processing_worker(resque), 30, message="the requeued job running")


def test_log_reopening_has_its_own_signal_and_never_redeploys(start_pool, tmp_path):
    app = App(tmp_path)
    config = write(tmp_path / "pool.yml", "deploy: 1\n")
    logs = tmp_path / "logs"
    pool = start_pool(
        "-c",
        str(config),
        "-e",
        str(logs / "err.log"),
        "-o",
        str(logs / "out.log"),
        settings=app.settings(),
    )
    err = logs / "err.log"
    wait_until(lambda: err.exists() and "started manager" in err.read_text(), 30, message="start")
    before = set(pool.wait_for_workers({"deploy": 1}))
    err.rename(logs / "err.log.1")
    pool.signal(signal.SIGALRM)
    wait_until(
        lambda: err.exists() and "reopened log files" in err.read_text(), 20, message="reopen"
    )
    time.sleep(1.5)
    assert set(pool.workers()) == before
    assert list(workers_of(pool)) == [1]
    assert "generation 2" not in err.read_text() + (logs / "err.log.1").read_text()
