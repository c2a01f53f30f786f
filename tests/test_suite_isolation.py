"""The suite's own promises under pytest-xdist (``-n``): each worker has a redis-server of
its own and a test database of its own, and the processes a test starts open that one; a
test marked ``alone`` runs while no other test does."""

from __future__ import annotations

import os
import subprocess
import sys

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


def _another_process_may_lock(path, kind: str) -> bool:
    """Whether a process other than this one could take ``kind`` ("shared"/"exclusive")
    on the run lock now (POSIX locks are per process, so this one cannot ask itself)."""
    script = (
        "import fcntl, sys\n"
        "kind = fcntl.LOCK_SH if sys.argv[2] == 'shared' else fcntl.LOCK_EX\n"
        "with open(sys.argv[1], 'a+') as handle:\n"
        "    try:\n"
        "        fcntl.lockf(handle, kind | fcntl.LOCK_NB)\n"
        "    except OSError:\n"
        "        sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", script, str(path), kind]).returncode == 0


def _run_lock(tmp_path_factory):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("the run lock is taken under pytest-xdist only")
    return tmp_path_factory.getbasetemp().parent / "alone.lock"


@pytest.mark.alone
def test_an_alone_test_runs_while_no_other_test_does(tmp_path_factory):
    lock = _run_lock(tmp_path_factory)
    # Every other worker's test holds the lock shared while it runs: none can now.
    assert not _another_process_may_lock(lock, "shared")


def test_other_tests_run_side_by_side(tmp_path_factory):
    lock = _run_lock(tmp_path_factory)
    assert _another_process_may_lock(lock, "shared")
    assert not _another_process_may_lock(lock, "exclusive")  # an alone test waits for us
