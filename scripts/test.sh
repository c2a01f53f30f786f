#!/usr/bin/env bash
# Runs the whole test suite (and ruff) on a fresh machine: see README.md.
#
# Every test runs once on SQLite with the Django of .venv (the newest 5.2 allowed by
# pyproject.toml on Python 3.11). When a PostgreSQL server answers (CI machines have one on
# 127.0.0.1:5432; RESQUE_TEST_POSTGRES_URL points elsewhere), the tests marked `database`
# run a second time against it, in a database of their own that is dropped afterwards.
#
# When a Python 3.12 or newer is on this machine (Django 6 needs one), the whole suite also
# runs on SQLite in .venv-django6 with the newest Django 6 on the newest such Python, at the
# same time as the first run: most of the suite waits on real processes and Redis rather
# than computing, so the two runs share two cores in little more than the time of one, and
# each has its own redis-server, namespaces and test database. Its output is printed when
# it ends. (Not again on PostgreSQL: that would take CI past 15 minutes on two cores.)
# Every run goes on after a failed one; the exit status is non-zero when any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .

failed=()

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
django6_log=""
if [ -n "$python_312" ]; then
    echo "=== Django 6: installing into .venv-django6 with $python_312 (when needed)"
    VENV=.venv-django6 PYTHON="$python_312" DJANGO="Django>=6,<7" scripts/bootstrap.sh
    django6_log=$(mktemp)
    echo "=== $(label_of .venv-django6): whole suite on SQLite, alongside the next run"
    "$(pwd)/.venv-django6/bin/python" -m pytest -p no:cacheprovider "$@" >"$django6_log" 2>&1 &
    django6_pid=$!
    # Do not leave it running when this script is stopped.
    trap 'kill "$django6_pid" 2>/dev/null || true' EXIT
else
    echo "=== Django 6: SKIPPED, no Python 3.12 or newer found (pyenv or python3.12+ on PATH)"
fi

run_sqlite .venv "$@"

if [ -n "$django6_log" ]; then
    django6_label=$(label_of .venv-django6)
    wait "$django6_pid" || failed+=("$django6_label on SQLite")
    echo "=== $django6_label: whole suite on SQLite (run alongside the one above)"
    cat "$django6_log"
    rm -f "$django6_log"
fi

run_postgres .venv "$@"

if [ ${#failed[@]} -gt 0 ]; then
    printf '=== FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "=== all runs passed"
