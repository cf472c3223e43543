#!/usr/bin/env bash
# The P0 drill, end to end, against a fresh local lab (a private MariaDB + sshd; nothing of the
# machine's own server is touched):
#   1. emergency: load the shop, back it up with mariadb-dump, simulate an incident (a truncated
#      table, deleted and corrupted rows, an application that keeps writing), then
#      `runbook play runbooks/emergency.yml`; check the core tables equal the backup
#      (CHECKSUM TABLE), writes are open and every verify passed.
#   2. crash: `runbook lab crash` (kill -9 under load, a transaction open), then
#      `runbook play runbooks/crash-recovery.yml`; check no committed row was lost and the
#      uncommitted transaction was rolled back.
# Prints where the HTML reports (the incident records) are, and "drill passed".
# KEEP_LAB=1 keeps the lab up afterwards; SKIP_SETUP=1 skips scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
export RUNBOOK_HOME="${RUNBOOK_HOME:-$PWD/.runbook}"
start=$(date +%s)

runbook lab down >/dev/null 2>&1 || true      # a fresh lab every time
runbook lab up
inv="$RUNBOOK_HOME/lab/inventory.yml"
port=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mysql_port'])" "$RUNBOOK_HOME/lab/lab.json")
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
CORE="shop.users, shop.products, shop.orders, shop.order_items"

echo; echo "== 1/2 the emergency drill (P0): a shop, its backup, an incident"
sql < scripts/lab-shop.sql
sql -e "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app'; GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'127.0.0.1'"
backup="$RUNBOOK_HOME/lab/backups/shop-full.sql.gz"     # on the "database host" (the lab runs here)
mkdir -p "$(dirname "$backup")"
mariadb-dump -uroot -h127.0.0.1 -P"$port" --single-transaction --routines --triggers --databases shop | gzip > "$backup"
backup_sums=$(sql -N -e "CHECKSUM TABLE $CORE")
echo "backup: $backup ($(stat -c %s "$backup") bytes)"

# The application keeps writing (new orders, one every 50 ms) as the 'app' account until the
# fence kills its session; read_only then refuses it even if it reconnected.
python3 -c "
for i in range(20001, 26001):
    print(f\"INSERT INTO shop.orders VALUES ({i}, 1 + {i} % 2000, NOW(), 'new'); DO SLEEP(0.05);\")
" > "$out/app.sql"
mysql -uapp -papp -h127.0.0.1 -P"$port" < "$out/app.sql" > "$out/app.log" 2>&1 &
app_pid=$!
# The incident: a bad deploy empties order_items, deletes orders and products, rewrites emails.
sql -e "SET FOREIGN_KEY_CHECKS=0; TRUNCATE shop.order_items; DELETE FROM shop.orders WHERE id BETWEEN 9001 AND 10000;
        DELETE FROM shop.products WHERE id > 190; UPDATE shop.users SET email = CONCAT('x', id, '@corrupt') WHERE id % 10 = 0;
        DELETE FROM shop.reviews WHERE id <= 100"
sleep 0.5
[ "$(sql -N -e "SELECT COUNT(*) FROM shop.orders WHERE id > 20000")" -gt 0 ] || fail "the application session is not writing (see $out/app.log)"

echo; echo "== runbook play runbooks/emergency.yml"
runbook validate runbooks/emergency.yml -i "$inv" >/dev/null
runbook play runbooks/emergency.yml -i "$inv" -e schema=shop -e backup="$backup" \
    --yes --report "$out/emergency.html" || fail "runbook play runbooks/emergency.yml exited $?"
run_id=$(last_run)
wait "$app_pid" 2>/dev/null || true; app_pid=""
runbook report "$run_id" --format json -o "$out/emergency.json" >/dev/null

after_sums=$(sql -N -e "CHECKSUM TABLE $CORE")
[ "$backup_sums" = "$after_sums" ] || { diff <(echo "$backup_sums") <(echo "$after_sums") >&2; fail "the core tables differ from the backup"; }
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
echo "core tables equal the backup (CHECKSUM TABLE), writes open, verify passed"

echo; echo "== 2/2 the crash-recovery drill: kill -9 under load, then runbooks/crash-recovery.yml"
runbook lab crash
runbook play runbooks/crash-recovery.yml -i "$inv" -e schema=crashlab -e '{"core_tables": ["orders"]}' \
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
