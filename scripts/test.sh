#!/usr/bin/env bash
# Runs every test: unit, property, integration and end-to-end, each
# integration test on its own nats-server and Postgres. Used by `make test`
# and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

# A test run builds from scratch once: incremental caches would only double
# the target folder (many gigabytes) on a machine whose disk may be small.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
avail_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail_kib:-0}" -lt $((4 * 1024 * 1024)) ]; then
    echo "[test] warning: only $((avail_kib / 1024)) MiB free here; a full build needs about 4 GiB" >&2
fi

# The house rules, before anything runs: formatted, no unused dependency
# (cargo-machete, pinned, installed once), and no clippy warning anywhere.
MACHETE_VERSION="0.9.2"
cargo fmt --all --check
if [ "$(cargo machete --version 2>/dev/null)" != "$MACHETE_VERSION" ]; then
    echo "[test] installing cargo-machete $MACHETE_VERSION" >&2
    cargo install cargo-machete --version "$MACHETE_VERSION" --locked --quiet
fi
cargo machete
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The end-to-end tests start the service binaries as processes.
cargo build --workspace --bins --quiet

if cargo nextest --version >/dev/null 2>&1; then
    # Timeouts and retries are in .config/nextest.toml.
    cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "[test] cargo-nextest not found; using cargo test" >&2
    cargo test --workspace --no-fail-fast "$@"
fi
