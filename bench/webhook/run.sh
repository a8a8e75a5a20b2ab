#!/usr/bin/env bash
# Webhook benchmark: requests/s, latency and RSS of `functiond serve` answering webhooks, against
# a bare axum hello-world on the same machine (examples/hello_axum.rs) as the baseline.
#
#   bench/webhook/run.sh                     # build, then 10 s per target
#   DURATION=3 SKIP_BUILD=1 bench/webhook/run.sh
#
# Targets, in this order, each driven by `wrk -t2 -c50 -d${DURATION}s --latency` with a small
# JSON POST (bench/webhook/post.lua):
#   (d) baseline  hello_axum: POST / -> {"ok":true}
#   (a) noflow    a webhook without [flow] -> 200, empty body
#   (b) respond   flow: setWebhookResponse({status: 200, body: {ok: true}})
#   (c) query     flow: one SQLite query (by primary key) on the application database, row as JSON
#
# Environment:
#   DURATION     seconds per measured run (default 10)
#   WARMUP       seconds of unmeasured load before each run (default 1; 0 to skip)
#   THREADS      wrk threads (default 2);  CONNECTIONS  wrk connections (default 50)
#   SKIP_BUILD=1 use the binaries already in target/release
#   WORK         scratch folder (default: a new temporary folder, removed at the end)
#   BLOCK_HISTORY=1  diagnostic: hold the state database's write lock during the runs, so that
#                the run-history writer stalls and drops records (shows what writing costs)
#
# Besides req/s, latency and RSS, the report gives the server's CPU per request, split by thread
# name (bench/webhook/cpu.py reads /proc): wrk shares the CPUs, so req/s is bounded by
# (CPUs) / (server CPU per request + wrk CPU per request).
#
# Target check (printed; the exit status stays 0 when a target is missed, since this is a
# measurement): (a) >= 0.6x, (b) >= 0.3x, (c) >= 0.1x the baseline's req/s; p99 of (b) <= 5 ms;
# functiond's RSS under load <= 100 MB. Exit status non-zero when something fails to run: a
# build, a server that does not start, a wrong answer, or a wrk run with errors or non-2xx answers.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=bench/webhook
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
LUA=$HERE/post.lua
CPU=$HERE/cpu.py

# --- tools and binaries ----------------------------------------------------------------------
missing=()
for tool in wrk sqlite3 curl python3; do
  need "$tool" || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=()
  for tool in "${missing[@]}"; do
    case $tool in
      python3) pkgs+=(python3-minimal) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  echo "installing ${pkgs[*]} (apt-get)..." >&2
  if ! apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "${pkgs[@]}" >/dev/null || die "cannot install ${pkgs[*]}"
  fi
fi

build_binaries

# --- scratch folder, cleanup -------------------------------------------------------------------
make_work webhook
cleanup() {
  stop_pids
  remove_work
}
trap cleanup EXIT


# --- application database and functions --------------------------------------------------------
DATA=$WORK/data
FUNCS=$WORK/functions.d
mkdir -p "$DATA" "$FUNCS" "$DATA/exports"
rm -f "$DATA/app.db" "$DATA/functiond.db"
sqlite3 "$DATA/app.db" >/dev/null <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
INSERT INTO items (id, name, price) VALUES
  (1, 'Ana''s notebook', 12.5),
  (2, 'pencil', 0.75),
  (3, 'eraser', 1.2),
  (4, 'ruler', 2.4),
  (5, 'stapler', 9.9);
SQL

cat >"$FUNCS/noflow.toml" <<'EOF'
name = "noflow"
type = "webhook"
description = "bench: no flow (200, empty body)"

[webhook]
methods = ["POST"]
EOF
cat >"$FUNCS/respond.toml" <<'EOF'
name = "respond"
type = "webhook"
description = "bench: a flow that only sets the response"

[flow]
inline = """setWebhookResponse({status: 200, body: {ok: true}})"""

[webhook]
methods = ["POST"]
EOF
cat >"$FUNCS/query.toml" <<'EOF'
name = "query"
type = "webhook"
description = "bench: a flow doing one SQLite query"

[flow]
inline = """
const rows = await db.query("SELECT id, name FROM items WHERE id = ?", [1]);
setWebhookResponse({status: 200, body: rows[0]});
"""

[webhook]
methods = ["POST"]
EOF

# --- servers -----------------------------------------------------------------------------------
HELLO_PORT=$(free_port)
"$HELLO" "$HELLO_PORT" >"$WORK/hello.log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")

FD_PORT=$(free_port)
FUNCTIOND_FUNCTIONS_DIR=$FUNCS \
  FUNCTIOND_LISTEN=127.0.0.1:$FD_PORT \
  FUNCTIOND_DATABASE_URL=sqlite://$DATA/app.db \
  FUNCTIOND_STATE_URL=sqlite://$DATA/functiond.db \
  FUNCTIOND_EXPORTS_DIR=$DATA/exports \
  FUNCTIOND_LOG_LEVEL=warn \
  "$FUNCTIOND" serve >"$WORK/functiond.log" 2>&1 &
FD_PID=$!
PIDS+=("$FD_PID")

HELLO_URL=http://127.0.0.1:$HELLO_PORT/
FD=http://127.0.0.1:$FD_PORT
# The baseline has no /readyz; any HTTP answer means it listens (GET / is 405).
for i in $(seq 1 300); do
  kill -0 "$HELLO_PID" 2>/dev/null || { cat "$WORK/hello.log" >&2; die "hello_axum exited"; }
  code=$(curl -s -o /dev/null -w '%{http_code}' "$HELLO_URL" || true)
  [ "$code" != 000 ] && break
  [ "$i" = 300 ] && die "hello_axum did not listen on $HELLO_URL within 30 s"
  sleep 0.1
done
wait_ready "$FD/readyz" "$FD_PID" functiond "$WORK/functiond.log"

# --- correctness before measuring ----------------------------------------------------------------
BODY='{"name":"Ana","email":"ana@example.com"}'
# check NAME URL EXPECTED_JSON_OR_EMPTY: one POST like wrk's; status 200 and the expected body.
check() {
  local name=$1 url=$2 want=$3 code got
  code=$(curl -s -o "$WORK/answer" -w '%{http_code}' -X POST \
    -H 'content-type: application/json' --data "$BODY" "$url") || die "$name: curl failed on $url"
  got=$(cat "$WORK/answer")
  [ "$code" = 200 ] || die "$name: expected 200 from $url, got $code: $got"
  if [ -z "$want" ]; then
    [ -z "$got" ] || die "$name: expected an empty body from $url, got: $got"
  else
    python3 - "$want" "$got" <<'PY' || die "$name: expected $want from $url, got: $got"
import json, sys
want, got = sys.argv[1], sys.argv[2]
try:
    sys.exit(0 if json.loads(want) == json.loads(got) else 1)
except ValueError:
    sys.exit(1)
PY
  fi
  echo "check $name: 200 ${got:-(empty)}"
}
check baseline "$HELLO_URL" '{"ok":true}'
check noflow "$FD/api/webhook/noflow" ''
check respond "$FD/api/webhook/respond" '{"ok":true}'
check query "$FD/api/webhook/query" '{"id":1,"name":"Ana'"'"'s notebook"}'

# --- measuring -------------------------------------------------------------------------------------
# Optional diagnostic: hold the state database's write lock from another connection, so that
# functiond's run-history writer stalls (its insert waits out the busy timeout) and the records
# of these runs are dropped at its bounded queue instead of written. Not a product setting.
if [ "${BLOCK_HISTORY:-0}" = 1 ]; then
  mkfifo "$WORK/lock.fifo"
  sqlite3 "$DATA/functiond.db" <"$WORK/lock.fifo" >"$WORK/lock.log" 2>&1 &
  PIDS+=("$!")
  exec 9>"$WORK/lock.fifo"
  echo "BEGIN IMMEDIATE;" >&9
  sleep 0.5
  echo "BLOCK_HISTORY=1: the state database is write-locked; run history is not written"
fi

rss_mb() { awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

declare -A RPS P50 P99 RSS CPU_REQ CORES BUSY BY_THREAD WRK_REQ WRK_C SIRQ SWITCHES
FAILED=0
SAMPLE_EVERY=$(awk -v d="$DURATION" 'BEGIN { printf "%.2f", d / 10 }')

# measure KEY URL PID
measure() {
  local key=$1 url=$2 pid=$3 out=$WORK/wrk-$1.txt sampler max rc=0 requests line wrk0 wrk1 secs
  if [ "$WARMUP" != 0 ]; then
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$LUA" "$url" >"$WORK/warmup-$key.txt" 2>&1 ||
      { cat "$WORK/warmup-$key.txt" >&2; die "$key: warm-up wrk failed"; }
  fi
  python3 "$CPU" snap "$pid" >"$WORK/cpu-$key-before.json"
  # RSS sampler: the server's VmRSS every DURATION/10 s, one line each, while wrk runs.
  (
    while :; do
      sleep "$SAMPLE_EVERY"
      rss_mb "$pid" VmRSS
      echo
    done
  ) >"$WORK/rss-$key.txt" &
  sampler=$!
  # wrk's own CPU: this shell's waited-for children's CPU (cutime + cstime, in ticks) around it.
  wrk0=$(awk '{ print $16 + $17 }' "/proc/$$/stat")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$url" >"$out" 2>&1 || rc=$?
  wrk1=$(awk '{ print $16 + $17 }' "/proc/$$/stat")
  python3 "$CPU" snap "$pid" >"$WORK/cpu-$key-after.json"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  kill -0 "$pid" 2>/dev/null || die "$key: the server died during the run"
  max=$(awk 'NF && $1 > m { m = $1 } END { printf "%.1f", m }' "$WORK/rss-$key.txt")
  echo "--- $key: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s post.lua $url"
  cat "$out"
  [ "$rc" = 0 ] || die "$key: wrk exited with $rc"
  RPS[$key]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  P50[$key]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  RSS[$key]=$max
  [ -n "${RPS[$key]}" ] || die "$key: cannot read Requests/sec from wrk's output"
  requests=$(awk '/ requests in / { print $1 }' "$out")
  line=$(python3 "$CPU" diff "$WORK/cpu-$key-before.json" "$WORK/cpu-$key-after.json" "$requests")
  CPU_REQ[$key]=$(cut -d' ' -f1 <<<"$line")
  CORES[$key]=$(cut -d' ' -f2 <<<"$line")
  BUSY[$key]=$(cut -d' ' -f3 <<<"$line")
  SIRQ[$key]=$(cut -d' ' -f4 <<<"$line")
  SWITCHES[$key]=$(cut -d' ' -f5 <<<"$line")
  BY_THREAD[$key]=$(cut -d' ' -f6- <<<"$line")
  secs=$(awk '/ requests in / { sub(/s,$/, "", $4); print $4 }' "$out")
  WRK_REQ[$key]=$(awk -v t="$((wrk1 - wrk0))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  WRK_C[$key]=$(awk -v t="$((wrk1 - wrk0))" -v hz="$(getconf CLK_TCK)" -v s="$secs" \
    'BEGIN { printf "%.2f", t / hz / s }')
  local non2xx errors
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
  errors=$(grep 'Socket errors' "$out" || true)
  if [ -n "$non2xx" ] || [ -n "$errors" ]; then
    echo "!!! $key: wrk reported ${non2xx:-0} non-2xx answers; ${errors:-no socket errors}" >&2
    FAILED=1
  fi
}

echo
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs, shared with wrk"
measure d "$HELLO_URL" "$HELLO_PID"
measure a "$FD/api/webhook/noflow" "$FD_PID"
measure b "$FD/api/webhook/respond" "$FD_PID"
measure c "$FD/api/webhook/query" "$FD_PID"
HWM=$(rss_mb "$FD_PID" VmHWM)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$WORK/functiond.log" ]; then
  echo "--- functiond log, warnings and errors: $(wc -l <"$WORK/functiond.log") lines; the last 3:"
  tail -n 3 "$WORK/functiond.log"
fi

# --- report ----------------------------------------------------------------------------------------
echo
printf '%-20s %8s %7s %7s %7s %6s %7s %7s %6s %6s %6s %6s %6s\n' \
  target req/s p50_ms p99_ms RSS_MB ratio srv_us wrk_us srv_c wrk_c sirq_c all_c cs/req
declare -A LABEL=(
  [d]="(d) baseline axum"
  [a]="(a) noflow"
  [b]="(b) respond (flow)"
  [c]="(c) query (flow+db)"
)
declare -A RATIO
for k in d a b c; do
  RATIO[$k]=$(awk -v x="${RPS[$k]}" -v b="${RPS[d]}" 'BEGIN { printf "%.4f", x / b }')
  printf '%-20s %8.0f %7.2f %7.2f %7.1f %5.3fx %7s %7s %6s %6s %6s %6s %6s\n' "${LABEL[$k]}" \
    "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${RSS[$k]}" "${RATIO[$k]}" "${CPU_REQ[$k]}" \
    "${WRK_REQ[$k]}" "${CORES[$k]}" "${WRK_C[$k]}" "${SIRQ[$k]}" "${BUSY[$k]}" "${SWITCHES[$k]}"
done
echo "RSS_MB: the server's max VmRSS over 10 samples during the run (functiond's VmHWM at the"
echo "end: ${HWM} MB). srv_us, wrk_us: CPU (user + system, all threads) per request of the"
echo "server and of wrk; srv_c, wrk_c: cores they used; sirq_c: cores in softirq (mostly loopback"
echo "TCP, charged to no process); all_c: cores busy on the whole machine; cs/req: the server's"
echo "context switches (voluntary + not) per request, all threads."
echo "Server CPU per request by thread name (us):"
for k in d a b c; do
  printf '  %-20s %s\n' "${LABEL[$k]}" "${BY_THREAD[$k]}"
done
echo

missed=()
ge "${RATIO[a]}" 0.6 || missed+=("(a) $(printf %.3f "${RATIO[a]}")x < 0.6x")
ge "${RATIO[b]}" 0.3 || missed+=("(b) $(printf %.3f "${RATIO[b]}")x < 0.3x")
ge "${RATIO[c]}" 0.1 || missed+=("(c) $(printf %.3f "${RATIO[c]}")x < 0.1x")
ge 5 "${P99[b]}" || missed+=("(b) p99 ${P99[b]} ms > 5 ms")
for k in a b c; do
  ge 100 "${RSS[$k]}" || missed+=("($k) RSS ${RSS[$k]} MB > 100 MB")
done
if [ ${#missed[@]} -eq 0 ]; then
  echo "targets: met"
else
  echo "targets: missed: $(printf '%s; ' "${missed[@]}" | sed 's/; $//')"
fi
if [ "$FAILED" != 0 ]; then
  die "some runs had errors or non-2xx answers (see above)"
fi
