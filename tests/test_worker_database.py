"""The worker's handling of Django's database connections around jobs
(resque_pool/worker/database.py): what a job opened is closed as Django closes it around a
request, whether or not the worker saw a connection open before."""

import time

import pytest
from django.db import connection

from resque_pool.models import WorkerCount
from resque_pool.worker import database

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_connection_a_job_opened_is_closed_after_the_job():
    database.close_all()
    assert not database.any_open()
    database.close_old()  # nothing open: nothing to do
    WorkerCount.objects.count()  # the job opens one
    assert database.any_open()
    database.close_old()
    assert connection.connection is None


def test_a_kept_connection_is_checked_around_every_job_until_it_closes(settings):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 600
    connection.settings_dict["CONN_MAX_AGE"] = 600
    try:
        database.close_all()
        WorkerCount.objects.count()
        database.close_old()
        assert connection.connection is not None  # within CONN_MAX_AGE: kept
        database.close_old()
        assert connection.connection is not None
        connection.close_at = time.monotonic() - 1  # past its age now
        database.close_old()
        assert connection.connection is None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
        connection.close()


def test_a_connection_opened_after_everything_was_closed_is_closed_before_a_fork():
    database.close_all()
    database.close_all()  # nothing open: nothing to do
    WorkerCount.objects.count()
    database.close_all()
    assert connection.connection is None
    assert not database.any_open()
