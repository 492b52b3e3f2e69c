#!/usr/bin/env bash
# shellcheck shell=bash
#
# Local PostgreSQL for tokengate's scripts. Source this file; do not run it.
#
#   tokengate_db_up     If DATABASE_URL is set (and is not the private cluster's
#                       own URL), export it unchanged and return.
#                       Otherwise make sure a private cluster under $ROOT/.data/pg
#                       exists and runs (initdb once, data kept between runs),
#                       create the database `tokengate` if missing and export
#                       DATABASE_URL=postgres://postgres@127.0.0.1:PORT/tokengate.
#   tokengate_db_down   Stop the private cluster (no-op when DATABASE_URL was given).
#                       After tokengate_db_up, TG_PG_BIN names the PostgreSQL
#                       binaries (psql...) when the private cluster is used.
#   tokengate_db_status Print the state of the database; non-zero when it is not up.
#
# Layout (all under $ROOT/.data, which is git-ignored):
#   pg/data        the cluster (PGDATA)
#   pg/sock        its unix socket directory (or /tmp/tokengate-pg-HASH if that
#                  path would be too long for a unix socket)
#   pg/postgres.log  the server log
#   pg.port        the TCP port last used, reused while it is free
#   pg.lock        serializes concurrent `up`/`down` calls
#
# The cluster listens on 127.0.0.1 only, with trust authentication, as the
# superuser `postgres` (so #[sqlx::test] may CREATE DATABASE). initdb refuses to
# run as root: as root the cluster is owned by and run as the `postgres` user.
#
# Knobs: DATABASE_URL (use an existing server), TOKENGATE_DB_NAME (default
# tokengate), TOKENGATE_PG_BINDIR (PostgreSQL binaries), TOKENGATE_PG_PORT
# (first port to try, default 54320).

if [[ -z "${ROOT:-}" ]]; then
    ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
fi

TOKENGATE_DB_NAME="${TOKENGATE_DB_NAME:-tokengate}"

# Set to 1 by tokengate_db_up when this shell manages the private cluster (so
# that the DATABASE_URL it exported is not mistaken for a user-given one).
_TG_DB_PRIVATE="${_TG_DB_PRIVATE:-0}"

_tg_log() { printf '[db] %s\n' "$*" >&2; }
_tg_err() { printf '[db] error: %s\n' "$*" >&2; }

_tg_is_root() { [[ "$(id -u)" == 0 ]]; }

# Paths of the private cluster.
_tg_db_paths() {
    TG_DATA_DIR="$ROOT/.data"
    TG_PG_DIR="$TG_DATA_DIR/pg"
    TG_PGDATA="$TG_PG_DIR/data"
    TG_PG_LOG="$TG_PG_DIR/postgres.log"
    TG_PORT_FILE="$TG_DATA_DIR/pg.port"
    TG_LOCK_FILE="$TG_DATA_DIR/pg.lock"
    TG_SOCK_DIR="$TG_PG_DIR/sock"
    # sun_path holds 107 bytes + NUL; the socket file is "/.s.PGSQL.NNNNN"
    # (15 bytes) and postgres also creates a ".lock" beside it: keep a margin.
    if (( ${#TG_SOCK_DIR} > 80 )); then
        local hash
        hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
        TG_SOCK_DIR="/tmp/tokengate-pg-$hash"
    fi
}

# Run a command as the owner of the cluster: `postgres` when we are root.
_tg_as_owner() {
    if _tg_is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Find (or install) the PostgreSQL server binaries; sets TG_PG_BIN.
_tg_pg_bindir() {
    local d
    if [[ -n "${TOKENGATE_PG_BINDIR:-}" ]]; then
        if [[ -x "$TOKENGATE_PG_BINDIR/initdb" ]]; then
            TG_PG_BIN="$TOKENGATE_PG_BINDIR"
            return 0
        fi
        _tg_err "TOKENGATE_PG_BINDIR=$TOKENGATE_PG_BINDIR has no initdb"
        return 1
    fi
    _tg_find_bindir() {
        local found
        # Debian/Ubuntu: /usr/lib/postgresql/<major>/bin; take the highest major.
        found="$(for d in /usr/lib/postgresql/*/bin; do
                    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && echo "$d"
                 done | sort -t/ -k5,5n | tail -n1)"
        if [[ -n "$found" ]]; then
            TG_PG_BIN="$found"
            return 0
        fi
        if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
            TG_PG_BIN="$(dirname "$(command -v initdb)")"
            return 0
        fi
        return 1
    }
    _tg_find_bindir && return 0
    if _tg_is_root && command -v apt-get >/dev/null 2>&1; then
        _tg_log "PostgreSQL server binaries not found: installing Debian's 'postgresql' package"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }; then
            _tg_err "apt-get install postgresql failed"
            return 1
        fi
        _tg_find_bindir && return 0
    fi
    _tg_err "PostgreSQL server binaries (initdb, pg_ctl) not found."
    _tg_err "Install PostgreSQL (Debian: apt-get install postgresql), or set TOKENGATE_PG_BINDIR,"
    _tg_err "or point DATABASE_URL at an existing server."
    return 1
}

# Is something accepting TCP connections on 127.0.0.1:$1 ?
_tg_port_in_use() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints a free port: the one used last if it is still free, else the first free one from
# TOKENGATE_PG_PORT (or from $1 + 1 when given: $1 was just found taken).
_tg_pick_port() {
    local p start="${TOKENGATE_PG_PORT:-54320}"
    if [[ -n "${1:-}" ]]; then
        start=$(($1 + 1))
    elif [[ -s "$TG_PORT_FILE" ]]; then
        p="$(tr -dc '0-9' <"$TG_PORT_FILE")"
        if [[ -n "$p" ]] && ! _tg_port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    fi
    for ((p = start; p < start + 200; p++)); do
        if ! _tg_port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    _tg_err "no free TCP port in $start..$((start + 199))"
    return 1
}

_tg_print_log_tail() {
    if _tg_as_owner test -r "$TG_PG_LOG" 2>/dev/null; then
        _tg_err "last lines of $TG_PG_LOG:"
        _tg_as_owner tail -n 30 "$TG_PG_LOG" | sed 's/^/    /' >&2 || true
    fi
}

# As root, make sure `postgres` can reach $TG_PG_DIR: every ancestor needs the
# search (x) bit for it. Only the search bit for "others" is added, and only
# where it is missing.
_tg_ensure_traversable() {
    _tg_is_root || return 0
    local d="$TG_DATA_DIR" dirs=()
    while [[ -n "$d" && "$d" != "/" ]]; do
        dirs=("$d" "${dirs[@]}")
        d="$(dirname "$d")"
    done
    for d in "${dirs[@]}"; do
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            _tg_log "granting search permission on $d (chmod o+x) so the postgres user can reach the cluster"
            chmod o+x "$d" || { _tg_err "cannot chmod o+x $d"; return 1; }
        fi
    done
}

# Prepare the directories and, the first time, initdb.
_tg_db_init() {
    mkdir -p "$TG_DATA_DIR" || return 1
    _tg_ensure_traversable || return 1
    if _tg_is_root; then
        if ! id -u postgres >/dev/null 2>&1; then
            _tg_err "running as root but there is no 'postgres' user to own the cluster"
            _tg_err "(initdb refuses to run as root). Create one, run as a normal user, or set DATABASE_URL."
            return 1
        fi
        mkdir -p "$TG_PG_DIR" || return 1
        chown postgres: "$TG_PG_DIR" || return 1
        chmod 700 "$TG_PG_DIR" || return 1
    else
        mkdir -p "$TG_PG_DIR" || return 1
        chmod 700 "$TG_PG_DIR" || return 1
        if [[ ! -w "$TG_PG_DIR" ]]; then
            _tg_err "$TG_PG_DIR is not writable by $(id -un) (created by root earlier?)"
            return 1
        fi
    fi
    # The socket directory (may live under /tmp, which can be cleaned: recreate).
    if [[ "$TG_SOCK_DIR" == /tmp/* ]]; then
        mkdir -p "$TG_SOCK_DIR" || return 1
        _tg_is_root && { chown postgres: "$TG_SOCK_DIR" || return 1; }
        chmod 700 "$TG_SOCK_DIR" || return 1
    else
        _tg_as_owner mkdir -p "$TG_SOCK_DIR" || return 1
    fi

    if _tg_as_owner test -s "$TG_PGDATA/PG_VERSION"; then
        return 0
    fi
    # A half-made data dir from an interrupted initdb: start again.
    if _tg_as_owner test -e "$TG_PGDATA"; then
        _tg_log "removing incomplete cluster at $TG_PGDATA"
        _tg_as_owner rm -rf "$TG_PGDATA" || return 1
    fi
    _tg_log "creating a private PostgreSQL cluster in $TG_PGDATA ($("$TG_PG_BIN/postgres" --version 2>/dev/null || echo postgres))"
    local initlog="$TG_PG_DIR/initdb.log"
    if ! _tg_as_owner "$TG_PG_BIN/initdb" -D "$TG_PGDATA" --auth=trust -U postgres \
            -E UTF8 --locale=C.UTF-8 --no-instructions >"$initlog.tmp" 2>&1; then
        # C.UTF-8 missing on some systems: retry with plain C.
        _tg_as_owner rm -rf "$TG_PGDATA"
        if ! _tg_as_owner "$TG_PG_BIN/initdb" -D "$TG_PGDATA" --auth=trust -U postgres \
                -E UTF8 --locale=C --no-instructions >>"$initlog.tmp" 2>&1; then
            _tg_err "initdb failed:"
            sed 's/^/    /' "$initlog.tmp" >&2
            _tg_as_owner rm -rf "$TG_PGDATA"
            return 1
        fi
    fi
    mv -f "$initlog.tmp" "$initlog" 2>/dev/null || true
    # Trust, but only for the unix socket and 127.0.0.1.
    _tg_as_owner tee "$TG_PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# tokengate private development cluster: trust, local connections only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
    # A throw-away development/test database: favour speed over durability,
    # and allow many connections (#[sqlx::test] runs tests in parallel).
    _tg_as_owner tee -a "$TG_PGDATA/postgresql.conf" >/dev/null <<'EOF'

# --- tokengate private development cluster (scripts/lib/db.sh) ---
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Is the private cluster running? Prints its port when it is.
_tg_db_running_port() {
    local pidfile="$TG_PGDATA/postmaster.pid" pid port
    _tg_as_owner test -f "$pidfile" 2>/dev/null || return 1
    pid="$(_tg_as_owner sed -n 1p "$pidfile" 2>/dev/null)" || return 1
    port="$(_tg_as_owner sed -n 4p "$pidfile" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ && "$port" =~ ^[0-9]+$ ]] || return 1
    # The pid must be alive and be a postgres (pids get reused after a reboot).
    [[ -r "/proc/$pid/comm" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres* ]] || return 1
    echo "$port"
}

_tg_wait_ready() {
    local port="$1" i
    for ((i = 0; i < 120; i++)); do
        if "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 1; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# Start the cluster if needed; prints the port on stdout.
_tg_db_start() {
    local port attempt
    if port="$(_tg_db_running_port)"; then
        if _tg_wait_ready "$port"; then
            echo "$port"
            return 0
        fi
        _tg_err "the private cluster (pid file in $TG_PGDATA) runs but does not answer on 127.0.0.1:$port"
        _tg_print_log_tail
        return 1
    fi
    local taken="" log_size
    for attempt in 1 2 3 4 5; do
        port="$(_tg_pick_port $taken)" || return 1
        log_size="$(_tg_as_owner stat -c %s "$TG_PG_LOG" 2>/dev/null || echo 0)"
        _tg_log "starting the private PostgreSQL on 127.0.0.1:$port"
        # fd 9 is the lock: the server must not inherit it.
        if _tg_as_owner "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" -l "$TG_PG_LOG" -w -t 120 \
                -o "-p $port -k '$TG_SOCK_DIR' -c listen_addresses=127.0.0.1" \
                start >&2 9>&-; then
            echo "$port" >"$TG_PORT_FILE"
            if _tg_wait_ready "$port"; then
                echo "$port"
                return 0
            fi
            _tg_err "PostgreSQL started but is not ready on 127.0.0.1:$port"
            _tg_print_log_tail
            return 1
        fi
        # Lost a race for the port, or it is the local end of some client's connection (these
        # ports lie in the kernel's ephemeral range), which no connection test sees? Try another.
        if { _tg_port_in_use "$port" && ! _tg_db_running_port >/dev/null; } ||
            _tg_as_owner tail -c +"$((log_size + 1))" "$TG_PG_LOG" 2>/dev/null |
            grep -q "Address already in use"; then
            _tg_log "port $port was taken meanwhile (attempt $attempt); trying another"
            rm -f "$TG_PORT_FILE"
            taken="$port"
            continue
        fi
        break
    done
    _tg_err "could not start PostgreSQL (data: $TG_PGDATA)"
    _tg_print_log_tail
    return 1
}

_tg_psql_admin() {
    local port="$1"
    shift
    PGCONNECT_TIMEOUT=10 "$TG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

_tg_db_create() {
    local port="$1" exists
    exists="$(_tg_psql_admin "$port" -tA \
        -c "SELECT 1 FROM pg_database WHERE datname = '$TOKENGATE_DB_NAME'")" || {
        _tg_err "cannot query the private PostgreSQL on 127.0.0.1:$port"
        _tg_print_log_tail
        return 1
    }
    if [[ "$exists" != 1 ]]; then
        _tg_log "creating database $TOKENGATE_DB_NAME"
        _tg_psql_admin "$port" -c "CREATE DATABASE \"$TOKENGATE_DB_NAME\"" >&2 || {
            _tg_err "CREATE DATABASE $TOKENGATE_DB_NAME failed"
            return 1
        }
    fi
}

# Run "$@" holding the lock (serializes concurrent up/down of one checkout).
_tg_with_lock() {
    mkdir -p "$TG_DATA_DIR" || return 1
    (
        if command -v flock >/dev/null 2>&1; then
            flock -w 300 9 || { _tg_err "timed out waiting for $TG_LOCK_FILE"; exit 1; }
        fi
        "$@"
    ) 9>>"$TG_LOCK_FILE"
}

_tg_db_up_locked() {
    _tg_db_init || return 1
    local port
    port="$(_tg_db_start)" || return 1
    _tg_db_create "$port" || return 1
    echo "$port"
}

# Is DATABASE_URL user-given (not the private cluster's own URL, which a
# developer may have exported from `scripts/db up`)?
_tg_url_is_external() {
    [[ -n "${DATABASE_URL:-}" && "$_TG_DB_PRIVATE" != 1 ]] || return 1
    _tg_db_paths
    local port=""
    [[ -s "$TG_PORT_FILE" ]] && port="$(tr -dc '0-9' <"$TG_PORT_FILE")"
    [[ -z "$port" || "$DATABASE_URL" != "postgres://postgres@127.0.0.1:$port/$TOKENGATE_DB_NAME" ]]
}

tokengate_db_up() {
    if _tg_url_is_external; then
        export DATABASE_URL
        _tg_log "using DATABASE_URL from the environment"
        return 0
    fi
    _tg_db_paths
    _tg_pg_bindir || return 1
    local port
    port="$(_tg_with_lock _tg_db_up_locked)" || {
        _tg_err "the private PostgreSQL is not available (see above)"
        return 1
    }
    [[ "$port" =~ ^[0-9]+$ ]] || { _tg_err "internal: bad port '$port'"; return 1; }
    # shellcheck disable=SC2034 # for callers
    TG_DB_PORT="$port"
    _TG_DB_PRIVATE=1
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$TOKENGATE_DB_NAME"
    _tg_log "PostgreSQL ready: $DATABASE_URL"
}

_tg_db_stop_locked() {
    if ! _tg_as_owner test -s "$TG_PGDATA/PG_VERSION" 2>/dev/null; then
        _tg_log "no private cluster in $TG_PGDATA: nothing to stop"
        return 0
    fi
    if ! _tg_db_running_port >/dev/null; then
        _tg_log "the private PostgreSQL is not running"
        return 0
    fi
    _tg_log "stopping the private PostgreSQL ($TG_PGDATA)"
    if ! _tg_as_owner "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" -m fast -w -t 60 stop >&2 9>&-; then
        _tg_err "pg_ctl stop failed"
        _tg_print_log_tail
        return 1
    fi
}

tokengate_db_down() {
    if _tg_url_is_external; then
        _tg_log "DATABASE_URL is set: not managing that server, nothing to stop"
        return 0
    fi
    _tg_db_paths
    if ! _tg_as_owner test -d "$TG_PGDATA" 2>/dev/null; then
        _tg_log "no private cluster in $TG_PGDATA: nothing to stop"
        return 0
    fi
    _tg_pg_bindir || return 1
    _tg_with_lock _tg_db_stop_locked
}

tokengate_db_status() {
    if _tg_url_is_external; then
        echo "database: DATABASE_URL from the environment (not managed by scripts/db)"
        if command -v pg_isready >/dev/null 2>&1; then
            pg_isready -d "$DATABASE_URL"
        fi
        return
    fi
    _tg_db_paths
    echo "cluster:  $TG_PGDATA"
    if ! _tg_as_owner test -s "$TG_PGDATA/PG_VERSION" 2>/dev/null; then
        echo "state:    not created (scripts/db up creates it)"
        return 3
    fi
    local port
    if port="$(_tg_db_running_port)"; then
        _tg_pg_bindir >/dev/null 2>&1 || true
        echo "state:    running (pid $(_tg_as_owner sed -n 1p "$TG_PGDATA/postmaster.pid"))"
        echo "socket:   $TG_SOCK_DIR"
        echo "log:      $TG_PG_LOG"
        echo "url:      postgres://postgres@127.0.0.1:$port/$TOKENGATE_DB_NAME"
        if [[ -n "${TG_PG_BIN:-}" ]] &&
            ! "$TG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; then
            echo "ready:    no (not accepting connections)"
            return 1
        fi
        return 0
    fi
    echo "state:    stopped"
    [[ -s "$TG_PORT_FILE" ]] && echo "port:     $(cat "$TG_PORT_FILE") (last used)"
    return 3
}
