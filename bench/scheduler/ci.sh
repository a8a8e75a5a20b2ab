#!/usr/bin/env bash
# Short scheduler benchmark for CI: 1,000 schedules, 30 due, a 5 s idle window (about 4 minutes,
# most of it waiting for minute boundaries).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 bench/scheduler/run.py --schedules 1000 --firing 30 --idle-seconds 5
