"""What the tests share besides fixtures (those live in ``tests/conftest.py``).

- ``common``: the repository root, ``manage_command`` and ``wait_until``.
- ``redis_server``: starting a throwaway ``redis-server`` (or fakeredis over TCP).
- ``processes``: inspecting and killing the process trees the tests start.
- ``pool_fixtures``: the pool fixtures (a pytest plugin loaded by ``conftest.py``).
- ``admin``: logged-in admin clients and request helpers for the dashboard tests.
- ``pool_settings``, ``limits_settings``: settings modules for the processes tests start;
  ``limits_jobs`` registers the jobs the limit tests run, ``retry_jobs`` jobs with retry
  policies for the pools of the retry tests.
"""
