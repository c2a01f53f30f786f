"""Things that must never take a running manager down, or take another pool down with it.
Real pools, real Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from tests.support.common import wait_until
from tests.support.pool_fixtures import write


def test_signal_29_is_logged_not_fatal(start_pool, tmp_path):
    """resque-pool queues signal 29 (SIGINFO/SIGIO); its default action would kill us."""
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")))
    before = pool.wait_for_workers({"demo": 1})
    pool.signal(signal.SIGIO)
    pool.wait_for_log(r"IO: no siginfo hooks here; pool contains")
    time.sleep(0.5)
    assert pool.process.poll() is None
    assert set(pool.titles()) == set(before)


def test_hup_survives_a_log_file_that_cannot_be_reopened(start_pool, tmp_path):
    logs = tmp_path / "logs"
    config = str(write(tmp_path / "pool.yml", "demo: 1\n"))
    pool = start_pool("-c", config, "-o", str(logs / "out.log"), "-e", str(logs / "err.log"))
    wait_until(
        lambda: (logs / "err.log").exists() and "started manager" in (logs / "err.log").read_text(),
        20,
        message="the manager logging to err.log",
    )
    pool.wait_for_workers({"demo": 1})
    (logs / "err.log").rename(logs / "err.log.1")
    (logs / "err.log").mkdir()  # what logrotate left is not a file we can open
    pool.signal(signal.SIGHUP)
    wait_until(
        lambda: "could not reopen" in (logs / "err.log.1").read_text(),
        20,
        message="the reopen error logged to the old file",
    )
    assert pool.process.poll() is None
    wait_until(
        lambda: "HUP: gracefully restarting all workers" in (logs / "err.log.1").read_text(),
        10,
        message="the HUP carried on",
    )
    pool.wait_for_workers({"demo": 1})


def test_kill_others_spares_the_old_pool_when_the_new_one_loads_nothing(start_pool, tmp_path):
    old = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), "-a", "app")
    old_workers = old.wait_for_workers({"demo": 1})
    new = start_pool(
        "-k",
        "-a",
        "app",
        name="new",
        settings={"RESQUE_POOL_CONFIG_LOADER": "tests.support.processes.failing_loader"},
    )
    new.wait_for_log(r"could not load worker counts from tests\.support\.processes\.failing_loader")
    time.sleep(3.0)  # several loop passes in which an empty pool would look "complete"
    assert "kill-others: sent QUIT" not in new.log()
    assert old.process.poll() is None and set(old.titles()) == set(old_workers)


def test_hostile_config_files_on_hup_keep_the_manager_and_its_workers(start_pool, tmp_path):
    from tests.test_pool_yaml import alias_bomb

    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config))
    before = pool.wait_for_workers({"demo": 1})
    hostile = [
        (alias_bomb(), "aliases expand to more than"),
        ("demo: 1\n" + "# padding\n" * 110_000, "larger than 1 MiB"),
        (None, "not a regular file"),  # a symlink to /dev/zero
    ]
    for number, (text, message) in enumerate(hostile, start=1):
        config.unlink()
        if text is None:
            config.symlink_to("/dev/zero")
        else:
            config.write_text(text)
        pool.signal(signal.SIGHUP)
        pool.wait_for_log(rf"could not load worker counts from \S+ \(ConfigError: .*{message}")
        # still answering signals at once, with the last good counts and the same workers
        pool.signal(signal.SIGIO)
        wait_until(
            lambda number=number: pool.log().count("IO: no siginfo hooks here") == number,
            10,
            message="the manager answering a signal",
        )
        assert set(pool.titles()) == set(before)
    assert pool.process.poll() is None
    assert max(len(line) for line in pool.log().splitlines()) < 600


def test_a_burst_of_stop_signals_never_kills_the_manager_by_default_action(start_pool, tmp_path):
    """Signals that keep arriving while the manager shuts down must not meet the default
    action (QUIT dumps core, TERM/INT kill): it exits 0 and removes its pidfile."""
    config = str(write(tmp_path / "pool.yml", "{}\n"))
    kinds = [signal.SIGQUIT, signal.SIGTERM, signal.SIGINT]
    outcomes = []
    for batch in range(4):
        pools = []
        for number in range(4):
            pidfile = tmp_path / f"pool-{batch}-{number}.pid"
            pool = start_pool("-c", config, "-p", str(pidfile), name=f"burst-{batch}-{number}")
            pools.append((pool, pidfile, kinds[(batch * 4 + number) % 3]))
        for pool, pidfile, signum in pools:
            pool.wait_for_log("Pool is empty")
            wait_until(pidfile.exists, 10, message="the pidfile")
            with contextlib.suppress(ProcessLookupError):
                while pool.process.poll() is None:
                    os.kill(pool.pid, signum)
            outcomes.append((signal.Signals(signum).name, pool.wait_exit(), pidfile.exists()))
    assert outcomes == [(name, 0, False) for name, _, _ in outcomes]
