# Shared by the benchmark scripts that drive `functiond serve` with wrk (bench/webhook/run.sh,
# bench/events/run.sh). Source it after setting BENCH (the script's name in messages) and REPO.
# shellcheck shell=bash

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
FUNCTIOND=$TARGET_DIR/release/functiond
HELLO=$TARGET_DIR/release/examples/hello_axum

die() {
  echo "$BENCH: $*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1; }

# build_binaries: functiond and the hello_axum baseline/receiver in release mode, unless
# SKIP_BUILD=1; dies when either is missing afterwards.
build_binaries() {
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$REPO" && cargo build --release --bin functiond --example hello_axum) || die "build failed"
  fi
  [ -x "$FUNCTIOND" ] || die "$FUNCTIOND is missing (cargo build --release --bin functiond)"
  [ -x "$HELLO" ] || die "$HELLO is missing (cargo build --release --example hello_axum)"
}

# make_work NAME: sets WORK to $WORK (kept) or a new temporary folder (removed by remove_work).
make_work() {
  if [ -n "${WORK:-}" ]; then
    mkdir -p "$WORK"
    KEEP_WORK=1
  else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/functiond-bench-$1.XXXXXX")
    KEEP_WORK=0
  fi
}
remove_work() {
  if [ "$KEEP_WORK" = 0 ]; then
    rm -rf "$WORK"
  fi
}

# PIDS: background processes started by the script; stop_pids ends and reaps them.
PIDS=()
stop_pids() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { date +%s%3N; }

# wait_ready URL PID NAME LOG: polls URL until it answers 200 (at most 30 s).
wait_ready() {
  local url=$1 pid=$2 name=$3 log=$4 i
  for i in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2 || true
      die "$name exited before it was ready"
    fi
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  cat "$log" >&2 || true
  die "$name did not answer 200 on $url within 30 s"
}

# to_ms VALUE: wrk's "123.45us" / "1.23ms" / "1.02s" / "1.50m" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    else if (u == "h") n *= 3600000; else if (u != "ms") { print "nan"; exit }
    printf "%.3f", n }'
}

ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
