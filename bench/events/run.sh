#!/usr/bin/env bash
# Events benchmark: how fast `functiond serve` accepts events (POST /api/events -> 202 once the
# event and its delivery are stored) and how fast its delivery worker POSTs them to a subscriber,
# with the state database on SQLite and on PostgreSQL.
#
#   bench/events/run.sh                      # build, then 10 s of load per state database
#   DURATION=3 SKIP_BUILD=1 bench/events/run.sh
#
# For each state database (SQLite file; PostgreSQL when `.ci/postgres.sh`'s start_postgres works,
# in a fresh database dropped at the end): a receiver (examples/hello_axum.rs, answers POST / with
# {"ok":true}) on a free port, one event function subscribed to `bench_event` with
# `url = "http://127.0.0.1:<port>/"`, and functiond. Then:
#   accept    wrk -t2 -c50 -d${DURATION}s --latency, each request POSTing
#             {"type":"bench_event","n":1} to /api/events (bench/events/event.lua); every answer
#             must be 202.
#   delivery  functiond_deliveries_total{result="delivered"} from /metrics at the start and the
#             end of the wrk run, then every second until the backlog drains (delivered = accepted;
#             at most DRAIN_MAX s). "during": delivered per second of the wrk run; "overall":
#             everything delivered / time from wrk's start to the last delivery (delivered_at in
#             the state database); "backlog": accepted - delivered when wrk stops.
#
# Environment:
#   DURATION     seconds of load (default 10)
#   THREADS      wrk threads (default 2);  CONNECTIONS  wrk connections (default 50)
#   STATES       state databases to measure (default "sqlite postgres")
#   DRAIN_MAX    seconds to wait for the backlog after wrk stops (default 120)
#   SKIP_BUILD=1 use the binaries already in target/release
#   WORK         scratch folder (default: a new temporary folder, removed at the end)
#   SUBSCRIBE=0  diagnostic: the function listens to another type, so events are stored without
#                deliveries and the delivery worker stays idle (ingest alone; no delivery figures,
#                no target check)
#
# Target check (SQLite; printed, exit status 0 when missed, since this is a measurement):
# >= 5,000 accepted/s with p99 accept latency < 10 ms, >= 2,000 delivered/s (overall). Exit
# status non-zero when something fails to run: a build, a server that does not start, a wrong
# answer, wrk errors or non-202 answers, a delivery that fails or a backlog that stops draining.
set -euo pipefail

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
STATES=${STATES:-sqlite postgres}
DRAIN_MAX=${DRAIN_MAX:-120}
# Polls without progress before a backlog counts as stuck (deliveries are retried only after
# backoff_ms[1] = 5 s by default, so a stall means something failed).
STALL_POLLS=${STALL_POLLS:-5}
SUBSCRIBE=${SUBSCRIBE:-1}
if [ "$SUBSCRIBE" = 1 ]; then
  SUB_TYPE=bench_event
else
  SUB_TYPE=bench_other
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=bench/events
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
LUA=$HERE/event.lua

for tool in wrk sqlite3 curl python3 awk; do
  need "$tool" || die "$tool is not installed"
done

build_binaries

# --- scratch folder, cleanup -------------------------------------------------------------------
make_work events
PG_PORT=
PG_DB=
drop_pg_db() {
  if [ -n "$PG_DB" ]; then
    su postgres -c "dropdb -p $PG_PORT --if-exists $PG_DB" >/dev/null 2>&1 ||
      echo "bench/events: could not drop PostgreSQL database $PG_DB" >&2
    PG_DB=
  fi
}
cleanup() {
  stop_pids
  drop_pg_db
  remove_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_listening URL PID NAME LOG: any HTTP answer (hello_axum has no GET route: 405).
wait_listening() {
  local url=$1 pid=$2 name=$3 log=$4 i code
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2 || true; die "$name exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
    [ "$code" != 000 ] && return 0
    sleep 0.1
  done
  die "$name did not listen on $url within 30 s"
}

# counters URL: "ACCEPTED DELIVERED RETRIED DEAD" from functiond's /metrics (0 when absent).
counters() {
  curl -sf "$1/metrics" | awk '
    /^functiond_events_accepted_total\{type="(bench_event|unrouted)"\} / { a += $NF }
    /_deliveries_total\{result="delivered"\} / { d = $NF }
    /_deliveries_total\{result="retried"\} / { r = $NF }
    /_deliveries_total\{result="dead"\} / { x = $NF }
    END { printf "%d %d %d %d\n", a, d, r, x }'
}

# cpu_ticks PID: user + system clock ticks of a process so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# state_sql STATE SQL: one query on the state database, rows as "a|b".
state_sql() {
  case $1 in
    sqlite) sqlite3 "$STATE_DB" "$2" ;;
    postgres) psql "$STATE_URL" -qAtX -c "$2" ;;
  esac
}

# --- PostgreSQL ----------------------------------------------------------------------------------
# pg_setup: starts PostgreSQL (.ci/postgres.sh) and creates a fresh database; sets PG_URL or
# prints why PostgreSQL is skipped and returns 1.
pg_setup() {
  local base
  if ! need psql || ! need pg_lsclusters || [ ! -d /usr/lib/postgresql ]; then
    echo "postgres: skipped (PostgreSQL is not installed)"
    return 1
  fi
  # shellcheck source=/dev/null
  source "$REPO/.ci/postgres.sh"
  FUNCTIOND_TEST_PG_URL=
  start_postgres >"$WORK/pg-start.log" 2>&1 || true
  base=${FUNCTIOND_TEST_PG_URL:-}
  if [ -z "$base" ] || ! psql "$base" -qAtX -c 'SELECT 1' >/dev/null 2>&1; then
    echo "postgres: skipped (start_postgres did not give a working database; $(tail -n 1 "$WORK/pg-start.log" 2>/dev/null))"
    return 1
  fi
  PG_PORT=$(sed -E 's|.*:([0-9]+)/[^/]*$|\1|' <<<"$base")
  local name="functiond_bench_events_$$_$(date +%s)"
  su postgres -c "createdb -p $PG_PORT -O functiond $name" >"$WORK/pg-createdb.log" 2>&1 || {
    echo "postgres: skipped (createdb failed: $(tail -n 1 "$WORK/pg-createdb.log"))"
    return 1
  }
  PG_DB=$name
  PG_URL="${base%/*}/$name"
}

# --- one state database --------------------------------------------------------------------------
declare -A RPS P50 P99 DUR_RATE ALL_RATE BACKLOG DRAIN_S SRV_C ACC DEL
MEASURED=()
FAILED=0

# bench STATE: sets the result arrays for STATE; dies when something fails to run.
bench() {
  local state=$1 dir=$WORK/$1
  mkdir -p "$dir/functions.d" "$dir/data/exports" "$dir/schemas-events"
  case $state in
    sqlite)
      STATE_DB=$dir/data/functiond.db
      STATE_URL=sqlite://$STATE_DB
      ;;
    postgres) STATE_URL=$PG_URL ;;
  esac

  local rport fport
  rport=$(free_port)
  "$HELLO" "$rport" >"$dir/receiver.log" 2>&1 &
  local rpid=$!
  PIDS+=("$rpid")
  wait_listening "http://127.0.0.1:$rport/" "$rpid" receiver "$dir/receiver.log"

  cat >"$dir/functions.d/bench_sink.toml" <<EOF
name = "bench_sink"
type = "event"
description = "bench: POST every $SUB_TYPE to the local receiver"

[event]
types = ["$SUB_TYPE"]
url = "http://127.0.0.1:$rport/"
EOF

  fport=$(free_port)
  (
    cd "$dir"
    exec env -u FUNCTIOND_API_TOKEN \
      FUNCTIOND_FUNCTIONS_DIR="$dir/functions.d" \
      FUNCTIOND_LISTEN="127.0.0.1:$fport" \
      FUNCTIOND_DATABASE_URL="sqlite://$dir/data/app.db" \
      FUNCTIOND_STATE_URL="$STATE_URL" \
      FUNCTIOND_EXPORTS_DIR="$dir/data/exports" \
      FUNCTIOND_EVENTS_SCHEMAS_DIR="$dir/schemas-events" \
      FUNCTIOND_LOG_LEVEL=warn \
      "$FUNCTIOND" serve
  ) >"$dir/functiond.log" 2>&1 &
  local fpid=$!
  PIDS+=("$fpid")
  local fd=http://127.0.0.1:$fport
  wait_ready "$fd/readyz" "$fpid" "functiond ($state)" "$dir/functiond.log"

  # One event by hand: 202 with one delivery, and it reaches the receiver.
  local code body c i
  code=$(curl -s -o "$dir/answer" -w '%{http_code}' -H 'content-type: application/json' \
    --data '{"type":"bench_event","n":0}' "$fd/api/events") || die "$state: curl failed"
  body=$(cat "$dir/answer")
  [ "$code" = 202 ] || die "$state: expected 202 from POST /api/events, got $code: $body"
  grep -q "\"deliveries\":$SUBSCRIBE" <<<"$body" ||
    die "$state: expected $SUBSCRIBE deliveries, got: $body"
  for i in $(seq 1 100); do
    [ "$SUBSCRIBE" = 1 ] || break
    read -r -a c <<<"$(counters "$fd")"
    [ "${c[1]}" -ge 1 ] && break
    [ "$i" = 100 ] && { cat "$dir/functiond.log" >&2; die "$state: the first event was not delivered within 10 s"; }
    sleep 0.1
  done
  if [ "$SUBSCRIBE" = 1 ]; then
    echo "check $state: 202 $body; delivered to the receiver"
  else
    echo "check $state: 202 $body (SUBSCRIBE=0: no deliveries)"
  fi

  # --- accept: wrk --------------------------------------------------------------------------------
  local out=$dir/wrk.txt rc=0 before after t0 t1 cpu0 cpu1
  read -r -a before <<<"$(counters "$fd")"
  cpu0=$(cpu_ticks "$fpid")
  t0=$(now_ms)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$fd" >"$out" 2>&1 || rc=$?
  t1=$(now_ms)
  read -r -a after <<<"$(counters "$fd")"
  cpu1=$(cpu_ticks "$fpid")
  echo "--- $state: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s bench/events/event.lua $fd/api/events"
  cat "$out"
  [ "$rc" = 0 ] || die "$state: wrk exited with $rc"
  kill -0 "$fpid" 2>/dev/null || die "$state: functiond died during the run"
  RPS[$state]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P50[$state]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$state]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  [ -n "${RPS[$state]}" ] || die "$state: cannot read Requests/sec from wrk's output"
  local non2xx errors other
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
  errors=$(grep 'Socket errors' "$out" || true)
  other=$(awk '/^status 202:/ { print $NF }' "$out")
  if [ -n "$non2xx" ] || [ -n "$errors" ] || [ "${other:-x}" != 0 ]; then
    echo "!!! $state: ${other:-?} answers were not 202 (wrk: ${non2xx:-0} non-2xx; ${errors:-no socket errors})" >&2
    FAILED=1
  fi

  # --- delivery: drain ----------------------------------------------------------------------------
  local secs acc_end del_start del_end now last stalled=0 waited=0 drained=0 cpu2 t2
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
  del_start=${before[1]}
  del_end=${after[1]}
  acc_end=${after[0]}
  BACKLOG[$state]=$((acc_end - del_end))
  DUR_RATE[$state]=$(awk -v d="$((del_end - del_start))" -v s="$secs" 'BEGIN { printf "%.0f", d / s }')
  SRV_C[$state]=$(awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v s="$secs" \
    'BEGIN { printf "%.2f", t / hz / s }')
  if [ "$SUBSCRIBE" != 1 ]; then
    DUR_RATE[$state]=-
    ALL_RATE[$state]=-
    BACKLOG[$state]=-
    DRAIN_S[$state]=-
    MEASURED+=("$state")
    stop_pids
    return 0
  fi
  echo "--- $state: accepted ${acc_end} (incl. the check event), delivered ${del_end}, backlog ${BACKLOG[$state]} when wrk stopped"
  last=$del_end
  now=("${after[@]}")
  # Poll at least once: requests wrk cut off when it stopped may still be accepted after it.
  while [ "$waited" -lt "$DRAIN_MAX" ]; do
    sleep 1
    waited=$((waited + 1))
    read -r -a now <<<"$(counters "$fd")"
    printf '  +%3ds: delivered %d of %d\n' "$waited" "${now[1]}" "${now[0]}"
    if [ "${now[1]}" -ge "${now[0]}" ]; then
      drained=1
      break
    fi
    if [ "${now[1]}" -gt "$last" ]; then
      stalled=0
      last=${now[1]}
    else
      stalled=$((stalled + 1))
      [ "$stalled" -ge "$STALL_POLLS" ] && break
    fi
  done
  t2=$(now_ms)
  cpu2=$(cpu_ticks "$fpid")
  ACC[$state]=$((now[0] - before[0]))
  DEL[$state]=$((now[1] - del_start))
  # The last delivery's time from the state database (1 s polls are too coarse for "overall").
  local last_ms statuses
  last_ms=$(state_sql "$state" "SELECT MAX(delivered_at) FROM functiond_deliveries") || last_ms=
  [ -n "$last_ms" ] && [ "$drained" = 1 ] || last_ms=$t2
  DRAIN_S[$state]=$(awk -v a="$t1" -v b="$last_ms" 'BEGIN { x = (b - a) / 1000; printf "%.1f", x < 0 ? 0 : x }')
  ALL_RATE[$state]=$(awk -v d="${DEL[$state]}" -v a="$t0" -v b="$last_ms" \
    'BEGIN { printf "%.0f", d / ((b - a) / 1000) }')
  statuses=$(state_sql "$state" "SELECT status || '=' || COUNT(*) FROM functiond_deliveries GROUP BY status ORDER BY status" | paste -sd' ' -) || statuses="(cannot read)"
  echo "--- $state: deliveries in the state database: $statuses; retried ${now[2]}, dead ${now[3]};" \
    "functiond used $(awk -v t="$((cpu2 - cpu1))" -v hz="$(getconf CLK_TCK)" -v s="$(((t2 - t1) > 0 ? t2 - t1 : 1))" \
      'BEGIN { printf "%.2f", t / hz / (s / 1000) }') cores while draining"
  if [ "$drained" != 1 ]; then
    if [ "$stalled" -ge "$STALL_POLLS" ]; then
      echo "!!! $state: the backlog stopped draining at ${now[1]} of ${now[0]} delivered" >&2
      FAILED=1
    else
      echo "!!! $state: the backlog did not drain within ${DRAIN_MAX} s (${now[1]} of ${now[0]} delivered)" >&2
      DRAIN_S[$state]=">${DRAIN_MAX}"
    fi
  fi
  if [ "${now[2]}" != 0 ] || [ "${now[3]}" != 0 ]; then
    echo "!!! $state: ${now[2]} delivery attempts failed and were retried, ${now[3]} dead-lettered" >&2
    FAILED=1
  fi
  if [ -s "$dir/functiond.log" ]; then
    echo "--- $state: functiond log, warnings and errors: $(wc -l <"$dir/functiond.log") lines; the last 3:"
    tail -n 3 "$dir/functiond.log"
  fi
  MEASURED+=("$state")
  stop_pids
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs, shared by wrk, functiond and the receiver"
for state in $STATES; do
  case $state in
    sqlite) bench sqlite ;;
    postgres)
      if pg_setup; then
        bench postgres
        drop_pg_db
      fi
      ;;
    *) die "unknown state database $state (expected sqlite or postgres)" ;;
  esac
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- report ----------------------------------------------------------------------------------------
echo
printf '%-9s %11s %7s %7s %11s %11s %8s %8s %6s\n' \
  state accepted/s p50_ms p99_ms deliv/s_run deliv/s_all backlog drain_s srv_c
for s in "${MEASURED[@]}"; do
  printf '%-9s %11s %7.2f %7.2f %11s %11s %8s %8s %6s\n' "$s" "${RPS[$s]}" "${P50[$s]}" \
    "${P99[$s]}" "${DUR_RATE[$s]}" "${ALL_RATE[$s]}" "${BACKLOG[$s]}" "${DRAIN_S[$s]}" "${SRV_C[$s]}"
done
echo "accepted/s, p50, p99: wrk (POST /api/events -> 202). deliv/s_run: deliveries per second"
echo "while wrk ran; deliv/s_all: all deliveries / (wrk start -> last delivery). backlog:"
echo "accepted - delivered when wrk stopped; drain_s: wrk stop -> last delivery. srv_c: cores"
echo "functiond used while wrk ran."
echo

if [ "$SUBSCRIBE" != 1 ]; then
  echo "targets: not checked (SUBSCRIBE=0 diagnostic: no deliveries)"
elif [ -n "${RPS[sqlite]:-}" ]; then
  missed=()
  ge "${RPS[sqlite]}" 5000 || missed+=("${RPS[sqlite]} accepted/s < 5,000")
  lt "${P99[sqlite]}" 10 || missed+=("p99 ${P99[sqlite]} ms >= 10 ms")
  ge "${ALL_RATE[sqlite]}" 2000 || missed+=("${ALL_RATE[sqlite]} delivered/s < 2,000")
  if [ ${#missed[@]} -eq 0 ]; then
    echo "targets (sqlite: >= 5,000 accepted/s, p99 < 10 ms, >= 2,000 delivered/s): met"
  else
    echo "targets (sqlite: >= 5,000 accepted/s, p99 < 10 ms, >= 2,000 delivered/s): missed: $(printf '%s; ' "${missed[@]}" | sed 's/; $//')"
  fi
fi
if [ "$FAILED" != 0 ]; then
  die "some runs had errors, non-202 answers or failed deliveries (see above)"
fi
