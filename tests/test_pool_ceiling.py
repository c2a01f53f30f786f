"""RESQUE_POOL_MAX_WORKERS: one pool's total is capped, in a file, a loader, the manager and
the WorkerCount admin."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from resque_pool.config_error import ConfigError
from resque_pool.models import WorkerCount
from resque_pool.pool.config import load_file, validate_counts
from resque_pool.pool.loaders import Source
from resque_pool.pool.manager import Manager, Options
from tests.support.admin import publish_pool
from tests.support.pool_fixtures import write

CHANGELIST = "admin:resque_pool_workercount_changelist"
ADD = "admin:resque_pool_workercount_add"


def test_the_default_ceiling_is_256():
    assert validate_counts({"a": 200, "b": 56}, "loader") == {"a": 200, "b": 56}
    with pytest.raises(ConfigError, match=r"257 workers in total.*RESQUE_POOL_MAX_WORKERS \(256\)"):
        validate_counts({"a": 200, "b": 57}, "loader")


def test_the_ceiling_applies_to_the_merged_file(tmp_path, settings):
    settings.RESQUE_POOL_MAX_WORKERS = 10
    path = write(tmp_path / "pool.yml", "foo: 99999999999\nproduction:\n  foo: 4\n  bar: 6\n")
    assert load_file(str(path), "production") == {"foo": 4, "bar": 6}  # the section wins
    with pytest.raises(ConfigError, match=r"pool.yml: 99999999999 workers in total"):
        load_file(str(path), None)


def test_test_option_exits_2_with_one_line(run_manage, tmp_path):
    config = write(tmp_path / "pool.yml", "foo: 99999999999\n")
    result = run_manage("resque_pool", "--test", "-c", str(config), timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"CommandError: {config}: 99999999999 workers in total, more than "
        "RESQUE_POOL_MAX_WORKERS (256)"
    )


def test_a_pool_refuses_to_start_over_the_ceiling(run_manage, tmp_path):
    config = write(tmp_path / "pool.yml", "foo: 200\nbar: 100\n")
    result = run_manage("resque_pool", "-c", str(config), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {config}: 300 workers in total, more than RESQUE_POOL_MAX_WORKERS (256)"
    ]


def test_a_later_load_over_the_ceiling_keeps_the_last_good_counts(caplog, settings):
    settings.RESQUE_POOL_MAX_WORKERS = 5
    outcomes = [{"a": 2}, {"a": 2, "b": 4}]
    manager = Manager(
        Source(lambda environment: outcomes.pop(0), "custom"),
        Options(environment=None, pool="p", appname="t"),
    )
    try:
        caplog.set_level(logging.ERROR, logger="resque_pool")
        assert manager.load_counts()
        assert not manager.load_counts()
        assert manager.counts == {"a": 2}
        assert "6 workers in total, more than RESQUE_POOL_MAX_WORKERS (5)" in caplog.text
        state = manager.state()
        assert state["counts"] == {"a": 2} and state["max_workers"] == 5
        assert state["source"] == "custom"
    finally:
        manager.signals.close()


# -- the admin -------------------------------------------------------------------------------


@pytest.fixture
def editor(db) -> Client:
    user = User.objects.create_user("op", password="pw", is_staff=True)
    for codename in ("view_workercount", "change_workercount", "add_workercount"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_refuses_a_row_over_the_ceiling(editor, settings):
    settings.RESQUE_POOL_MAX_WORKERS = 8
    response = editor.post(reverse(ADD), {"queues": "mail", "count": "9"})
    assert response.status_code == 200
    assert "at most 8 (RESQUE_POOL_MAX_WORKERS)" in response.content.decode()
    assert not WorkerCount.objects.exists()
    response = editor.post(reverse(ADD), {"queues": "mail", "count": "8"})
    assert response.status_code == 302
    assert WorkerCount.objects.get().count == 8


def test_the_admin_refuses_an_inline_edit_over_the_ceiling(editor, settings):
    settings.RESQUE_POOL_MAX_WORKERS = 8
    row = WorkerCount.objects.create(queues="mail", count=1)
    response = editor.post(
        reverse(CHANGELIST),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(row.pk),
            "form-0-count": "1000",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert "at most 8 (RESQUE_POOL_MAX_WORKERS)" in response.content.decode()
    row.refresh_from_db()
    assert row.count == 1


def publish(pool: str, environment: str, source: str = "database", max_workers=256) -> None:
    publish_pool(pool, environment, source=source, max_workers=max_workers)


def test_the_changelist_warns_when_a_live_pool_would_merge_past_its_ceiling(editor):
    WorkerCount.objects.create(queues="a", count=200)
    WorkerCount.objects.create(queues="b", count=50, environment="production")
    WorkerCount.objects.create(queues="c", count=10, pool="web1")
    publish("web1", "production")  # 260: over
    publish("web2", "production")  # 250: fine
    publish("web3", "", source="config/resque-pool.yml")  # rows do not apply to it
    page = editor.get(reverse(CHANGELIST)).content.decode()
    assert page.count("more than its ceiling") == 1
    assert "web1" in page and "260 workers" in page and "ceiling of 256" in page

    publish("web2", "production", max_workers=100)  # a host with a lower ceiling
    page = editor.get(reverse(CHANGELIST)).content.decode()
    assert page.count("more than its ceiling") == 2
