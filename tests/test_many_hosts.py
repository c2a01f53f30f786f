"""Many hosts against one Redis and one database, as Linux network namespaces on a bridge
(tests/support/hosts.py): per-pool counts from one set of rows, a host whose clock is
minutes off, and a host cut off from Redis by a dead link.

Each host runs a real ``manage.py resque_pool --pool <host>`` under its own hostname; the
database is this test's SQLite file (or PostgreSQL through its Unix socket), which a cut
link does not cut, as a database on another network path would not be.
"""

from __future__ import annotations

import glob
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis

from resque_pool.models import WorkerCount
from resque_pool.resque import wire
from tests.support.common import manage_command, wait_until
from tests.support.hosts import Lab, lab

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start_pool(
    built: Lab, host: str, resque, database_env, process_settings, tmp_path: Path, **settings
) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{host}.log"
    env = resque.env(
        RESQUE_REDIS_URL=built.redis_url,
        **built.database_env(database_env),
        **process_settings(**settings),
    )
    with log.open("w") as handle:
        process = built.spawn(
            host,
            manage_command("resque_pool", "--pool", host, "--appname", "fleet"),
            env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return process, log


def workers_by_host(client: redis.Redis, namespace: str) -> dict[str, list[str]]:
    """Registered workers per host name: ``{"h1": ["demo", "demo"], ...}``."""
    found: dict[str, list[str]] = {}
    for worker_id in client.smembers(f"{namespace}:workers"):
        host, _pid, queues = worker_id.split(":", 2)
        found.setdefault(host, []).append(queues)
    return {host: sorted(lists) for host, lists in found.items()}


def lab_client(built: Lab) -> redis.Redis:
    return redis.Redis.from_url(built.redis_url, decode_responses=True)


def test_one_set_of_rows_steers_the_pool_of_each_host(
    resque, database_env, process_settings, tmp_path
):
    WorkerCount.objects.create(queues="demo", count=1)  # every pool
    WorkerCount.objects.create(queues="demo", count=2, pool="h1")
    WorkerCount.objects.create(queues="high", count=1, pool="h2")
    with lab("h1", "h2") as built:
        client = lab_client(built)
        logs = {}
        for host in ("h1", "h2"):
            _process, logs[host] = start_pool(
                built, host, resque, database_env, process_settings, tmp_path
            )

        def each_host_runs(expected):
            return lambda: workers_by_host(client, resque.namespace) == expected

        wait_until(
            each_host_runs({"h1": ["demo", "demo"], "h2": ["demo", "high"]}),
            60,
            0.2,
            lambda: "each host's own counts\n"
            + "\n".join(f"--- {h}\n{log.read_text()}" for h, log in logs.items()),
        )
        # The pools published themselves under their hosts' names, for the admin.
        pools = client.smembers(f"{resque.namespace}:pools")
        assert {pool_id.split(":")[0] for pool_id in pools} == {"h1", "h2"}
        # One edit in the admin's table reaches the one host it is for.
        WorkerCount.objects.filter(pool="h1").update(count=3)
        wait_until(
            each_host_runs({"h1": ["demo", "demo", "demo"], "h2": ["demo", "high"]}),
            30,
            0.2,
            "h1 grows to three workers",
        )


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip("libfaketime is not installed (Debian package 'faketime')")
    return found[0]


def test_a_host_whose_clock_is_minutes_off_prunes_nobody_and_is_not_pruned(
    resque, database_env, process_settings, tmp_path
):
    # A prune interval of 6 s: a host judging heartbeats by its own clock, 10 minutes
    # behind or ahead, would see every other heartbeat as stale (or its own as stale to
    # the others) within seconds. Heartbeats are Redis's TIME, so none is.
    WorkerCount.objects.create(queues="demo", count=2)
    fast = {
        "RESQUE_HEARTBEAT_INTERVAL": 1.0,
        "RESQUE_PRUNE_INTERVAL": 6.0,
    }
    skew = {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }
    with lab("early", "late", "true") as built:
        client = lab_client(built)
        logs = {}
        for host, offset in (("early", "-10m"), ("late", "+10m"), ("true", None)):
            env = {**skew, "FAKETIME": offset} if offset else {}
            log = tmp_path / f"{host}.log"
            with log.open("w") as handle:
                built.spawn(
                    host,
                    manage_command("resque_pool", "--pool", host, "--appname", "fleet"),
                    resque.env(
                        RESQUE_REDIS_URL=built.redis_url,
                        **built.database_env(database_env),
                        **process_settings(**fast),
                        **env,
                    ),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            logs[host] = log
        expected = {host: ["demo", "demo"] for host in logs}
        wait_until(
            lambda: workers_by_host(client, resque.namespace) == expected,
            60,
            0.2,
            lambda: "every host's workers\n"
            + "\n".join(f"--- {h}\n{log.read_text()}" for h, log in logs.items()),
        )
        first = set(client.smembers(f"{resque.namespace}:workers"))
        # Three prune intervals: every pool prunes at least twice meanwhile.
        time.sleep(18)
        assert set(client.smembers(f"{resque.namespace}:workers")) == first
        for host, log in logs.items():
            assert "Pruning dead worker" not in log.read_text(), (host, log.read_text())


def test_a_host_cut_off_longer_than_the_prune_interval_loses_its_job_to_another(
    resque, database_env, process_settings, tmp_path
):
    # h1 runs a long job; its link dies for longer than the prune interval. h2 prunes
    # h1's worker, requeues the job (the requeue policy) and runs it. When the link comes
    # back, h1's worker finds it was pruned and registers again, and the job h1 was
    # running, which fails late, writes no failure over the run h2 settled: the job ran
    # twice (at least once), and its one outcome is h2's.
    WorkerCount.objects.create(queues="demo", count=1, pool="h1")
    WorkerCount.objects.create(queues="demo", count=1, pool="h2")
    settings = {
        "RESQUE_HEARTBEAT_INTERVAL": 1.0,
        "RESQUE_PRUNE_INTERVAL": 5.0,
        "RESQUE_REQUEUE_DIRTY_JOBS": True,
    }
    with lab("h1", "h2") as built:
        client = lab_client(built)
        ns = resque.namespace
        h1, log1 = start_pool(
            built, "h1", resque, database_env, process_settings, tmp_path, **settings
        )
        wait_until(
            lambda: workers_by_host(client, ns).get("h1") == ["demo"],
            60,
            0.2,
            lambda: f"h1's worker\n{log1.read_text()}",
        )
        client.sadd(f"{ns}:queues", "demo")
        # The first run sleeps 20 s, then fails; the run after the requeue records.
        client.rpush(f"{ns}:queue:demo", wire.job_payload("SlowOnceThenFail", ["cut", 20.0]))
        wait_until(lambda: client.get(f"{ns}:test:runs:cut") == "1", 30, 0.1, "h1 runs the job")
        [h1_worker] = [w for w in client.smembers(f"{ns}:workers") if w.startswith("h1:")]
        # Only now does h2 start, so that h1 is the one that took the job.
        built.cut("h1")
        cut_at = time.monotonic()
        h2, log2 = start_pool(
            built, "h2", resque, database_env, process_settings, tmp_path, **settings
        )
        wait_until(
            lambda: client.sismember(f"{ns}:demo:done", "cut"),
            60,
            0.2,
            lambda: f"h2 runs the requeued job\n--- h2\n{log2.read_text()}",
        )
        recovered_after = time.monotonic() - cut_at
        assert client.get(f"{ns}:test:runs:cut") == "2"
        assert h1_worker not in client.smembers(f"{ns}:workers")
        assert f"Pruning dead worker: {h1_worker}" in log2.read_text()
        assert recovered_after < 30, recovered_after
        built.mend("h1")
        # The first run ends (late, failing) on h1 once its sleep is over.
        wait_until(
            lambda: "the first run of cut ended late" in log1.read_text(),
            40,
            0.2,
            lambda: f"h1's late failure\n--- h1\n{log1.read_text()}",
        )
        wait_until(
            lambda: h1_worker in client.smembers(f"{ns}:workers"),
            30,
            0.2,
            lambda: f"h1's worker registered again\n--- h1\n{log1.read_text()}",
        )
        assert client.llen(f"{ns}:failed") == 0, client.lrange(f"{ns}:failed", 0, -1)
        assert client.llen(f"{ns}:queue:demo") == 0
        assert client.get(f"{ns}:test:runs:cut") == "2"
        assert h1.poll() is None and h2.poll() is None


def test_an_idle_worker_waiting_on_a_cut_link_notices_and_comes_back(
    resque, database_env, process_settings, tmp_path
):
    # An idle worker waits on Redis without a time-out. When the link dies, no packet and
    # no error arrive: TCP keepalive (resque/connection.py: about 25 s of silence) ends
    # the wait, the worker meets the outage, and it takes jobs again once the link is back.
    WorkerCount.objects.create(queues="demo", count=1, pool="h1")
    with lab("h1") as built:
        client = lab_client(built)
        ns = resque.namespace
        _h1, log = start_pool(built, "h1", resque, database_env, process_settings, tmp_path)
        wait_until(
            lambda: workers_by_host(client, ns).get("h1") == ["demo"],
            60,
            0.2,
            lambda: f"h1's worker\n{log.read_text()}",
        )
        [worker_id] = client.smembers(f"{ns}:workers")
        worker_pid = worker_id.split(":")[1]
        time.sleep(1)  # idle: its BLPOP pending
        built.cut("h1")
        cut_at = time.monotonic()
        noticed = re.compile(rf"\[{worker_pid}\] .*Redis is unreachable")
        wait_until(
            lambda: noticed.search(log.read_text()),
            90,
            0.2,
            lambda: f"the idle worker noticing the cut link\n{log.read_text()}",
        )
        noticed_after = time.monotonic() - cut_at
        print(f"noticed after {noticed_after:.1f}s")
        assert noticed_after < 60, noticed_after
        built.mend("h1")
        client.sadd(f"{ns}:queues", "demo")
        client.rpush(f"{ns}:queue:demo", wire.job_payload("Record", ["after the cut"]))
        wait_until(
            lambda: client.sismember(f"{ns}:demo:done", "after the cut"),
            60,
            0.2,
            lambda: f"the job after the link came back\n{log.read_text()}",
        )
