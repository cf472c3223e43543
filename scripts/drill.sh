#!/usr/bin/env bash
# The P0 drill, end to end, against a fresh local lab (a private MariaDB primary db1, its replica
# db2 and an sshd; nothing of the machine's own server is touched):
#   1. emergency, point-in-time recovery: `runbook lab load shop` (the shop and its nightly
#      backup, with binlog coordinates); a reference copy shop_ref made by the same script; the
#      application writes (every transaction to shop AND shop_ref); the incident hits shop only
#      (TRUNCATE order_items, then DELETE of 1000 orders); the application writes again, and
#      keeps writing until the fence kills it; then `runbook play runbooks/emergency.yml`.
#      Passed when the core tables of shop equal shop_ref's on db1 and on db2 (CHECKSUM TABLE):
#      nothing lost but the incident. Writes open, every verify after the restore passed.
#   2. crash: `runbook lab crash` (kill -9 under load, a transaction open), then
#      `runbook play runbooks/crash-recovery.yml`; check no committed row was lost and the
#      uncommitted transaction was rolled back (the server comes back read-only until verified).
# Prints where the HTML reports (the incident records) are, and "drill passed".
# KEEP_LAB=1 keeps the lab up afterwards; SKIP_SETUP=1 skips scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
export RUNBOOK_HOME="${RUNBOOK_HOME:-$PWD/.runbook}"
start=$(date +%s)

runbook lab down >/dev/null 2>&1 || true      # a fresh lab every time
runbook lab up --replicas 1
inv="$RUNBOOK_HOME/lab/inventory.yml"
port_of() { python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['all']['hosts'][sys.argv[2]]['mysql_port'])" "$inv" "$1"; }
port=$(port_of db1)
replica_port=$(port_of db2)
out="$RUNBOOK_HOME/drill"
mkdir -p "$out"
sql() { mysql -uroot -h127.0.0.1 -P"$port" "$@"; }
app_pid=""
cleanup() {
  [ -z "$app_pid" ] || kill "$app_pid" 2>/dev/null || true
  [ "${KEEP_LAB:-0}" = 1 ] || runbook lab down >/dev/null
}
trap cleanup EXIT
fail() { echo "drill FAILED: $*" >&2; exit 1; }
last_run() { runbook runs | awk 'NR > 1 {id = $1} END {print id}'; }
CORE="users products orders order_items"
sums() {  # the CHECKSUM TABLE values of a schema's core tables on a port
  local schema=$1 p=${2:-$port}
  mysql -uroot -h127.0.0.1 -P"$p" -N -e "CHECKSUM TABLE $(for t in $CORE; do printf '%s.%s,' "$schema" "$t"; done | sed 's/,$//')" | awk '{print $2}'
}

echo; echo "== 1/2 the emergency drill (P0): a shop, its backup, writes, an incident, more writes"
loaded=$(runbook lab load shop)
echo "$loaded"
backup=$(echo "$loaded" | sed -n 's/^backup: //p')
[ -s "$backup" ] || fail "runbook lab load shop printed no backup"
# The reference copy: the same script, the same rows; from now on it gets every write but the incident.
sed -e 's/^CREATE DATABASE IF NOT EXISTS shop;/CREATE DATABASE shop_ref;/' -e 's/^USE shop;/USE shop_ref;/' scripts/lab-shop.sql | sql
sql -e "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app';
        GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'127.0.0.1';
        GRANT SELECT, INSERT, UPDATE, DELETE ON shop_ref.* TO 'app'@'127.0.0.1'"
# The application: each transaction applied to shop and to shop_ref at once (all or nothing).
traffic() {  # first order id, count, orders whose status moves new -> paid -> shipped, pause (s)
  python3 - "$@" <<'EOF'
import sys
first, n, lo, hi, pause = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def txn(*stmts):
    # One clock reading per transaction: NOW() is each statement's own start time, and the
    # copy's statement can fall in the next second (the copy would then differ by the harness).
    body = " ".join(s.replace("{s}", sc) for sc in ("shop", "shop_ref") for s in stmts)
    print(f"START TRANSACTION; SET @now = NOW(); {body} COMMIT;" + (f" DO SLEEP({pause});" if pause != "0" else ""))
for i in range(first, first + n):
    txn(f"INSERT INTO {{s}}.orders VALUES ({i}, {1 + i % 2000}, @now, 'new');",
        f"INSERT INTO {{s}}.order_items VALUES ({i}, 1, {1 + i % 200}, 2), ({i}, 2, {1 + i * 7 % 200}, 1);")
for o in range(lo, hi):
    txn(f"UPDATE {{s}}.orders SET status = 'paid' WHERE id = {o};")
    txn(f"UPDATE {{s}}.orders SET status = 'shipped' WHERE id = {o};")
txn(f"UPDATE {{s}}.users SET email = 'moved{first}@example.com' WHERE id = {first % 2000 + 1};",
    f"UPDATE {{s}}.products SET price = price + 1 WHERE id = {first % 200 + 1};")
EOF
}
appsql() { mysql -uapp -papp -h127.0.0.1 -P"$port"; }
traffic 20001 20 1 40 0 | appsql                       # writes after the backup
appsql <<< "START TRANSACTION; DELETE FROM shop.orders WHERE id = 5000; DELETE FROM shop_ref.orders WHERE id = 5000; COMMIT;"
echo "the incident: TRUNCATE shop.order_items; DELETE FROM shop.orders WHERE id BETWEEN 9001 AND 10000"
sql -e "TRUNCATE shop.order_items; DELETE FROM shop.orders WHERE id BETWEEN 9001 AND 10000"
traffic 20101 20 100 140 0 | appsql                    # writes after the incident
# ... and the application keeps writing (an order every 50 ms) until the fence kills its session.
traffic 21001 3000 0 0 0.05 > "$out/app.sql"
appsql < "$out/app.sql" > "$out/app.log" 2>&1 &
app_pid=$!
sleep 0.5
[ "$(sql -N -e "SELECT COUNT(*) FROM shop.orders WHERE id > 21000")" -gt 0 ] || fail "the application session is not writing (see $out/app.log)"

echo; echo "== runbook play runbooks/emergency.yml"
runbook validate runbooks/emergency.yml -i "$inv" >/dev/null
runbook play runbooks/emergency.yml -i "$inv" -e schema=shop -e backup="$backup" -e watch_polls=2 -e watch_interval_s=2 \
    --yes --report "$out/emergency.html" || fail "runbook play runbooks/emergency.yml exited $?"
run_id=$(last_run)
wait "$app_pid" 2>/dev/null || true; app_pid=""
runbook report "$run_id" --format json -o "$out/emergency.json" >/dev/null

written=$(sql -N -e "SELECT COUNT(*) FROM shop_ref.orders WHERE id > 21000")
rowdiff() {  # the rows of each core table on one side only (at most 5 each way), to say what differs
  for t in $CORE; do
    sql -e "(SELECT 'only in shop_ref' AS side, r.* FROM (SELECT * FROM shop_ref.$t EXCEPT SELECT * FROM shop.$t) r LIMIT 5)
            UNION ALL (SELECT 'only in shop', s.* FROM (SELECT * FROM shop.$t EXCEPT SELECT * FROM shop_ref.$t) s LIMIT 5)" >&2
  done
}
[ "$(sums shop)" = "$(sums shop_ref)" ] || { rowdiff; fail "the core tables differ from the reference copy (every write but the incident)"; }
[ "$(sums shop "$replica_port")" = "$(sums shop_ref)" ] || fail "the replica db2 differs from the reference copy"
[ "$(sql -N -e 'SELECT @@read_only')" = 0 ] || fail "writes are still fenced (read_only=ON)"
python3 - "$out/emergency.json" <<'EOF' || fail "a verify check did not pass"
import json, sys
checks = json.load(open(sys.argv[1]))["verification"]
# The damage report (stage assess) exists to find failures; every check after the restore must pass.
after = [c for c in checks if c["stage"] != "assess"]
bad = [f"{c['step']}: {c['name']}: {c['detail']}" for c in after if c["result"] == "fail"]
if not after or bad:
    sys.exit("verify after the restore: " + ("; ".join(bad) or "no check ran"))
print(f"verify: {len(after)} checks after the restore, none failed")
EOF
echo "nothing lost but the incident: the core tables equal the reference copy on db1 and db2 (CHECKSUM TABLE),"
echo "  including the $written orders the application wrote until the fence; writes open, verify passed"

echo; echo "== 2/2 the crash-recovery drill: kill -9 under load, then runbooks/crash-recovery.yml"
runbook lab crash
runbook play runbooks/crash-recovery.yml -i "$inv" -e schema=crashlab -e '{"core_tables": ["orders"]}' -e reopen=true \
    --yes --report "$out/crash-recovery.html" || fail "runbook play runbooks/crash-recovery.yml exited $?"
expected=$(sql -N -e "SELECT \`rows\` FROM crashlab.expected WHERE tbl = 'orders'")
got=$(sql -N -e "SELECT COUNT(*) FROM crashlab.orders")
negative=$(sql -N -e "SELECT COUNT(*) FROM crashlab.orders WHERE amount < 0")
[ "$expected" = "$got" ] && [ "$negative" = 0 ] \
  || fail "crashlab.orders holds $got rows ($expected committed), $negative negative amounts (the uncommitted update)"
echo "crash recovery: $got committed rows kept, the open transaction rolled back"

echo
echo "reports: $out/emergency.html"
echo "         $out/crash-recovery.html"
echo "drill passed in $(( $(date +%s) - start ))s"
