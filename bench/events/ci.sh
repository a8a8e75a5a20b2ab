#!/usr/bin/env bash
# Short events benchmark for CI (.ci/run calls bench/*/ci.sh after
# `cargo build --release --bin functiond`): builds the receiver example, then 3 s of load per
# state database (PostgreSQL only where .ci/postgres.sh can start it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --example hello_axum
DURATION=3 SKIP_BUILD=1 exec bench/events/run.sh
