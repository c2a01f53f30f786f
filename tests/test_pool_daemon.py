"""Operations: --daemon (defaults, detach, WINCH, log reopen on HUP), --hot-swap /
--kill-others (same appname only, after our workers registered) and --lock."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import time

import pytest

from resque_pool.pool import state as pool_state
from resque_pool.resque import wire
from resque_pool.unix.process import identity
from tests.support.common import manage_command, wait_until
from tests.support.pool_fixtures import SETTINGS, registered, write
from tests.support.processes import alive, cmdline, kill_tree, pool_children, worker_titles


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow  # manage.py processes, started here rather than by a fixture
def test_daemon_defaults_detach_winch_and_reopen(resque, tmp_path):
    write(tmp_path / "pool.yml", "demo: 2\n")
    pidfile = tmp_path / "tmp" / "pids" / "resque-pool.pid"
    stderr_log = tmp_path / "log" / "resque-pool.stderr.log"
    result = subprocess.run(
        manage_command("resque_pool", "-d", "-c", "pool.yml"),
        cwd=tmp_path,
        env=resque.env(**SETTINGS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 20))
    try:
        assert (tmp_path / "log" / "resque-pool.stdout.log").exists()
        wait_until(lambda: "started manager" in stderr_log.read_text(), 20, message="log")
        # detached: its own session, not our child, stdin from /dev/null
        assert os.getsid(pid) != os.getsid(0)
        assert ppid_of(pid) != os.getpid()
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        assert cmdline(pid).startswith(f"resque-pool-master[{tmp_path.name}]:")
        # Both workers waiting for jobs, so with their own signal handlers: a QUIT that
        # reaches a worker forked a moment ago, before it left the manager's handlers
        # behind, is lost, and WINCH would then wait for it forever.
        workers = wait_until(lambda: _two_waiting_workers(pid), 20, message="two workers")

        # WINCH (handled because daemonized): zero workers, and it stays at zero until HUP
        os.kill(pid, signal.SIGWINCH)
        wait_until(lambda: not pool_children(pid), 20, message="workers stopped by WINCH")
        deadline = time.monotonic() + 2.5  # several loader periods
        while time.monotonic() < deadline:
            assert not pool_children(pid), "workers came back before HUP"
            time.sleep(0.1)
        assert [p["status"] for p in pool_state.all_pools() if p["pid"] == pid] == ["paused"]

        # logrotate moves the file; HUP reopens it and brings the workers back
        stderr_log.rename(stderr_log.with_suffix(".log.1"))
        os.kill(pid, signal.SIGHUP)
        back = wait_until(lambda: _two_waiting_workers(pid), 20, message="workers after HUP")
        assert not set(back) & set(workers)
        wait_until(
            lambda: (
                stderr_log.exists()
                and "reopened log files: log/resque-pool.stdout.log, log/resque-pool.stderr.log"
                in stderr_log.read_text()
            ),
            20,
            message="a reopened log",
        )

        os.kill(pid, signal.SIGQUIT)
        wait_until(lambda: not alive(pid), 30, message="daemon exit")
        assert not pidfile.exists()
        assert "manager finished" in stderr_log.read_text()
    finally:
        kill_tree(pid)


def _two_waiting_workers(pid: int) -> list[int] | None:
    titles = worker_titles(pid)
    ready = [child for child, title in titles.items() if "Waiting for demo" in title]
    return ready if len(titles) == len(ready) == 2 else None


def test_winch_is_ignored_without_daemon(start_pool, tmp_path):
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")))
    (worker,) = pool.wait_for_workers({"demo": 1})
    pool.signal(signal.SIGWINCH)
    pool.wait_for_log("ignoring SIGWINCH")
    assert pool.workers() == [worker]


def test_the_all_at_once_hot_swap_quits_only_pools_of_the_same_app(
    start_pool, tmp_path, resque
):
    config = str(write(tmp_path / "pool.yml", "demo: 1\n"))
    old = start_pool("-c", config, "-a", "alpha", name="old")
    other = start_pool("-c", config, "-a", "beta", name="other")
    old.wait_for_workers({"demo": 1})
    other_workers = other.wait_for_workers({"demo": 1})
    assert old.state()["appname"] == "alpha" and other.state()["appname"] == "beta"
    lock = tmp_path / "swap.lock"
    new = start_pool(
        "--hot-swap-all-at-once", "-l", str(lock), "-c", config, "-a", "alpha", name="new"
    )
    new_workers = new.wait_for_workers({"demo": 1})

    assert old.wait_exit(30) == 0  # QUIT: graceful, waited for its workers
    assert "QUIT: graceful shutdown" in old.log()
    assert old.pid not in {p["pid"] for p in pool_state.all_pools()}  # withdrawn at exit
    log = new.log()
    (new_worker,) = new_workers
    sent = log.index(f"kill-others: sent QUIT to pool {old.pid}")
    registered_at = re.search(rf"Worker \S+:{new_worker}:demo registered", log)
    assert registered_at and registered_at.start() < sent  # only once our workers registered
    assert other.process.poll() is None and other.workers() == list(other_workers)
    assert new.process.poll() is None
    assert any(f":{new_worker}:demo" in worker_id for worker_id in registered(resque))

    # --lock: a shared flock held by the new generation (an init script waits with flock -x)
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the lock is not held")
        except BlockingIOError:
            pass
    new.signal(signal.SIGQUIT)
    assert new.wait_exit(30) == 0
    with open(lock) as handle:
        wait_until(lambda: _try_exclusive(handle), 20, message="lock released with the pool")


def test_the_hot_swap_takes_the_old_pools_slots_one_by_one(start_pool, tmp_path, resque):
    """--hot-swap: the new pool loads, QUITs the old one and forks into each slot an old
    worker leaves: the idle slot moves at once, the busy one when its job is done, and
    the app never runs more workers than the counts (resque-pool #139)."""
    config = str(write(tmp_path / "pool.yml", "demo: 2\n"))
    # Another app's pool, on another queue so that it cannot take alpha's job.
    other = start_pool("-c", str(write(tmp_path / "beta.yml", "high: 1\n")), "-a", "beta")
    # The same app on another namespace: another deployment (staging), left alone.
    stranger = start_pool(
        "-c", config, "-a", "alpha", env={"RESQUE_NAMESPACE": f"{resque.namespace}-staging"}
    )
    old = start_pool("-c", config, "-a", "alpha", name="old")
    old_workers = set(old.wait_for_workers({"demo": 2}))
    other_workers = other.wait_for_workers({"high": 1})
    stranger_workers = stranger.wait_for_workers({"demo": 2})
    # Both of alpha's workers busy would leave nothing to move at once: one long job.
    client = resque.client
    client.sadd(resque.key("queues"), "demo")
    client.rpush(resque.key("queue", "demo"), wire.job_payload("SlowRecord", ["long", 4]))
    wait_until(
        lambda: any(client.get(resque.key("worker", w)) for w in registered(resque)),
        20,
        0.05,
        "the long job running",
    )
    new = start_pool("-H", "-l", str(tmp_path / "swap.lock"), "-c", config, "-a", "alpha")
    # Until the command has become the master, its one child is the first generation,
    # not a worker; the take-over waits for the master's go-ahead anyway.
    wait_until(lambda: cmdline(new.pid).startswith("resque-pool-master["), 30, 0.01, "master")
    seen, crowded = 0, []
    moved_idle = None
    began = time.monotonic()
    while time.monotonic() - began < 60:
        # The new workers first: a replacement forked between the two reads then shows
        # in neither, never in both. An exited worker holds no slot, reaped or not.
        new_alive = set(new.workers()) if new.process.poll() is None else set()
        old_alive = {pid for pid in old_workers if identity(pid)}
        seen = max(seen, len(old_alive) + len(new_alive))
        if len(old_alive) + len(new_alive) > 2:
            crowded.append((round(time.monotonic() - began, 2), new_alive, old_alive))
        if moved_idle is None and len(old_alive) == 1 and len(new_alive) == 1:
            moved_idle = time.monotonic() - began
        if not old_alive and len(new_alive) == 2:
            break
        time.sleep(0.02)
    assert seen <= 2, f"{seen} workers of alpha at once: {crowded}\n{new.log()}"
    assert moved_idle is not None, new.log()
    new.wait_for_workers({"demo": 2})
    assert old.wait_exit(30) == 0
    assert f"hot swap: sent QUIT to pool {old.pid}" in new.log()
    # The long job ran to its end on the old code, once; nothing failed.
    assert client.smembers(resque.key("demo", "done")) == {"long"}
    assert client.llen(resque.key("failed")) == 0
    assert other.process.poll() is None and other.workers() == list(other_workers)
    assert stranger.process.poll() is None and stranger.workers() == list(stranger_workers)


def _try_exclusive(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(handle, fcntl.LOCK_UN)
    return True


# -- hostile paths ---------------------------------------------------------------------------


def test_a_lock_planted_as_a_symlink_is_refused_and_its_target_kept(tmp_path):
    from resque_pool.pool import daemon

    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me\n")
    planted = tmp_path / "pool.lock"
    planted.symlink_to(target)
    try:
        daemon.obtain_shared_lock(str(planted))
        raise AssertionError("a symlinked lock was opened")
    except daemon.DaemonError as error:
        assert str(planted) in str(error) and "\n" not in str(error)
    assert target.read_text() == "do not truncate me\n"


def test_a_lock_file_is_never_truncated(tmp_path):
    from resque_pool.pool import daemon

    lock = tmp_path / "pool.lock"
    lock.write_text("kept\n")
    handle = daemon.obtain_shared_lock(str(lock))
    try:
        assert lock.read_text() == "kept\n"
    finally:
        handle.close()


def test_a_symlink_planted_at_the_temporary_pidfile_is_not_written_through(tmp_path):
    from resque_pool.pool import daemon

    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite me\n")
    path = tmp_path / "pool.pid"
    (tmp_path / f"pool.pid.{os.getpid()}.tmp").symlink_to(target)
    pidfile = daemon.Pidfile(str(path))
    pidfile.write()
    try:
        assert target.read_text() == "do not overwrite me\n"
        assert path.read_text() == f"{os.getpid()}\n" and not path.is_symlink()
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "pool.pid",
            f"pool.pid.{os.getpid()}.tmp",
            "precious.txt",
        ]
    finally:
        pidfile.remove()
    assert not path.exists()


def test_the_command_refuses_a_symlinked_lock_in_one_line(run_manage, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me\n")
    planted = tmp_path / "pool.lock"
    planted.symlink_to(target)
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    result = run_manage("resque_pool", "-c", str(config), "-l", str(planted))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "symbolic link" in result.stderr
    assert target.read_text() == "do not truncate me\n"


# -- unusable paths: one line, non-zero exit, before detaching -------------------------------


@pytest.mark.slow  # manage.py processes, started here rather than by a fixture
@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("--pidfile", "pool.pid"),
        ("--stdout", "out.log"),
        ("--stderr", "err.log"),
        ("--lock", "pool.lock"),
    ],
)
@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "daemon"])
def test_an_unusable_path_is_one_line_before_detaching(resque, tmp_path, option, name, detach):
    """A path under a regular file can be neither created nor opened (even by root)."""
    write(tmp_path / "pool.yml", "demo: 1\n")
    blocker = write(tmp_path / "not-a-dir", "a regular file\n")
    bad = str(blocker / name)
    args = ["resque_pool", "-c", "pool.yml"]
    if detach:
        args += ["-d", "--no-pidfile", "-o", "out.log", "-e", "err.log"]
    args += [option, bad]  # last, so it wins over the ones above
    result = subprocess.run(
        manage_command(*args),
        cwd=tmp_path,
        env=resque.env(**SETTINGS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert bad in lines[0] and "Traceback" not in result.stderr
    assert "replacing stale pidfile" not in result.stderr
    assert blocker.read_text() == "a regular file\n"
    time.sleep(0.5)  # a detached daemon would be starting now
    assert "started manager" not in _text(tmp_path / "err.log")


def _text(path) -> str:
    return path.read_text() if path.exists() else ""
