#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: initdb in a fresh temp dir, unix socket in that dir,
# no TCP (listen_addresses=''), fsync on (the store-pg durability test relies on it).
#
#   bash pg_env.sh COMMAND [ARGS...]   start a cluster, run COMMAND with PARLEY_TEST_PG set to its
#                                      conninfo, stop the cluster, exit with COMMAND's status
#   source pg_env.sh                   define pg_env_start / pg_env_stop (pg_env_start exports
#                                      PARLEY_TEST_PG and installs an EXIT trap that stops it)
#   bash pg_env.sh --ctl stop|start    inside COMMAND: stop the cluster at once (pg_ctl stop
#                                      -m immediate, i.e. a crash) or start it again
#
# Exported to COMMAND: PARLEY_TEST_PG (conninfo "host=<dir> port=<p> user=postgres
# dbname=postgres"), PARLEY_TEST_PG_DIR, PARLEY_TEST_PG_PORT, PARLEY_TEST_PG_ENV (this script).
# Exits 77 (ctest: skipped) when no PostgreSQL server binaries are installed.
# initdb refuses to run as root: as root the server runs as the `postgres` user.

pg_env_bindir() {
    if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/initdb" ]]; then
        echo "$PG_BINDIR"
        return 0
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

# Runs a server binary as the cluster's owner.
pg_env_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_env_ctl() {
    local bin dir="${PARLEY_TEST_PG_DIR:?PARLEY_TEST_PG_DIR is not set}"
    bin=$(pg_env_bindir) || { echo "pg_env: no PostgreSQL binaries" >&2; return 1; }
    case "$1" in
    stop) pg_env_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null ;;
    start)
        pg_env_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-k $dir -p ${PARLEY_TEST_PG_PORT} -c listen_addresses='' -c fsync=on" \
            start >/dev/null
        ;;
    *)
        echo "pg_env: --ctl stop|start" >&2
        return 2
        ;;
    esac
}

pg_env_stop() {
    local dir="${PARLEY_TEST_PG_DIR:-}" bin
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if bin=$(pg_env_bindir) && [[ -f "$dir/data/postmaster.pid" ]]; then
        pg_env_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
            pg_env_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$dir"
    unset PARLEY_TEST_PG PARLEY_TEST_PG_DIR PARLEY_TEST_PG_PORT
}

pg_env_start() {
    local bin dir port
    bin=$(pg_env_bindir) || { echo "pg_env: no PostgreSQL server binaries found" >&2; return 77; }
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        echo "pg_env: running as root but there is no 'postgres' user" >&2
        return 77
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-pg.XXXXXX") || return 1
    [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
    # The socket path must stay under 107 bytes; the port only names the socket file.
    port=$((20000 + RANDOM % 20000))
    export PARLEY_TEST_PG_DIR="$dir" PARLEY_TEST_PG_PORT="$port"
    if ! pg_env_as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
        echo "pg_env: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        pg_env_stop
        return 1
    fi
    if ! pg_env_ctl start; then
        echo "pg_env: server did not start:" >&2
        cat "$dir/server.log" >&2
        pg_env_stop
        return 1
    fi
    export PARLEY_TEST_PG="host=$dir port=$port user=postgres dbname=postgres"
    PARLEY_TEST_PG_ENV="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
    export PARLEY_TEST_PG_ENV
    trap pg_env_stop EXIT
    echo "pg_env: PostgreSQL up: $PARLEY_TEST_PG" >&2
}

# Executed (not sourced): run a command against a fresh cluster.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -u
    if [[ "${1:-}" == "--ctl" ]]; then
        pg_env_ctl "${2:-}"
        exit $?
    fi
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 COMMAND [ARGS...] | $0 --ctl stop|start | source $0" >&2
        exit 2
    fi
    pg_env_start
    rc=$?
    [[ $rc -eq 0 ]] || exit $rc
    "$@"
    rc=$?
    if [[ $rc -ne 0 && -f "$PARLEY_TEST_PG_DIR/server.log" ]]; then
        echo "pg_env: command failed ($rc); server log tail:" >&2
        tail -n 30 "$PARLEY_TEST_PG_DIR/server.log" >&2
    fi
    pg_env_stop
    trap - EXIT
    exit $rc
fi
