#!/usr/bin/env bash
# Drill: back a database up with pg_dump, restore it into a new database as docs/deployment.md says,
# and check that the restored exchange is whole. It only reads the source, so it is safe on a shared
# server; the restored copy (gavel_restored) is dropped at the end.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/gavel_soak bash tests/faults/drill_backup_restore.sh
#
# A database with trading in it is the point: the soak's (tests/bench/soak.py) or the PostgreSQL
# restart drill's. Checks, after `pg_restore` and `manage.py migrate`:
#   - `manage.py ledger_reconcile`: balances = entries, transactions sum to zero, holds = sales;
#   - every table of the exchange has as many rows as in the source.
# Exit 0 when both hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOURCE=${DATABASE_URL:?set DATABASE_URL to the database to back up}
SERVER=${SOURCE%/*}
RESTORED_DB=gavel_restored
RESTORED="$SERVER/$RESTORED_DB"
PY=.venv/bin/python
DUMP=$(mktemp /tmp/gavel-backup-XXXX.dump)
trap 'rm -f "$DUMP"; psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $RESTORED_DB WITH (FORCE)"' EXIT

started=$(date +%s)
pg_dump -Fc -d "$SOURCE" -f "$DUMP"
echo "drill: backup $(du -h "$DUMP" | cut -f1) in $(( $(date +%s) - started )) s"
psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $RESTORED_DB WITH (FORCE)" -c "CREATE DATABASE $RESTORED_DB"
started=$(date +%s)
pg_restore --no-owner -d "$RESTORED" "$DUMP"
env -u REDIS_URL DATABASE_URL="$RESTORED" DEBUG=1 $PY manage.py migrate -v0
echo "drill: restored and migrated in $(( $(date +%s) - started )) s"

failed=0
env -u REDIS_URL DATABASE_URL="$RESTORED" DEBUG=1 $PY manage.py ledger_reconcile --no-record \
  || { echo "drill: FAILED: the restored ledger does not balance"; failed=1; }
count_rows() {  # every table of the public schema with its row count, one per line, sorted
  psql "$1" -Atc "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'
                  AND table_type = 'BASE TABLE' ORDER BY 1" |
    while read -r table; do echo "$table $(psql "$1" -Atc "SELECT count(*) FROM \"$table\"")"; done
}
if diff <(count_rows "$SOURCE") <(count_rows "$RESTORED"); then
  echo "drill: every table has as many rows as the source ($(count_rows "$RESTORED" | awk '{n += $2} END {print n}') rows)"
else
  echo "drill: FAILED: row counts differ (above)"; failed=1
fi
[ "$failed" = 0 ] && echo "drill: result: PASSED" || echo "drill: result: FAILED"
exit "$failed"
