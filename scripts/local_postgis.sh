#!/usr/bin/env bash
# Start (or reuse) a local PostgreSQL cluster with PostGIS for the tests and print the
# admin URL the tests use. Idempotent. Needs root or sudo (it runs pg_ctlcluster and
# creates a role "inventory" with password "inventory" that may create databases).
set -euo pipefail
# Only the URL goes to stdout (callers capture it): what the cluster tools print (e.g.
# "Removed stale pid file.") goes to stderr. (No fd juggling: the server daemon would
# inherit an extra descriptor and keep the caller's $(...) waiting.)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

pg_major=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$pg_major" '$1 == v && $2 == "main"' | grep -q .; then
  as_root pg_createcluster "$pg_major" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$pg_major" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  as_root pg_ctlcluster "$pg_major" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$pg_major" '$1 == v && $2 == "main" {print $3}')
as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'inventory') THEN
    CREATE ROLE inventory LOGIN SUPERUSER PASSWORD 'inventory';
  END IF;
END $$;
SQL
echo "postgresql+psycopg://inventory:inventory@localhost:${port}/postgres"
