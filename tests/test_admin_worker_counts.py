"""WorkerCount in the admin: list, inline count editing, validation, running column, pause
and restore actions, admin log."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from resque_pool.models import WorkerCount
from resque_pool.pool import state as pool_state
from tests.support.admin import operator_client, publish_pool

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:resque_pool_workercount_changelist"
ADD = "admin:resque_pool_workercount_add"


def make_client(*codenames: str, csrf: bool = False) -> Client:
    user = User.objects.create_user("op", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def editor() -> Client:
    return make_client("view_workercount", "change_workercount", "add_workercount")


def add(client: Client, **data):
    form = {"queues": "", "count": "1", "environment": "", "pool": "", **data}
    return client.post(reverse(ADD), form)


def publish(pool: str, environment: str, workers: dict, counts: dict | None = None) -> None:
    publish_pool(pool, environment, workers, **({"counts": counts} if counts else {}))


def test_permissions():
    assert Client().get(reverse(CHANGELIST)).status_code == 302
    assert make_client().get(reverse(CHANGELIST)).status_code == 403


def test_add_normalises_and_validates(editor):
    response = add(editor, queues=" high , low ", count="2", environment=" production ")
    assert response.status_code == 302
    row = WorkerCount.objects.get()
    assert (row.queues, row.count, row.environment) == ("high,low", 2, "production")
    for queues, message in [
        ("a,,b", "empty queue name"),
        ("a b", "contains whitespace"),
        ("!a,!b", "only of negations"),
        ("", "This field is required"),
    ]:
        response = add(editor, queues=queues)
        assert response.status_code == 200, queues
        assert message in response.content.decode(), queues
    response = add(editor, queues="x", count="-1")
    assert "greater than or equal to 0" in response.content.decode()
    assert WorkerCount.objects.count() == 1


def test_duplicate_detected_after_normalisation(editor):
    assert add(editor, queues="a,b").status_code == 302
    response = add(editor, queues="a, b")
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert add(editor, queues="a, b", environment="production").status_code == 302
    response = add(editor, queues=" a ,b", environment="production ")
    assert "already exists" in response.content.decode()
    assert WorkerCount.objects.count() == 2
    # Editing another row into a duplicate is refused too.
    other = WorkerCount.objects.create(queues="c")
    response = editor.post(
        reverse("admin:resque_pool_workercount_change", args=[other.pk]),
        {"queues": "a ,b", "count": "1", "environment": "", "pool": ""},
    )
    assert "already exists" in response.content.decode()
    assert WorkerCount.objects.get(pk=other.pk).queues == "c"


def test_changelist_columns_filters_search_and_running_column(editor):
    WorkerCount.objects.create(queues="high,low", count=2)
    WorkerCount.objects.create(queues="mail", count=1, environment="production", pool="web2")
    WorkerCount.objects.create(queues="slow", count=3, pool="web1")
    publish("web1", "production", {"high,low": [11, 12], "slow": [13]})
    publish("web2", "production", {"high,low": [21], "mail": [22]})
    publish("web3", "staging", {"mail": [31]})
    response = editor.get(reverse(CHANGELIST))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Running now" in body
    rows = {r.queues: r for r in response.context["cl"].result_list}
    column = next(c for c in response.context["cl"].list_display if callable(c))
    assert column(rows["high,low"]) == 3  # every pool
    assert column(rows["mail"]) == 1  # only production on web2, not staging's web3
    assert column(rows["slow"]) == 1  # only web1
    assert "?environment=production" in body and "?pool=web1" in body  # filters
    found = editor.get(reverse(CHANGELIST) + "?q=mail").context["cl"].result_list
    assert [r.queues for r in found] == ["mail"]


def test_running_column_reads_redis_once_per_changelist(editor, resque, monkeypatch):
    for n in range(30):
        WorkerCount.objects.create(queues=f"q{n}", count=1)
    publish("web1", "production", {f"q{n}": [n] for n in range(30)})
    calls = []
    original = pool_state.all_pools
    monkeypatch.setattr(pool_state, "all_pools", lambda: calls.append(1) or original())
    assert editor.get(reverse(CHANGELIST)).status_code == 200
    assert len(calls) == 1


def test_changelist_works_when_redis_is_down(editor, settings):
    from resque_pool.resque import connection as redis_connection

    WorkerCount.objects.create(queues="a", count=1)
    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"
    redis_connection.reset_connections()
    response = editor.get(reverse(CHANGELIST))
    assert response.status_code == 200 and ">?<" in response.content.decode()


def changelist_form(rows, **changes) -> dict:
    data = {
        "form-TOTAL_FORMS": str(len(rows)),
        "form-INITIAL_FORMS": str(len(rows)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, row in enumerate(rows):
        data[f"form-{i}-id"] = str(row.pk)
        data[f"form-{i}-count"] = str(changes.get(row.queues, row.count))
    return data


def test_list_editable_count_and_admin_log(editor):
    a = WorkerCount.objects.create(queues="a", count=1)
    b = WorkerCount.objects.create(queues="b", count=1)
    response = editor.post(reverse(CHANGELIST), changelist_form([a, b], a=5))
    assert response.status_code == 302
    assert WorkerCount.objects.get(pk=a.pk).count == 5
    entry = LogEntry.objects.get()
    assert entry.object_id == str(a.pk) and "Count" in entry.get_change_message()
    response = editor.post(reverse(CHANGELIST), changelist_form([a, b], b=-3))
    assert response.status_code == 200
    assert WorkerCount.objects.get(pk=b.pk).count == 1


def test_list_edit_needs_csrf_token():
    client = make_client("view_workercount", "change_workercount", csrf=True)
    a = WorkerCount.objects.create(queues="a", count=1)
    assert client.post(reverse(CHANGELIST), changelist_form([a], a=4)).status_code == 403
    assert WorkerCount.objects.get().count == 1


def action(client: Client, name: str, rows) -> object:
    return client.post(
        reverse(CHANGELIST), {"action": name, "_selected_action": [r.pk for r in rows]}
    )


def test_pause_and_restore(editor):
    a = WorkerCount.objects.create(queues="a", count=3)
    b = WorkerCount.objects.create(queues="b", count=0)
    c = WorkerCount.objects.create(queues="c", count=2)
    assert action(editor, "pause", [a, b]).status_code == 302
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert (a.count, a.paused_count) == (0, 3)
    assert (b.count, b.paused_count) == (0, None)  # nothing to remember
    assert (c.count, c.paused_count) == (2, None)
    body = editor.get(reverse(CHANGELIST)).content.decode()
    assert "paused (was 3)" in body
    # Pausing twice keeps the remembered count.
    action(editor, "pause", [a])
    a.refresh_from_db()
    assert (a.count, a.paused_count) == (0, 3)
    assert action(editor, "restore", [a, b, c]).status_code == 302
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert (a.count, a.paused_count) == (3, None)
    assert (b.count, c.count) == (0, 2)
    messages = [e.get_change_message() for e in LogEntry.objects.order_by("pk")]
    assert messages == ["Paused: count 3 → 0.", "Restored: count 0 → 3."]


def test_setting_a_count_by_hand_ends_the_pause(editor):
    a = WorkerCount.objects.create(queues="a", count=3)
    action(editor, "pause", [a])
    editor.post(reverse(CHANGELIST), changelist_form([WorkerCount.objects.get()], a=7))
    a.refresh_from_db()
    assert (a.count, a.paused_count) == (7, None)


def test_actions_need_change_permission():
    client = make_client("view_workercount")
    a = WorkerCount.objects.create(queues="a", count=3)
    action(client, "pause", [a])
    assert WorkerCount.objects.get().count == 3


def test_changelist_query_count_is_flat(editor):
    for n in range(50):
        WorkerCount.objects.create(queues=f"q{n}", count=1)
    with CaptureQueriesContext(connection) as few:
        editor.get(reverse(CHANGELIST))
    WorkerCount.objects.bulk_create([WorkerCount(queues=f"r{n}") for n in range(50)])
    with CaptureQueriesContext(connection) as many:
        editor.get(reverse(CHANGELIST))
    assert len(many) == len(few)


def test_changelist_links_to_the_dashboard_only_for_those_who_may_see_it(editor):
    dashboard = reverse("admin:resque_pool_dashboard_changelist")
    assert dashboard not in editor.get(reverse(CHANGELIST)).content.decode()
    user = User.objects.get(username="op")
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    assert dashboard in editor.get(reverse(CHANGELIST)).content.decode()


def test_an_autoscaled_rows_column_shows_each_pools_target_and_last_decision(editor):
    WorkerCount.objects.create(queues="high,low", count=1, max_count=8)
    WorkerCount.objects.create(queues="mail", count=1)
    decision = {
        "at": "2026-12-07T17:32:03+00:00",
        "from": 1,
        "to": 4,
        "reason": "16 jobs waiting, the oldest 2s, 1 busy",
    }
    scaled = {"floor": 1, "max": 8, "target": 4, "decision": decision, "ups": 1, "downs": 0}
    publish_pool(
        "web1",
        "production",
        {"high,low": [11, 12, 13, 14], "mail": [15]},
        autoscale={"high,low": scaled},
    )
    publish_pool(
        "web2",
        "production",
        {"high,low": [21]},
        autoscale={"high,low": {**scaled, "target": 1, "decision": None}},
    )
    response = editor.get(reverse(CHANGELIST))
    body = response.content.decode()
    assert "Maximum" in body and "Autoscaling" in body
    assert "web1: target 4" in body
    assert "(1 → 4 at 17:32:03: 16 jobs waiting, the oldest 2s, 1 busy)" in body
    assert "web2: target 1" in body and "(at its floor since the pool started)" in body
    assert ">fixed<" in body  # the mail row
    # The dashboard's pool list says it too.
    overview = operator_client().get(reverse("admin:resque_pool_dashboard_changelist"))
    assert "(autoscaled 1..8, target 4)" in overview.content.decode()


def test_a_maximum_below_the_count_is_refused_in_the_changelist(editor):
    row = WorkerCount.objects.create(queues="high", count=2)
    response = editor.post(
        reverse(CHANGELIST),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(row.id),
            "form-0-count": "2",
            "form-0-max_count": "1",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert "The maximum must be at least the count (2)." in response.content.decode()
    row.refresh_from_db()
    assert row.max_count is None
