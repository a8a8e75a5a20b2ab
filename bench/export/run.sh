#!/usr/bin/env bash
# Export benchmark: our CSV / XLSX export against `sqlite3 -csv` and Python XlsxWriter
# (constant_memory), on a generated SQLite table of ROWS rows x 8 columns.
#
#   bench/export/run.sh                  # 1,000,000 rows
#   ROWS=20000 bench/export/run.sh       # short version for CI
#
# Environment:
#   ROWS       rows to generate (default 1000000)
#   WORK       scratch folder for the database and outputs (default /tmp/functiond-bench-export)
#   BENCH_BIN  a prebuilt examples/export_bench binary (default: cargo build --release --example)
#   STRICT=1   exit 1 when a target is missed (off by default: short runs are noisy)
#
# Targets: CSV at least 0.8x the speed of sqlite3 -csv; XLSX at least 5x the speed of
# XlsxWriter; peak RSS of our exports at most 64 MB.
# Idempotent: the database is generated once per ROWS value and reused; outputs are overwritten.
set -euo pipefail

ROWS=${ROWS:-1000000}
WORK=${WORK:-/tmp/functiond-bench-export}
STRICT=${STRICT:-0}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SQL="SELECT * FROM t ORDER BY id"

mkdir -p "$WORK"
DB="$WORK/data-$ROWS.db"

need() { command -v "$1" >/dev/null 2>&1; }

# --- tools ---------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ] || ! need sqlite3; then
  echo "installing time and sqlite3 (apt-get)..." >&2
  apt-get install -y time sqlite3 >/dev/null
fi
if ! python3 -c 'import xlsxwriter' 2>/dev/null; then
  echo "installing XlsxWriter (pip)..." >&2
  pip install --quiet XlsxWriter 2>/dev/null || pip install --quiet --break-system-packages XlsxWriter
fi
if [ -z "${BENCH_BIN:-}" ]; then
  (cd "$REPO" && cargo build --quiet --release --example export_bench)
  BENCH_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/export_bench"
fi

# --- data ----------------------------------------------------------------------------------
if [ ! -s "$DB" ] || [ "$(sqlite3 "$DB" 'SELECT count(*) FROM t' 2>/dev/null)" != "$ROWS" ]; then
  echo "generating $ROWS rows in $DB ..." >&2
  rm -f "$DB"
  sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
CREATE TABLE t (
  id      INTEGER PRIMARY KEY,
  qty     INTEGER,     -- NULL in every 7th row
  price   REAL,
  ratio   REAL,        -- NULL in every 11th row
  name    TEXT,        -- quotes and commas
  note    TEXT,        -- NULL in every 5th row
  day     DATE,
  created DATETIME
);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $ROWS)
INSERT INTO t
SELECT x,
       CASE WHEN x % 7 = 0 THEN NULL ELSE (x * 7919) % 100000 - 50000 END,
       round(x * 1.37 / 3, 2),
       CASE WHEN x % 11 = 0 THEN NULL ELSE (x % 9973) / 9973.0 END,
       'Customer "' || x || '", Inc.',
       CASE WHEN x % 5 = 0 THEN NULL ELSE 'note ' || hex(randomblob(6)) END,
       date('2020-01-01', '+' || (x % 2000) || ' days'),
       datetime('2020-01-01 00:00:00', '+' || (x * 37) || ' seconds')
FROM n;
SQL
fi

# --- runs ----------------------------------------------------------------------------------
# run NAME OUTPUT COMMAND...: times COMMAND, records wall seconds, CPU seconds (user + system,
# all threads) and peak RSS (MB).
declare -A SECS CPU RSS
run() {
  local name=$1 out=$2
  shift 2
  rm -f "$out"
  sync
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.$name" "$@" > "$WORK/stdout.$name"
  read -r secs kb user sys < "$WORK/time.$name"
  SECS[$name]=$secs
  CPU[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  RSS[$name]=$(awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }')
  [ -s "$out" ] || { echo "$name produced no output" >&2; exit 1; }
}

cat > "$WORK/xlsxwriter_export.py" <<'PY'
import sqlite3, sys, datetime, xlsxwriter
db, sql, out = sys.argv[1:4]
con = sqlite3.connect(db)
cur = con.execute(sql)
names = [d[0] for d in cur.description]
wb = xlsxwriter.Workbook(out, {"constant_memory": True})
ws = wb.add_worksheet()
bold = wb.add_format({"bold": True})
date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
dt_fmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
ws.write_row(0, 0, names, bold)
day_col, created_col = names.index("day"), names.index("created")
r = 0
for row in cur:
    r += 1
    for c, v in enumerate(row):
        if v is None:
            continue
        if c == day_col:
            ws.write_datetime(r, c, datetime.datetime.strptime(v, "%Y-%m-%d"), date_fmt)
        elif c == created_col:
            ws.write_datetime(r, c, datetime.datetime.strptime(v, "%Y-%m-%d %H:%M:%S"), dt_fmt)
        elif isinstance(v, str):
            ws.write_string(r, c, v)
        else:
            ws.write_number(r, c, v)
wb.close()
print(f"rows={r}")
PY

echo "running: $ROWS rows x 8 columns" >&2
run sqlite3_csv "$WORK/stdout.sqlite3_csv" sqlite3 -csv -header "$DB" "$SQL"
mv "$WORK/stdout.sqlite3_csv" "$WORK/sqlite3.csv"
run ours_csv "$WORK/ours.csv" "$BENCH_BIN" "$DB" "$SQL" csv "$WORK/ours.csv"
run xlsxwriter "$WORK/xlsxwriter.xlsx" python3 "$WORK/xlsxwriter_export.py" "$DB" "$SQL" "$WORK/xlsxwriter.xlsx"
run ours_xlsx "$WORK/ours.xlsx" "$BENCH_BIN" "$DB" "$SQL" xlsx "$WORK/ours.xlsx"

# Sanity: both CSVs hold the header plus every row.
for f in sqlite3.csv ours.csv; do
  n=$(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$WORK/$f")
  [ "$n" = "$((ROWS + 1))" ] || { echo "$f has $n records, expected $((ROWS + 1))" >&2; exit 1; }
done

# --- report --------------------------------------------------------------------------------
rate() { awk -v r="$ROWS" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? r / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf '\n%-12s %12s %9s %9s %14s\n' run rows/s seconds "CPU s" "peak RSS (MB)"
for name in sqlite3_csv ours_csv xlsxwriter ours_xlsx; do
  printf '%-12s %12s %9s %9s %14s\n' "$name" "$(rate "${SECS[$name]}")" "${SECS[$name]}" \
    "${CPU[$name]}" "${RSS[$name]}"
done

csv_ratio=$(ratio "${SECS[sqlite3_csv]}" "${SECS[ours_csv]}")
xlsx_ratio=$(ratio "${SECS[xlsxwriter]}" "${SECS[ours_xlsx]}")
fail=0
verdict() { if awk -v a="$1" -v b="$2" "BEGIN { exit !(a $3 b) }"; then echo ok; else echo MISSED; fi; }
v1=$(verdict "$csv_ratio" 0.8 '>='); [ "$v1" = ok ] || fail=1
v2=$(verdict "$xlsx_ratio" 5 '>='); [ "$v2" = ok ] || fail=1
v3=$(verdict "${RSS[ours_csv]}" 64 '<='); [ "$v3" = ok ] || fail=1
v4=$(verdict "${RSS[ours_xlsx]}" 64 '<='); [ "$v4" = ok ] || fail=1
echo
echo "CSV  speed, ours / sqlite3 -csv:  ${csv_ratio}x  (target >= 0.8x)  $v1"
echo "XLSX speed, ours / XlsxWriter:    ${xlsx_ratio}x  (target >= 5x)    $v2"
echo "peak RSS, ours: CSV ${RSS[ours_csv]} MB, XLSX ${RSS[ours_xlsx]} MB  (target <= 64 MB)  $v3 $v4"
echo "sizes (bytes): $(cd "$WORK" && wc -c sqlite3.csv ours.csv xlsxwriter.xlsx ours.xlsx | awk '$2 != "total" { printf "%s %s  ", $2, $1 }')"
if [ "$STRICT" = 1 ] && [ "$fail" = 1 ]; then
  exit 1
fi
