#!/usr/bin/env bash
# Runs the demo on a fresh machine (see README.md): installs everything into .venv,
# migrates SQLite, seeds demo worker counts and an admin user, starts Redis when none is
# reachable, serves the admin on http://127.0.0.1:8000/admin/ and runs the pool in the
# foreground. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
RESQUE_POOL_SKIP_BROWSER=1 scripts/bootstrap.sh

export RESQUE_REDIS_URL="${RESQUE_REDIS_URL:-redis://127.0.0.1:6379/0}"
PY=.venv/bin/python
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
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
$PY manage.py loaddata demo_worker_counts -v 0
if ! $PY manage.py shell -c "from django.contrib.auth.models import User; import sys; sys.exit(0 if User.objects.filter(username='demo').exists() else 1)"; then
    DJANGO_SUPERUSER_PASSWORD=demo $PY manage.py createsuperuser --noinput \
        --username demo --email demo@example.com
fi
for n in 1 2 3; do $PY manage.py enqueue Record "demo-$n" >/dev/null; done
$PY manage.py enqueue Sleep 2 >/dev/null
$PY manage.py enqueue Fail "a demo failure" >/dev/null

$PY manage.py runserver 127.0.0.1:8000 --noreload >/dev/null 2>&1 &
pids+=($!)
cat <<MSG
demo: admin at http://127.0.0.1:8000/admin/ (user demo, password demo)
demo: worker counts come from the database; edit them in the admin and watch the pool follow
demo: push jobs with: .venv/bin/python manage.py enqueue Sleep 5
demo: starting the pool (Ctrl-C stops everything)
MSG
$PY manage.py resque_pool --appname demo
