#!/usr/bin/env bash
# Runs the demo on a fresh machine (see README.md): installs everything into .venv,
# migrates SQLite, seeds demo worker counts (only into an empty table, so a re-run keeps
# counts edited in the admin) and an admin user, starts Redis when none is reachable,
# serves the admin on http://127.0.0.1:8000/admin/ (or on a free port it prints, when 8000
# is taken) and runs the pool in the foreground. Ctrl-C stops it all.
#
# Environment: RESQUE_REDIS_URL (default redis://127.0.0.1:6379/0), DEMO_PORT (default
# 8000), DATABASE_URL (default SQLite in db.sqlite3), DEMO_PYTHON (an interpreter that
# already has the project installed: skips the .venv set-up).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DEMO_PYTHON:-}" ]; then
    PY=$DEMO_PYTHON
else
    RESQUE_POOL_SKIP_BROWSER=1 scripts/bootstrap.sh
    PY=.venv/bin/python
fi

export RESQUE_REDIS_URL="${RESQUE_REDIS_URL:-redis://127.0.0.1:6379/0}"
pids=()
server_log=$(mktemp "${TMPDIR:-/tmp}/resque-demo-server.XXXXXX")
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -f "$server_log"
}
trap cleanup EXIT

redis_up() {
    $PY - <<'PY' 2>/dev/null
import os, redis
redis.Redis.from_url(os.environ["RESQUE_REDIS_URL"], socket_connect_timeout=1).ping()
PY
}

if ! redis_up; then
    port=$($PY -c "import urllib.parse,os;print(urllib.parse.urlparse(os.environ['RESQUE_REDIS_URL']).port or 6379)")
    if command -v redis-server >/dev/null 2>&1; then
        echo "demo: starting redis-server on port $port"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    else
        echo "demo: no redis-server here; serving fakeredis on port $port"
        $PY scripts/fake_redis_server.py "$port" &
    fi
    pids+=($!)
    for _ in $(seq 50); do redis_up && break; sleep 0.1; done
    redis_up || { echo "demo: Redis did not come up on $RESQUE_REDIS_URL" >&2; exit 1; }
fi

$PY manage.py migrate --noinput -v 0
if $PY manage.py shell -v 0 -c "from resque_pool.models import WorkerCount; import sys; sys.exit(1 if WorkerCount.objects.exists() else 0)"; then
    $PY manage.py loaddata demo_worker_counts -v 0
else
    echo "demo: keeping the worker counts already in the database"
fi
if ! $PY manage.py shell -v 0 -c "from django.contrib.auth.models import User; import sys; sys.exit(0 if User.objects.filter(username='demo').exists() else 1)"; then
    DJANGO_SUPERUSER_PASSWORD=demo $PY manage.py createsuperuser --noinput \
        --username demo --email demo@example.com
fi
for n in 1 2 3; do $PY manage.py enqueue Record "demo-$n" >/dev/null; done
$PY manage.py enqueue Sleep 2 >/dev/null
$PY manage.py enqueue Fail "a demo failure" >/dev/null

# The admin's port: DEMO_PORT (8000) when it is free, else one the kernel picks. Then wait
# until our server answers; a server that could not start is reported, not announced.
port="${DEMO_PORT:-8000}"
free_port() {
    $PY - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver binds
s.bind(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1])
PY
}
if wanted=$(free_port "$port"); then
    port=$wanted  # DEMO_PORT=0 asks for any free port
else
    taken=$port
    port=$(free_port 0)
    echo "demo: port $taken is in use; serving the admin on port $port instead"
fi
$PY manage.py runserver "127.0.0.1:$port" --noreload >"$server_log" 2>&1 &
server=$!
pids+=("$server")
answers() {
    $PY -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "http://127.0.0.1:$port/admin/login/" 2>/dev/null
}
for _ in $(seq 150); do
    kill -0 "$server" 2>/dev/null || break
    answers && break
    sleep 0.1
done
if ! kill -0 "$server" 2>/dev/null || ! answers; then
    echo "demo: the admin server did not come up on 127.0.0.1:$port:" >&2
    tail -n 5 "$server_log" >&2
    exit 1
fi
cat <<MSG
demo: admin at http://127.0.0.1:$port/admin/ (user demo, password demo)
demo: worker counts come from the database; edit them in the admin and watch the pool follow
demo: push jobs with: $PY manage.py enqueue Sleep 5
demo: see the processes with: ps fx -o pid,args | grep '[r]esque'
demo: starting the pool (Ctrl-C stops everything)
MSG
$PY manage.py resque_pool --appname demo
