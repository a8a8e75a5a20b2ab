#!/usr/bin/env bash
# Short webhook benchmark for CI (.ci/run calls bench/*/ci.sh after
# `cargo build --release --bin functiond`): builds the baseline example, then 3 s per target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --example hello_axum
DURATION=3 SKIP_BUILD=1 exec bench/webhook/run.sh
