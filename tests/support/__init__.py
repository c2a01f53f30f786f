"""What the tests share besides fixtures (those live in ``tests/conftest.py``).

- ``common``: the repository root, ``manage_command`` and ``wait_until``.
- ``redis_server``: starting a throwaway ``redis-server`` (or fakeredis over TCP).
- ``processes``: inspecting and killing the process trees the tests start.
- ``pool_fixtures``: the pool fixtures (a pytest plugin loaded by ``conftest.py``).
- ``admin``: logged-in admin clients and request helpers for the dashboard tests.
- ``pool_settings``: the settings module of the processes tests start, which a test extends
  with ``settings={...}`` (``settings_module`` writes a module of the test's own);
  ``limits_jobs`` registers the jobs the limit tests run, ``retry_jobs`` jobs with retry
  policies for the pools of the retry tests.
"""
