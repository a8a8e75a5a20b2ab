// Diagnostic for bench/RESULTS.md (Webhooks): what sqlx-sqlite's argument binding costs on the
// run-history INSERT of `Store::insert_runs` (ROWS rows x 15 parameters in one statement).
// sqlx asks `sqlite3_bind_parameter_name(i)` for every parameter index; for numbered
// parameters (`?1`, `?2`, ...) SQLite finds the name by a linear scan of the statement's
// parameter list, so binding one statement costs O(parameters^2).
//
//   gcc -O2 bench/webhook/bind_names.c -o /tmp/bind_names -lsqlite3   # needs libsqlite3-dev
//   /tmp/bind_names 500 1    # 500 rows, numbered ?N
//   /tmp/bind_names 500 0    # 500 rows, anonymous ?
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s ROWS NUMBERED(1|0)\n", argv[0]);
    return 2;
  }
  int rows = atoi(argv[1]), numbered = atoi(argv[2]);
  sqlite3 *db;
  sqlite3_open(":memory:", &db);
  sqlite3_exec(db, "CREATE TABLE t (a,b,c,d,e,f,g,h,i,j,k,l,m,n,o)", 0, 0, 0);
  char *sql = malloc(rows * 15 * 12 + 100), *p = sql;
  p += sprintf(p, "INSERT INTO t VALUES ");
  for (int r = 0; r < rows; r++) {
    p += sprintf(p, r ? ", (" : "(");
    for (int k = 1; k <= 15; k++) {
      const char *sep = k < 15 ? ", " : "";
      p += numbered ? sprintf(p, "?%d%s", r * 15 + k, sep) : sprintf(p, "?%s", sep);
    }
    p += sprintf(p, ")");
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, 0) != SQLITE_OK) {
    puts(sqlite3_errmsg(db));
    return 1;
  }
  // What sqlx-sqlite's SqliteArguments::bind does first for each parameter index.
  int n = sqlite3_bind_parameter_count(st), reps = 20;
  long sum = 0;
  double t0 = now();
  for (int rep = 0; rep < reps; rep++) {
    for (int i = 1; i <= n; i++) {
      const char *name = sqlite3_bind_parameter_name(st, i);
      sum += name ? (long)strlen(name) : 0;
    }
  }
  double dt = (now() - t0) / reps;
  printf("%s, %d rows (%d parameters): names of all parameters: %.0f us per statement, "
         "%.1f us per row (checksum %ld)\n",
         numbered ? "numbered ?N" : "anonymous ?", rows, n, dt * 1e6, dt * 1e6 / rows, sum);
  sqlite3_finalize(st);
  sqlite3_close(db);
  free(sql);
  return 0;
}
