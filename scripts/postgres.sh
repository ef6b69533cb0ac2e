#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the tests and for trying creditops at scale.
#
#   scripts/postgres.sh start  [DIR]   initdb + start on a free port; prints the URL
#   scripts/postgres.sh stop   [DIR]   stop it and delete DIR
#   scripts/postgres.sh pause  [DIR]   stop the server, keep its data (fault-injection tests)
#   scripts/postgres.sh resume [DIR]   start it again on the same port
#   scripts/postgres.sh url    [DIR]   print the URL of a running cluster
#
# DIR defaults to $CREDITOPS_PG_DIR or /tmp/creditops-pg. PostgreSQL comes from
# Debian (`apt-get install postgresql`) when no server binaries are found. The
# server refuses to run as root, so as root it runs as the `postgres` user
# (created by the Debian package; a `creditops-pg` system user otherwise).
# Authentication is `trust` on 127.0.0.1 only: this cluster is for tests, never data.
# The URL names the psycopg 3 driver: postgresql+psycopg://creditops@127.0.0.1:PORT/creditops
set -euo pipefail

command=${1:-}
dir=${2:-${CREDITOPS_PG_DIR:-/tmp/creditops-pg}}
db_user=creditops
db_name=creditops

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bindir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $candidate/initdb && -x $candidate/pg_ctl && -x $candidate/postgres ]]; then
            echo "$candidate"
            return 0
        fi
    done
    candidate=$(command -v initdb 2>/dev/null || true)
    if [[ -n $candidate ]]; then
        dirname "$(readlink -f "$candidate")"
        return 0
    fi
    return 1
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get to install it"
    echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
    # no default cluster: this script makes its own
    mkdir -p /etc/postgresql-common
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
}

# Run a command as the cluster's owner (ourselves unless we are root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$owner" -- "$@"
    else
        "$@"
    fi
}

choose_owner() {
    if [[ $(id -u) -ne 0 ]]; then
        owner=$(id -un)
    elif id postgres >/dev/null 2>&1; then
        owner=postgres
    else
        id creditops-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin creditops-pg
        owner=creditops-pg
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
EOF
}

url_of() {
    echo "postgresql+psycopg://${db_user}@127.0.0.1:$(cat "$dir/port")/${db_name}"
}

start_server() {
    local port
    port=$(cat "$dir/port")
    # -k: the Unix socket lives in DIR, not in /var/run/postgresql (may not exist or be writable)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null \
        || { tail -20 "$dir/server.log" >&2; die "the server did not start (log: $dir/server.log)"; }
}

case $command in
start)
    bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "no PostgreSQL server binaries after the install"; }
    choose_owner
    if [[ -f $dir/port ]] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        url_of
        exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chown "$owner" "$dir"
    chmod 700 "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U "$db_user" --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # a test cluster: durability off, room for several service workers, MLflow and search workers
    cat >>"$dir/data/postgresql.conf" <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
EOF
    free_port >"$dir/port"
    echo "$bindir" >"$dir/bindir"
    start_server
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$(cat "$dir/port")" -U "$db_user" "$db_name"
    url_of | tee "$dir/url"
    ;;
stop)
    [[ -d $dir ]] || exit 0
    bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir || true)
    choose_owner
    if [[ -n $bindir && -d $dir/data ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
pause)
    [[ -d $dir/data ]] || die "no cluster in $dir"
    bindir=$(cat "$dir/bindir")
    choose_owner
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    [[ -d $dir/data ]] || die "no cluster in $dir"
    bindir=$(cat "$dir/bindir")
    choose_owner
    start_server
    ;;
url)
    [[ -f $dir/port ]] || die "no cluster in $dir"
    url_of
    ;;
*)
    echo "usage: $0 start|stop|pause|resume|url [DIR]" >&2
    exit 2
    ;;
esac
