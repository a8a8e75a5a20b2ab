#!/usr/bin/env bash
# Short export benchmark for CI: 20,000 rows (measures mostly start-up; ratios are indicative).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=20000 bench/export/run.sh
