#!/usr/bin/env bash
# The emergency drill against a local lab, end to end:
#   set up the machine, start the lab (a private MariaDB + sshd), load a shop database, run the
#   assess-and-fence SOP over SSH and SQL, damage the core tables as an incident would, roll the
#   run back, and prove the tables and the server are as they were. KEEP_LAB=1 keeps the lab up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RUNBOOK_HOME="${RUNBOOK_HOME:-$PWD/.runbook}"
runbook lab up
inv="$RUNBOOK_HOME/lab/inventory.yml"
port=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mysql_port'])" "$RUNBOOK_HOME/lab/lab.json")
sql() { mysql -uroot -h127.0.0.1 -P"$port" "$@"; }
cleanup() { [ "${KEEP_LAB:-0}" = 1 ] || runbook lab down; }
trap cleanup EXIT

sql -e "DROP DATABASE IF EXISTS shop"
sql < scripts/lab-shop.sql
before=$(sql -N -e "CHECKSUM TABLE shop.users, shop.products, shop.orders, shop.order_items")

echo; echo "== the drill: assess, stop writes, snapshot the core tables"
runbook validate runbooks/assess-and-fence.yml -i "$inv"
runbook play runbooks/assess-and-fence.yml -i "$inv" --yes --report "$RUNBOOK_HOME/drill-report.html"
run_id=$(runbook runs | awk 'NR > 1 {id = $1} END {print id}')

echo; echo "== an incident: a bad deploy deletes and rewrites rows (root can write through read_only)"
sql -e "DELETE FROM shop.order_items WHERE order_id <= 2000; UPDATE shop.users SET email = CONCAT('x', id); DELETE FROM shop.products WHERE id NOT IN (SELECT product_id FROM shop.order_items)"

echo; echo "== rollback of the run, newest step first"
runbook rollback "$run_id" --yes
runbook show "$run_id"

after=$(sql -N -e "CHECKSUM TABLE shop.users, shop.products, shop.orders, shop.order_items")
ro=$(sql -N -e "SELECT @@read_only")
if [ "$before" = "$after" ] && [ "$ro" = 0 ]; then
  echo; echo "drill passed: the core tables are as they were and the server is writable again"
  echo "report: $RUNBOOK_HOME/drill-report.html"
else
  echo "drill FAILED: tables or read_only differ after the rollback" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
