# Taskyard's two commands for a fresh machine, and a few more.
.PHONY: up test bench build clean-data

# The whole stack on this machine with a demo workload; prints the console URL.
up:
	scripts/ensure-deps.sh
	cargo build --release --bins --quiet
	target/release/taskyard up --demo

# Every test (what CI runs).
test:
	scripts/test.sh

# The peers' benchmark scenarios against the stack `up` starts (not a test).
bench:
	scripts/ensure-deps.sh
	cargo build --release --bins --quiet
	target/release/taskyard bench --tasks 20000

build:
	cargo build --workspace --bins

# Forget the local stack's data (NATS and Postgres under ./.taskyard).
clean-data:
	rm -rf .taskyard
