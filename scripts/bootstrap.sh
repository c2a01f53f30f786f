#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv in .venv with the
# project and its test extra installed. Safe to run again; it only installs when
# pyproject.toml (or the requirement below) changed.
#
# scripts/test.sh also makes its second virtualenv with it: VENV names the directory,
# PYTHON the interpreter that creates it, and DJANGO an extra requirement such as
# "Django>=6,<7" (pip then picks the newest release it allows).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
DJANGO="${DJANGO:-}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.installed-$( (cat pyproject.toml; printf %s "$DJANGO") | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]" ${DJANGO:+"$DJANGO"}
    rm -f "$VENV"/.installed-* && touch "$stamp"
fi

# Debian packages the suite uses when it can have them: a real redis-server (else the
# tests fall back to fakeredis over TCP), redis-sentinel for the failover tests and
# redis-tools' redis-cli for the cluster tests (else they are skipped with the reason),
# Chromium for the admin's browser test and
# faketime for the schedulers' wrong-clock tests (else those tests are skipped with the
# reason). Only root on a Debian-like system installs.
want=()
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || want+=(redis-sentinel)
command -v redis-cli >/dev/null 2>&1 || want+=(redis-tools)
command -v faketime >/dev/null 2>&1 || want+=(faketime)
if [ "${RESQUE_POOL_SKIP_BROWSER:-}" = "" ] && ! command -v chromium >/dev/null 2>&1; then
    want+=(chromium)
fi
if [ ${#want[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${want[*]} from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}") \
        >/dev/null 2>&1 || echo "could not install ${want[*]}; continuing without" >&2
fi
# Prometheus, for the test that has a real one scrape the metrics view (else skipped with
# the reason). A call of its own, without its recommends (node-exporter and the like),
# which the suite never runs; the call above, when it ran, already updated the lists.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
    echo "installing prometheus from Debian's packages" >&2
    ({ [ ${#want[@]} -gt 0 ] || apt-get update -qq; } \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            prometheus) >/dev/null 2>&1 || echo "could not install prometheus; continuing without" >&2
fi
