#!/usr/bin/env bash
# shellcheck shell=bash
#
# The browser tests (tests/e2e): the real binary against a fresh database, driven in Debian's
# Chromium by Playwright. Source this file; do not run it.
#
#   tokengate_e2e_prepare   make sure Chromium and the Python environment (.data/e2e-venv,
#                           with tests/e2e/requirements.txt) are there, installing what is
#                           missing when it can; says what is missing when it cannot.
#   tokengate_e2e_run ARGS  run them (ARGS go to pytest) against a database made for this run
#                           on DATABASE_URL's server, dropped afterwards.
#
# Knobs: TOKENGATE_CHROMIUM (the browser, default /usr/bin/chromium), TOKENGATE_BIN (the
# binary, default target/debug/tokengate). Playwright's own browser download does not work
# here and is never used: the tests launch the system's Chromium.

_e2e_log() { printf '[e2e] %s\n' "$*" >&2; }
_e2e_err() { printf '[e2e] error: %s\n' "$*" >&2; }

_e2e_apt_install() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
    _e2e_log "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "$@" >&2; }
}

tokengate_e2e_prepare() {
    TG_E2E_CHROMIUM="${TOKENGATE_CHROMIUM:-/usr/bin/chromium}"
    if [[ ! -x "$TG_E2E_CHROMIUM" ]]; then
        if [[ -z "${TOKENGATE_CHROMIUM:-}" ]] && _e2e_apt_install chromium && [[ -x "$TG_E2E_CHROMIUM" ]]; then
            :
        else
            _e2e_err "Chromium is missing: install Debian's chromium package (apt-get install chromium, as root)"
            _e2e_err "or point TOKENGATE_CHROMIUM at a Chromium; TOKENGATE_SKIP_E2E=1 skips the browser tests"
            return 1
        fi
    fi

    local venv="$ROOT/.data/e2e-venv" requirements="$ROOT/tests/e2e/requirements.txt"
    if ! command -v python3 >/dev/null 2>&1; then
        _e2e_apt_install python3 python3-venv || {
            _e2e_err "python3 is missing (Debian: apt-get install python3 python3-venv)"
            return 1
        }
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        _e2e_log "creating $venv"
        mkdir -p "$ROOT/.data"
        if ! python3 -m venv "$venv" >&2; then
            rm -rf "$venv"
            _e2e_apt_install python3-venv && python3 -m venv "$venv" >&2 || {
                rm -rf "$venv"
                _e2e_err "python3 cannot make a virtual environment (Debian: apt-get install python3-venv)"
                return 1
            }
        fi
    fi
    # Reinstall only when the pinned versions change.
    if ! cmp -s "$requirements" "$venv/.installed-requirements"; then
        _e2e_log "installing $(tr '\n' ' ' <"$requirements")into $venv"
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2; then
            _e2e_err "could not install $(tr '\n' ' ' <"$requirements")from PyPI into $venv"
            return 1
        fi
        cp "$requirements" "$venv/.installed-requirements"
    fi
    TG_E2E_PYTHON="$venv/bin/python"
}

tokengate_e2e_run() {
    local bin="${TOKENGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/tokengate}"
    [[ -x "$bin" ]] || { _e2e_err "$bin is not built (cargo build)"; return 1; }
    local psql="psql"
    if [[ -n "${TG_PG_BIN:-}" && -x "$TG_PG_BIN/psql" ]]; then
        psql="$TG_PG_BIN/psql"
    elif ! command -v psql >/dev/null 2>&1; then
        _e2e_err "psql is missing (Debian: apt-get install postgresql-client)"
        return 1
    fi
    # A database of its own, on the server DATABASE_URL names.
    local name="tokengate_e2e_$$" base="${DATABASE_URL%%\?*}" query=""
    [[ "$DATABASE_URL" == *\?* ]] && query="?${DATABASE_URL#*\?}"
    local url="${base%/*}/$name$query"
    PGCONNECT_TIMEOUT=10 "$psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
        -c "CREATE DATABASE \"$name\"" >&2 || { _e2e_err "cannot create database $name"; return 1; }
    _e2e_log "pytest tests/e2e (database $name, browser $TG_E2E_CHROMIUM)"
    local status=0
    TOKENGATE_E2E_DATABASE_URL="$url" TOKENGATE_BIN="$bin" TOKENGATE_CHROMIUM="$TG_E2E_CHROMIUM" \
        "$TG_E2E_PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/e2e" "$@" || status=$?
    PGCONNECT_TIMEOUT=10 "$psql" -X -q "$DATABASE_URL" \
        -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >&2 || _e2e_log "could not drop database $name"
    return "$status"
}
