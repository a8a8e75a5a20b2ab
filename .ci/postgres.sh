# Starts the distribution's PostgreSQL (installing its default cluster if needed) and sets
# FUNCTIOND_TEST_PG_URL to a fresh database the tests may use. Sourced by .ci/run; also handy by hand:
#   source .ci/postgres.sh && start_postgres && export FUNCTIOND_TEST_PG_URL
start_postgres() {
  local version
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h | grep -q .; then
    pg_createcluster "$version" main >/dev/null
  fi
  local cluster
  cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
  # shellcheck disable=SC2086
  pg_ctlcluster $cluster start 2>/dev/null || true
  local port
  port=$(pg_lsclusters -h | head -1 | awk '{print $3}')
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
  done
  su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='functiond'\" | grep -q 1 || psql -q -p $port -c \"CREATE ROLE functiond LOGIN SUPERUSER PASSWORD 'functiond'\""
  su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='functiond_test'\" | grep -q 1 || createdb -p $port -O functiond functiond_test"
  FUNCTIOND_TEST_PG_URL="postgres://functiond:functiond@127.0.0.1:$port/functiond_test"
}
