#!/usr/bin/env bash
# Prepare a fresh machine for runbook: Python packages, OpenSSH server (for the tests and the
# lab), and a running MariaDB at 127.0.0.1:3306. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v mariadb-dump >/dev/null 2>&1 || command -v mysqldump >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)  # the tests of ansible_become (commands through sudo -n)
command -v myloader >/dev/null 2>&1 || need_apt+=(mydumper)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the test that opens the HTML report in a browser  # bench/restore_speed.py compares restore with it
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# sshd refuses to start without its privilege-separation directory (the tests start their own sshd).
mkdir -p /run/sshd 2>/dev/null || true

# MariaDB: start it when it does not answer (the machine image has it installed).
if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
  if [ -x /usr/sbin/mariadbd ]; then
    echo "setup: starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    # A tmpdir of its own: at start-up every mariadbd deletes each #sql* file of its tmpdir,
    # whoever's it is, and MariaDB 10.11 dies with SIGSEGV when an information_schema temporary
    # table loses its .MAI that way (bench/tmpdir_sweep.py). Any other mariadbd on the machine
    # with the default tmpdir (/tmp) would otherwise crash this one when it starts.
    mkdir -p /var/lib/mysql-tmp && chown mysql:mysql /var/lib/mysql-tmp && chmod 700 /var/lib/mysql-tmp
    # --pidfile: a lab's or a test's private mariadbd must not count as "already running".
    start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd \
      -- --tmpdir=/var/lib/mysql-tmp
    for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && break; sleep 0.5; done
    (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null || { echo "setup: MariaDB did not start on 127.0.0.1:3306" >&2; exit 1; }
  else
    echo "setup: no MariaDB at 127.0.0.1:3306 and /usr/sbin/mariadbd is missing" >&2
    exit 1
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -i "running pip as the 'root' user" || true
python3 -c "import engine, paramiko, pymysql, yaml, jsonschema, jinja2, click, rich" \
  || { echo "setup: Python packages failed to install" >&2; exit 1; }
