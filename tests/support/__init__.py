"""How to write a test here, and what the tests share besides fixtures (those live in
``tests/conftest.py`` and ``pool_fixtures``).

Run ``.venv/bin/python -m pytest -m "not slow"`` while you work (every test that starts no
process, about 15 s), one file with ``-n 4`` when it starts processes, and
``scripts/test.sh`` (what CI runs: everything, on 4 xdist workers, both Djangos and
PostgreSQL) before you push. Every test gets a Redis namespace of its own (the autouse
``resque`` fixture: ``resque.client``, ``resque.key("queue", "demo")``), on a redis-server
of its pytest process's own; nothing is mocked.

Redis and the package in this process::

    def test_enqueue_pushes_resques_payload(resque):
        enqueue("Record", "a")
        assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [...]

The database: ``@pytest.mark.django_db`` (or the ``db`` fixture). Such tests are marked
``database`` for you and run again on PostgreSQL.

A worker in this process (``interval=0`` drains the queues and returns)::

    Worker("demo", interval=0, fork_per_job=False).work()

A pool, or any ``manage.py`` command, as real processes (marked ``slow`` for you)::

    def test_a_pool_requeues_a_lost_job(start_pool, tmp_path, resque):
        config = write(tmp_path / "pool.yml", "demo: 1\\n")
        pool = start_pool("-c", str(config), settings={"RESQUE_REQUEUE_DIRTY_JOBS": True})
        [worker] = pool.wait_for_workers({"demo": 1})
        assert pool.state()["counts"] == {"demo": 1}  # what it publishes for the admin
        ...
        wait_until(lambda: ..., timeout=30, message="the job done")  # never a bare sleep

``settings={...}`` (``start_pool``, ``busy_pool``, ``spawn_manage``, ``run_manage``; the
``process_settings`` fixture for a subprocess of your own) writes a settings module of the
test's own on top of ``pool_settings``: name the Django setting, no environment variable.
``env=database_env`` lets the processes open this test's database. Assert on what Redis
and the pool's published state (``pool.state()``) say; read the log (``pool.log()``,
``pool.wait_for_log``) only for what nothing else shows, such as an error's message.

Markers: ``slow`` by hand on a test that starts processes without those fixtures;
``alone`` on a test that measures a latency of a second or less (it then runs while no
other test does, even under ``-n``).

The modules:

- ``common``: the repository root, ``manage_command`` and ``wait_until``.
- ``redis_server``: starting a throwaway ``redis-server`` (or fakeredis over TCP).
- ``sentinel`` and ``redis_cluster``: a Redis that fails over, for the failover tests: a
  master, a replica and three sentinels; three masters with a replica each, in a cluster.
- ``processes``: inspecting and killing the process trees the tests start; the custom
  loaders and ``after_prefork`` hooks the pool processes use.
- ``cgroups``: a memory cgroup of a test's own below ours (root only; why not otherwise):
  a limit, a command started inside it, its OOM kills, its removal.
- ``pool_fixtures``: the pool fixtures (a pytest plugin loaded by ``conftest.py``):
  ``start_pool``, ``busy_pool``, ``Pool`` (workers, titles, log, published state), ``write``.
- ``admin``: logged-in admin clients and request helpers for the dashboard tests.
- ``pool_settings``: the settings module of the processes tests start, with the
  ``TEST_*`` settings the loaders and hooks of ``processes`` read; ``settings_module``
  writes a test's own on top of it. A job that such processes must run is registered by a
  module ``pool_settings`` imports: ``limits_jobs`` (the limits tests' jobs),
  ``retry_jobs`` (jobs with retry policies), ``processes`` (``SlowRecord``).
"""
