#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv in .venv with the
# project and its test extra installed. Safe to run again; it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test]"
    rm -f .venv/.installed-* && touch "$stamp"
fi

# Debian packages the suite uses when it can have them: a real redis-server (else the
# tests fall back to fakeredis over TCP) and Chromium for the admin's browser test (else
# that one test is skipped with the reason). Only root on a Debian-like system installs.
want=()
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
if [ "${RESQUE_POOL_SKIP_BROWSER:-}" = "" ] && ! command -v chromium >/dev/null 2>&1; then
    want+=(chromium)
fi
if [ ${#want[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${want[*]} from Debian's packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}") \
        >/dev/null 2>&1 || echo "could not install ${want[*]}; continuing without" >&2
fi
