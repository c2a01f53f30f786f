#!/usr/bin/env bash
# Runs the whole test suite (and ruff) on a fresh machine: see README.md.
#
# Every test runs once on SQLite with the Django of .venv (the newest 5.2 allowed by
# pyproject.toml on Python 3.11). When a PostgreSQL server answers (CI machines have one on
# 127.0.0.1:5432; RESQUE_TEST_POSTGRES_URL points elsewhere), the tests marked `database`
# run a second time against it, in a database of their own that is dropped afterwards.
#
# When a Python 3.12 or newer is on this machine (Django 6 needs one), the whole suite also
# runs on SQLite in .venv-django6 with the newest Django 6 on the newest such Python.
#
# Each run spreads its tests over RESQUE_TEST_WORKERS (default 4) pytest-xdist workers,
# and the runs follow one another. Why 4 on these 2-core machines: run serially, one pass
# took 419 s of wall time for 140 s of CPU, because most tests wait on real processes,
# Redis and polls rather than compute. On 4 workers it took 152 s (131 s of CPU), on 6
# workers 116 s; 4 is chosen because every worker added is more contention for the tests
# that bound how long a pool takes to react, and CI is far under its 15 minutes with 4.
# For the same reason the Django 6 pass no longer runs beside the 5.2 pass as it did before
# xdist: 8 workers on 2 cores would gain little over two runs in turn and double the
# contention. A test that measures a latency under a second is marked `alone` and runs
# while no other test does (tests/conftest.py). Each worker has its own redis-server, its
# own test database (pytest-django's _gw<N> suffix, handed to the processes the tests
# start) and its own key namespaces. `-n 0` among this script's arguments runs serially.
# Every run goes on after a failed one; the exit status is non-zero when any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .

failed=()
workers=(-n "${RESQUE_TEST_WORKERS:-4}")

# The newest Python >= 3.12: pyenv's versions (pyenv need not be on PATH) and whatever
# python3.1x is on PATH. pyenv's shims for versions that are not selected exit non-zero,
# so each candidate is asked for its version rather than trusted by name.
newest_python_312() {
    local best="" best_minor=0 candidate minor
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3.* \
        /root/.pyenv/versions/*/bin/python3.* \
        $(command -v python3.14 python3.13 python3.12 2>/dev/null || true); do
        [[ "$candidate" =~ python3\.[0-9]+$ && -x "$candidate" ]] || continue
        minor=$("$candidate" -c 'import sys; print(sys.version_info[1])' 2>/dev/null) || continue
        if [ "$minor" -ge 12 ] && [ "$minor" -gt "$best_minor" ]; then
            best=$candidate best_minor=$minor
        fi
    done
    echo "$best"
}

# label_of VENV: the Django and Python that virtualenv runs.
label_of() {
    "$1/bin/python" -c \
        'import django, platform; print(f"Django {django.get_version()} on Python {platform.python_version()}")'
}

# run_sqlite VENV [pytest args]: the whole suite on SQLite.
run_sqlite() {
    local venv=$1 label
    shift
    label=$(label_of "$venv")
    echo "=== $label: whole suite on SQLite"
    "$venv/bin/python" -m pytest "$@" || failed+=("$label on SQLite")
}

# run_postgres VENV [pytest args]: the database tests again on PostgreSQL when it answers.
run_postgres() {
    local venv=$1 label
    shift
    label=$(label_of "$venv")
    local pg_url="${RESQUE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/resque_pool_$$}"
    if "$venv/bin/python" - "$pg_url" <<'PY' 2>/dev/null; then
import sys
from urllib.parse import urlparse

import psycopg

url = urlparse(sys.argv[1])
psycopg.connect(
    host=url.hostname, port=url.port or 5432, user=url.username, password=url.password,
    dbname="postgres", connect_timeout=3,
).close()
PY
        echo "=== $label: PostgreSQL answers: running the database tests again against it"
        # Exit status 5: the tests given on the command line touch no database.
        DATABASE_URL="$pg_url" "$venv/bin/python" -m pytest -m database "$@" ||
            [ $? = 5 ] || failed+=("$label on PostgreSQL")
    else
        echo "=== $label: no PostgreSQL answers at ${pg_url%%/resque_pool_*}:" \
            "database tests ran on SQLite only"
    fi
}

python_312=$(newest_python_312)

run_sqlite .venv "${workers[@]}" "$@"

if [ -n "$python_312" ]; then
    echo "=== Django 6: installing into .venv-django6 with $python_312 (when needed)"
    VENV=.venv-django6 PYTHON="$python_312" DJANGO="Django>=6,<7" scripts/bootstrap.sh
    run_sqlite .venv-django6 -p no:cacheprovider "${workers[@]}" "$@"
else
    echo "=== Django 6: SKIPPED, no Python 3.12 or newer found (pyenv or python3.12+ on PATH)"
fi

run_postgres .venv "${workers[@]}" "$@"

if [ ${#failed[@]} -gt 0 ]; then
    printf '=== FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "=== all runs passed"
