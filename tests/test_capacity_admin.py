"""What a pool's memory budget looks like from outside: the overview's pools table, the
WorkerCount changelist's warning and the metrics view's gauges, all read from the state a
pool publishes (its ``memory`` object, resque_pool/capacity/memory.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from resque_pool.pool import state as pool_state
from tests.support.admin import url
from tests.test_metrics import scrape, value  # noqa: F401 (scrape is a fixture)

pytestmark = pytest.mark.django_db
MB = 2**20


def publish(pool_id: str, memory: dict | None) -> None:
    host, pid = pool_id.split(":")
    state = {
        "id": pool_id,
        "host": host,
        "pid": int(pid),
        "appname": "shop",
        "pool": host,
        "environment": "",
        "status": "running",
        "counts": {"high,low": 5},
        "workers": {"high,low": [11, 12]},
        "source": "database",
        "max_workers": 256,
    }
    if memory is not None:
        state["memory"] = memory
    pool_state.publish(state)


FULL = {
    "budget_bytes": 900 * MB,
    "source": "cgroup v1",
    "used_bytes": 870 * MB,
    "worker_bytes": 95 * MB,
    "fit": 0,
    "refused": 3,
}
ROOMY = {**FULL, "used_bytes": 300 * MB, "fit": 6, "refused": 0, "source": "setting"}
NO_BUDGET = {**ROOMY, "budget_bytes": None, "fit": None, "source": "none"}


@pytest.fixture
def viewer_client() -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    for codename in ("view_dashboard", "view_workercount"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_overview_shows_each_pools_memory_and_a_red_line_when_it_refuses(viewer_client):
    publish("web1:1", FULL)
    publish("web2:2", ROOMY)
    publish("web3:3", NO_BUDGET)
    publish("web4:4", None)  # an older pool: no memory object, no line
    publish("web5:5", {"used_bytes": "lots", "refused": "x"})  # another shape: no line
    body = viewer_client.get(url("changelist")).content.decode()
    assert "memory: 870 of 900 MB, 0 more workers fit" in body
    assert "memory: 300 of 900 MB, 6 more workers fit" in body
    assert "memory: 300 MB, no budget" in body
    assert body.count('class="pool-memory"') == 3
    assert body.count("pool-memory-refused resque-bad") == 1
    assert "memory budget full: not forking 3 workers (a worker takes about 95 MB)" in body


def test_the_worker_counts_changelist_warns_about_a_pool_refusing_forks(viewer_client):
    publish("web1:1", FULL)
    publish("web2:2", ROOMY)
    response = viewer_client.get(reverse("admin:resque_pool_workercount_changelist"))
    warnings = [str(m) for m in response.context["messages"]]
    assert warnings == [
        "Pool web1 (web1:1) is not forking 3 worker(s): its memory budget is full (870 of "
        "900 MB used, a worker takes about 95 MB). Lower the counts or raise "
        "RESQUE_POOL_MEMORY_BUDGET_MB."
    ]


def test_the_metrics_view_has_the_budget_gauges_per_pool(scrape):  # noqa: F811
    publish("web1:1", FULL)
    publish("web3:3", NO_BUDGET)
    publish("web5:5", {"used_bytes": "lots"})
    samples = scrape()
    labels = {"pool": "web1:1", "host": "web1", "appname": "shop"}
    assert value(samples, "resque_pool_memory_budget_bytes", **labels) == 900 * MB
    assert value(samples, "resque_pool_memory_used_bytes", **labels) == 870 * MB
    assert value(samples, "resque_pool_memory_workers_fit", **labels) == 0
    assert value(samples, "resque_pool_memory_workers_refused", **labels) == 3
    unlimited = {"pool": "web3:3", "host": "web3", "appname": "shop"}
    assert value(samples, "resque_pool_memory_used_bytes", **unlimited) == 300 * MB
    budgets = [labels for labels, _ in samples["resque_pool_memory_budget_bytes"]]
    assert unlimited not in budgets  # no budget: no series
    assert all(labels["pool"] != "web5:5" for labels, _ in samples["resque_pool_memory_used_bytes"])
