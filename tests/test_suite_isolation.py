"""The suite's own promises under pytest-xdist (``-n``): each worker has a redis-server of
its own and a test database of its own, and the processes a test starts open that one."""

from __future__ import annotations

import os

import pytest

from resque_pool.models import WorkerCount
from tests.support.processes import children


def test_each_pytest_process_has_a_redis_server_of_its_own(resque):
    """Tests run SCRIPT FLUSH and CONFIG SET on their server: it must be no one else's."""
    if os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis":
        pytest.skip("fakeredis runs in this process's own thread")
    assert resque.client.info("server")["process_id"] in children(os.getpid())


def test_a_started_process_opens_this_workers_test_database(run_manage, database_env):
    from django.db import connection

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # pytest-django's suffix: gw0's database is not gw1's
        assert str(connection.settings_dict["NAME"]).endswith(f"_{worker}")
    WorkerCount.objects.create(queues="seen-by-the-subprocess", count=1)
    result = run_manage(
        "shell",
        "-c",
        "from django.db import connection; from resque_pool.models import WorkerCount; "
        "print(connection.settings_dict['NAME']); "
        "print(list(WorkerCount.objects.values_list('queues', flat=True)))",
        env=database_env,
    )
    assert result.returncode == 0, result.stderr
    name, queues = result.stdout.strip().splitlines()[-2:]
    assert name == str(connection.settings_dict["NAME"])
    assert queues == "['seen-by-the-subprocess']"
