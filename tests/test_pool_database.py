"""The pool and its workers sharing the database safely across forks.

The manager queries ``WorkerCount`` every loader period and forks workers; each worker
forks a child per job, and these jobs query the database too. A connection inherited
across a fork and used on both sides corrupts the protocol stream (PostgreSQL reports
errors such as "lost synchronization with server", django-rq #650), so this test is
most telling when the suite runs against PostgreSQL (scripts/test.sh does so when one is
reachable); on SQLite it still proves the jobs see the pool's rows.
"""

from __future__ import annotations

import time

from resque_pool.models import WorkerCount
from resque_pool.resque import failures as failure
from resque_pool.resque import wire
from tests.support.common import wait_until

JOBS = 40


def test_jobs_query_the_database_while_the_manager_polls_it(start_pool, database_env, resque):
    WorkerCount.objects.create(queues="dbjobs", count=2)
    WorkerCount.objects.create(queues="idle", count=0)
    pool = start_pool("--pool", "here", env=database_env)
    pool.wait_for_workers({"dbjobs": 2})

    pipe = resque.client.pipeline()
    pipe.sadd(resque.key("queues"), "dbjobs")
    for n in range(JOBS):
        pipe.rpush(resque.key("queue", "dbjobs"), wire.job_payload("CountRows", [n]))
    pipe.execute()
    # Keep the manager's loader busy with changes while the jobs run.
    row = WorkerCount.objects.get(queues="idle")
    for _ in range(3):
        row.count = 0
        row.save()
        time.sleep(0.4)

    wait_until(
        lambda: resque.client.scard(resque.key("dbjobs", "done")) == JOBS,
        timeout=60,
        message=lambda: f"{JOBS} CountRows jobs (log:\n{pool.log()})",
    )
    assert resque.client.smembers(resque.key("dbjobs", "done")) == {f"{n}:2" for n in range(JOBS)}
    assert failure.count() == 0, failure.all(0, 5)
    assert "could not load worker counts" not in pool.log()
    assert set(pool.titles()) == set(pool.wait_for_workers({"dbjobs": 2}))
