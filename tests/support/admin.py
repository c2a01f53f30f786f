"""Helpers shared by the admin tests: users with dashboard permissions, and Redis data
written exactly as Ruby's Resque writes it."""

from __future__ import annotations

import json
import os
import shlex

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

RUBY_FAILURE = (
    '{"failed_at":"2026/11/22 08:59:40 CET","payload":{"class":"BadJob","args":[42]},'
    '"exception":"ArgumentError","error":"bad thing é","backtrace":["exp2.rb:25:in `perform\'"],'
    '"worker":"vm:6831:high,low","queue":"low"}'
)


def url(name: str, *args) -> str:
    return reverse(f"admin:resque_pool_dashboard_{name}", args=args)


def make_user(username: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="resque_pool")
        )
    return user


def viewer_client() -> Client:
    client = Client()
    client.force_login(make_user("viewer", "view_dashboard"))
    return client


def operator_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("operator", "change_dashboard"))
    return client


def csrf_post(client: Client, path: str, data: dict | None = None, page: str | None = None):
    """POST as a browser does: read the CSRF token from a page first."""
    client.get(page or url("changelist"))
    token = client.cookies["csrftoken"].value
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token})


def ruby_worker(
    resque,
    worker_id="rubyhost:7012:high,low",
    *,
    job=None,
    heartbeat="2026-11-22T08:59:40+01:00",
    started="2026-11-22 08:59:40 +0100",
    processed=None,
    failed=None,
) -> str:
    c = resque.client
    c.sadd(resque.key("workers"), worker_id)
    if started is not None:
        c.set(resque.key("worker", worker_id, "started"), started)
    if heartbeat is not None:
        c.hset(resque.key("workers:heartbeat"), worker_id, heartbeat)
    if job is not None:
        c.set(resque.key("worker", worker_id), job)
    if processed is not None:
        c.set(resque.key("stat", "processed", worker_id), processed)
    if failed is not None:
        c.set(resque.key("stat", "failed", worker_id), failed)
    return worker_id


def push_jobs(resque, queue: str, payloads: list[str]) -> None:
    resque.client.sadd(resque.key("queues"), queue)
    if payloads:
        resque.client.rpush(resque.key("queue", queue), *payloads)


def failure_json(n: int, cls: str = "BadJob", **extra) -> str:
    entry = {
        "failed_at": "2026/11/22 08:59:40 UTC",
        "payload": {"class": cls, "args": [n]},
        "exception": "RuntimeError",
        "error": f"boom {n}",
        "backtrace": [f"f.py:{n}"],
        "worker": "py:1:demo",
        "queue": "demo",
        **extra,
    }
    return json.dumps(entry, separators=(",", ":"))


class RecordedCommands:
    """Commands the Redis server received on this test's keys, seen through ``MONITOR``
    (the server's own record, so pipelines and every client are counted)."""

    def __init__(self, resque) -> None:
        self.resque = resque
        self.commands: list[list[str]] = []

    def __enter__(self) -> RecordedCommands:
        import redis as redis_lib

        if os.environ.get("RESQUE_TEST_REDIS_KIND") == "fakeredis":
            import pytest

            pytest.skip("MONITOR needs a real redis-server")
        self._client = redis_lib.Redis.from_url(self.resque.url, decode_responses=True)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        sentinel = f"{self.resque.namespace}:end-of-recording"
        self._client.echo(sentinel)
        while True:
            command = self._monitor.next_command()["command"]
            if sentinel in command:
                break
            if self.resque.namespace in command:
                self.commands.append(shlex.split(command))
        self._monitor.__exit__(*exc_info)
        self._client.close()

    def named(self, name: str) -> list[list[str]]:
        return [c for c in self.commands if c[0].upper() == name.upper()]


def publish_pool(pool: str, environment: str, workers: dict | None = None, **fields) -> None:
    """Publish a live pool state as a manager on host ``pool`` would (pid 1, appname
    ``app``): ``counts`` default to the number of pids per queue list in ``workers``;
    ``fields`` (``source``, ``max_workers``, ...) are added as given."""
    from resque_pool.pool import state as pool_state

    workers = workers or {}
    fields.setdefault("counts", {queues: len(pids) for queues, pids in workers.items()})
    pool_state.publish(
        {
            "id": f"{pool}:1",
            "host": pool,
            "pid": 1,
            "appname": "app",
            "pool": pool,
            "environment": environment,
            "started": "2026-11-22T07:59:40+00:00",
            "workers": workers,
            "status": "running",
            **fields,
        }
    )
