#!/usr/bin/env bash
# Runs every test: unit, property, integration and end-to-end, each
# integration test on its own nats-server and Postgres. Used by `make test`
# and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

# The end-to-end tests start the service binaries as processes.
cargo build --workspace --bins --quiet

if cargo nextest --version >/dev/null 2>&1; then
    # Timeouts and retries are in .config/nextest.toml.
    cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "[test] cargo-nextest not found; using cargo test" >&2
    cargo test --workspace --no-fail-fast "$@"
fi
