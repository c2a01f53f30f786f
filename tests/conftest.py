"""Fixtures shared by the whole suite (tests/support/__init__.py says how to write tests).

- ``redis_server_url`` (session): a real redis-server on a free port, or fakeredis over
  TCP; one per pytest process, so each xdist worker (``-n``) has its own.
- ``resque`` (autouse): points django-resque-pool at that server under a namespace of its
  own for each test, and returns a helper with the client, the namespace and ``key()``.
- ``run_manage`` / ``spawn_manage``: run ``manage.py`` in a subprocess with the same Redis,
  namespace and database, for tests of real processes; ``settings={...}`` gives it a
  settings module written for the test (``process_settings``).
- ``database_env``: ``DATABASE_URL`` of this test's database (each xdist worker has its
  own, pytest-django's ``_gw<N>`` suffix) for the processes a test starts.

Markers (pyproject.toml): ``slow`` is added here to every test that starts processes (the
fixtures above and ``live_server``) and set by hand on the others that do; ``alone`` makes
a test run while no other test of the run does (``_alone_when_marked``); ``database`` is
added to every test that touches the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis as redis_lib

from tests.support import redis_server
from tests.support.common import ROOT, manage_command
from tests.support.settings_module import write_settings_module

# start_pool / busy_pool for the pool's process tests.
pytest_plugins = ["tests.support.pool_fixtures"]


_DATABASE_FIXTURES = {"db", "transactional_db", "database_env", "live_server"}
# Fixtures that start processes (or a server thread): the tests using them are ``slow``.
_PROCESS_FIXTURES = {"run_manage", "spawn_manage", "start_pool", "busy_pool", "live_server"}


def pytest_report_header(config: pytest.Config) -> str:
    """Which Django and Python this run used: scripts/test.sh runs the suite on two."""
    import django

    return (
        f"django-resque-pool: Django {django.get_version()}, "
        f"Python {platform.python_version()} ({sys.executable})"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that touches the database ``database``, so that scripts/test.sh can
    run exactly those again against PostgreSQL; and every test that starts processes
    ``slow``, so that ``-m "not slow"`` is the quick inner loop."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _DATABASE_FIXTURES or item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.database)
        if fixtures & _PROCESS_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _alone_when_marked(request, tmp_path_factory) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``alone`` (one that measures a latency in
    fractions of a second) runs while no test runs on another worker: every test holds a
    shared lock on a file all the workers see, an ``alone`` test an exclusive one. A gate
    taken before either keeps new tests from starting while an ``alone`` test waits, so
    it is never starved. POSIX locks (``lockf``), which a forked child does not inherit:
    a process a test left behind cannot hold them."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    directory = tmp_path_factory.getbasetemp().parent  # shared by this run's workers
    exclusive = request.node.get_closest_marker("alone") is not None
    with (
        open(directory / "alone.gate", "a+") as gate,
        open(directory / "alone.lock", "a+") as lock,
    ):
        _lock(gate, fcntl.LOCK_EX)
        try:
            _lock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.lockf(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)


def _lock(handle, kind: int, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(handle, kind | fcntl.LOCK_NB)
            return
        except (BlockingIOError, PermissionError):  # held by another worker
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f}s for the other workers' tests (alone lock)")
            time.sleep(0.02)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """The test users' passwords are hashed with MD5, not PBKDF2's million rounds (a
    second or so for every logged-in admin client): nothing tested here is the hashing."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus: on PostgreSQL, end the sessions that pool
    processes and the live server's thread may still hold, so the database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    server = redis_server.start()
    os.environ["RESQUE_TEST_REDIS_KIND"] = server.kind
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Resque:
    url: str
    namespace: str
    client: redis_lib.Redis

    def key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess that must see this test's Redis and namespace."""
        env = dict(os.environ)
        env.update(
            RESQUE_REDIS_URL=self.url,
            RESQUE_NAMESPACE=self.namespace,
            DJANGO_SETTINGS_MODULE="testproject.settings",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@pytest.fixture(autouse=True)
def _no_database_left_open(request, django_db_blocker) -> None:
    """A test without database access starts with no connection left open by an earlier
    test: a worker running in-process closes stale connections between jobs, which
    pytest-django refuses in such a test, so results would depend on test order."""
    if _DATABASE_FIXTURES & set(request.fixturenames) or request.node.get_closest_marker(
        "django_db"
    ):
        return
    from django.db import connections

    with django_db_blocker.unblock():
        connections.close_all()


@pytest.fixture(autouse=True)
def resque(redis_server_url: str, settings) -> Iterator[Resque]:
    from resque_pool.resque import connection

    namespace = f"test-{uuid.uuid4().hex[:12]}"
    settings.RESQUE_REDIS_URL = redis_server_url
    settings.RESQUE_NAMESPACE = namespace
    connection.reset_connections()
    client = redis_lib.Redis.from_url(redis_server_url, decode_responses=True)
    helper = Resque(url=redis_server_url, namespace=namespace, client=client)
    try:
        yield helper
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        connection.reset_connections()


@pytest.fixture
def process_settings(tmp_path) -> Callable[..., dict[str, str]]:
    """``process_settings(RESQUE_JOB_TIMEOUT=0.5, ...)``: writes a settings module for the
    processes this test starts, ``tests.support.pool_settings`` (or ``base=``) plus these
    settings, and returns the environment that selects it (``DJANGO_SETTINGS_MODULE`` and
    ``PYTHONPATH``). ``run_manage``, ``spawn_manage``, ``start_pool`` and ``busy_pool`` take
    the same settings as ``settings={...}``."""

    def write(base: str = "tests.support.pool_settings", **settings) -> dict[str, str]:
        return write_settings_module(tmp_path / "settings-modules", base, settings)

    return write


def _settings_env(process_settings, env, settings) -> dict[str, str]:
    """A subprocess's extra environment: ``env``, and the module ``settings`` asks for."""
    if settings is None:
        return dict(env or {})
    return {**(env or {}), **process_settings(**settings)}


@pytest.fixture
def run_manage(resque: Resque, process_settings) -> Callable[..., subprocess.CompletedProcess]:
    def run(
        *args: str,
        env: dict[str, str] | None = None,
        settings: dict | None = None,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            manage_command(*args),
            env=resque.env(**_settings_env(process_settings, env, settings)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    return run


@pytest.fixture
def spawn_manage(resque: Resque, process_settings) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``manage.py`` in the background; every process left running is killed (with its
    process group) when the test ends."""
    started: list[subprocess.Popen] = []

    def spawn(
        *args: str, env: dict[str, str] | None = None, settings: dict | None = None, **kwargs
    ) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        process = subprocess.Popen(
            manage_command(*args),
            env=resque.env(**_settings_env(process_settings, env, settings)),
            cwd=ROOT,
            text=True,
            start_new_session=True,
            **kwargs,
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def database_env(transactional_db) -> dict[str, str]:
    """``DATABASE_URL`` for a subprocess to open this test's database (data must be
    committed, hence ``transactional_db``)."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return {"DATABASE_URL": f"sqlite:///{settings_dict['NAME']}"}
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or "5432"
    return {"DATABASE_URL": f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"}


@pytest.fixture
def viewer(db):
    """An admin client logged in as staff with ``view_dashboard`` only."""
    from tests.support.admin import viewer_client

    return viewer_client()


@pytest.fixture
def operator(db):
    """An admin client logged in as staff with ``change_dashboard``, CSRF checks on."""
    from tests.support.admin import operator_client

    return operator_client()
