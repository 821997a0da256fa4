#!/usr/bin/env bash
# Drill: PostgreSQL restarted under load. FOR A DEDICATED MACHINE ONLY: it restarts the PostgreSQL
# cluster that DATABASE_URL points at, cutting every connection of everyone using it.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/gavel REDIS_URL=redis://127.0.0.1:6379/0 \
#     bash tests/faults/drill_postgres_restart.sh [CLUSTER_VERSION] [CLUSTER_NAME]
#
# 1. starts the soak (tests/bench/soak.py: gunicorn, a Celery worker, pings, posts, returns and
#    portal reads at a steady rate, on its own database gavel_soak) for DRILL_MINUTES (4);
# 2. after DRILL_RESTART_AFTER seconds (60), restarts the cluster with pg_ctlcluster;
# 3. when the soak ends, checks what must hold afterwards:
#    - the ledger: `manage.py ledger_reconcile` (balances = entries, transactions sum to zero,
#      holds = sales in flight);
#    - every accepted post is sold, unsold or pending with a retry: after `market_sweep` (what beat
#      runs) no sale is still reserved and no lead is pending without a cycle to come;
#    - the exchange recovered: the soak's last sampling interval had no error.
# Exit 0 when all hold. Errors during the restart itself are expected and only reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${1:-$(pg_lsclusters -h | awk 'NR==1{print $1}')}
NAME=${2:-$(pg_lsclusters -h | awk 'NR==1{print $2}')}
MINUTES=${DRILL_MINUTES:-4}
AFTER=${DRILL_RESTART_AFTER:-60}
DB=gavel_soak
BASE=${DATABASE_URL:?set DATABASE_URL}
SOAK_URL="${BASE%/*}/$DB"
REDIS_DB=13  # the soak's Redis database (flushed by it)
SOAK_REDIS="${REDIS_URL:?set REDIS_URL}"; SOAK_REDIS="${SOAK_REDIS%/*}/$REDIS_DB"
PY=.venv/bin/python
OUT=$(mktemp -d /tmp/gavel-drill-XXXX)

echo "drill: soak for $MINUTES min; PostgreSQL $VERSION/$NAME restarted after $AFTER s; output in $OUT"
$PY tests/bench/soak.py --minutes "$MINUTES" --sample-seconds 15 --database "$DB" --redis-db "$REDIS_DB" --name drill-postgres-restart \
  --out "$OUT" > "$OUT/soak.txt" 2>&1 &
SOAK=$!
# The soak prints its traffic line once gunicorn and the worker are up: count from there.
for _ in $(seq 1 300); do grep -q "operations/s" "$OUT/soak.txt" && break; sleep 1; done
sleep "$AFTER"
echo "drill: pg_ctlcluster $VERSION $NAME restart at $(date -u +%T)"
pg_ctlcluster "$VERSION" "$NAME" restart
echo "drill: PostgreSQL back at $(date -u +%T)"
set +e
wait "$SOAK"
SOAK_RC=$?
set -e
cat "$OUT/soak.txt"

failed=0
# The last interval: the exchange answered everything again once PostgreSQL was back.
last=$(grep '^| [0-9]' "$OUT/soak.txt" | tail -1 | awk -F'|' '{gsub(/ /, "", $4); print $4}')
if [ "${last:-x}" != "0" ]; then echo "drill: FAILED: errors in the last interval ($last)"; failed=1; fi

env DATABASE_URL="$SOAK_URL" REDIS_URL="$SOAK_REDIS" DEBUG=1 DJANGO_SETTINGS_MODULE=tests.bench.settings \
  $PY manage.py ledger_reconcile --no-record || { echo "drill: FAILED: ledger drift"; failed=1; }

env DATABASE_URL="$SOAK_URL" REDIS_URL="$SOAK_REDIS" DEBUG=1 DJANGO_SETTINGS_MODULE=tests.bench.settings $PY manage.py shell -c '
from datetime import timedelta
from django.db.models import Count
from accounts.tenancy import market_scope
from exchange.models import Sale
from exchange.services.intake import market_sweep
from leads.models import Lead
print("sweep:", market_sweep(stale_after=timedelta(0)))
with market_scope():
    print("leads:", dict(Lead.objects.values_list("status").annotate(n=Count("id")).order_by()))
    reserved = Sale.objects.filter(status="reserved").count()
print("reserved sales left:", reserved)
raise SystemExit(1 if reserved else 0)
' || { echo "drill: FAILED: sales still reserved after the sweep"; failed=1; }

echo "drill: soak exit $SOAK_RC (1 = errors during the restart, expected); result: $([ $failed = 0 ] && echo PASSED || echo FAILED)"
exit $failed
