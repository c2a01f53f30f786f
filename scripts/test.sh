#!/usr/bin/env bash
# Runs the whole test suite (and ruff) on a fresh machine: see README.md.
#
# Every test runs once on SQLite. When a PostgreSQL server answers (CI machines have one on
# 127.0.0.1:5432; RESQUE_TEST_POSTGRES_URL points elsewhere), the tests marked `database`
# run a second time against it, in a database of their own that is dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"

pg_url="${RESQUE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/resque_pool_$$}"
if .venv/bin/python - "$pg_url" <<'PY' 2>/dev/null
import sys
from urllib.parse import urlparse

import psycopg

url = urlparse(sys.argv[1])
psycopg.connect(
    host=url.hostname, port=url.port or 5432, user=url.username, password=url.password,
    dbname="postgres", connect_timeout=3,
).close()
PY
then
    echo "PostgreSQL answers: running the database tests again against it"
    DATABASE_URL="$pg_url" .venv/bin/python -m pytest -m database "$@"
else
    echo "no PostgreSQL answers at ${pg_url%%/resque_pool_*}: database tests ran on SQLite only"
fi
