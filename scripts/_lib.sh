# shellcheck shell=bash
# Shared helpers for scripts/test.sh, scripts/demo.sh and scripts/tox.sh.
# Source it; do not run it. Callers set `set -euo pipefail` themselves.
#
# Knobs (environment):
#   PYTHON       interpreter used to create .venv (default: the newest of Python 3.13 ... 3.10 from
#                pyenv or PATH, else python3)
#   VENV         virtualenv directory (default: <repo>/.venv)
#   SKIP_APT=1   never call apt-get (fail instead if a system package is missing)

# Repository root: the parent of this file's directory.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"

# Colours only on a terminal (CI logs stay plain).
# shellcheck disable=SC2034  # used by the scripts that source this file
if [[ -t 2 ]]; then
  C_BLUE=$'\033[1;34m' C_YELLOW=$'\033[1;33m' C_RED=$'\033[1;31m' C_GREEN=$'\033[1;32m'
  C_MAGENTA=$'\033[1;35m' C_BOLD=$'\033[1m' C_OFF=$'\033[0m'
else
  C_BLUE="" C_YELLOW="" C_RED="" C_GREEN="" C_MAGENTA="" C_BOLD="" C_OFF=""
fi

log() { printf '%s==>%s %s\n' "$C_BLUE" "$C_OFF" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$C_RED" "$C_OFF" "$*" >&2
  exit 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# pyenv keeps every interpreter in $PYENV_ROOT/versions/X.Y.Z/bin; print the newest X.Y one.
pyenv_python() {
  local minor="$1" candidate best=""
  for candidate in "$PYENV_ROOT"/versions/"$minor".*/bin/python; do
    [[ -x "$candidate" ]] && best="$candidate"
  done
  [[ -n "$best" ]] && printf '%s\n' "$best"
}

# The interpreter for .venv: $PYTHON, else the newest supported Python (3.13 down to 3.10) from
# pyenv or PATH, else python3. The newest Python allows the newest Django (6.1 needs 3.12+).
find_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    printf '%s\n' "$PYTHON"
    return
  fi
  local found minor
  for minor in 3.13 3.12 3.11 3.10; do
    if found="$(pyenv_python "$minor")" && [[ -n "$found" ]]; then
      printf '%s\n' "$found"
      return
    elif command -v "python$minor" >/dev/null 2>&1 && "python$minor" -c '' 2>/dev/null; then
      command -v "python$minor"
      return
    fi
  done
  if command -v python3 >/dev/null 2>&1; then
    command -v python3
  else
    die "no Python found (set PYTHON=/path/to/python3.10+)"
  fi
}

# Put every pyenv interpreter (python3.10 ... python3.13) on PATH, for tox's discovery.
pyenv_path() {
  local dir extra=""
  for dir in "$PYENV_ROOT"/versions/3.*/bin; do
    [[ -d "$dir" ]] && extra="$dir:$extra"
  done
  printf '%s%s\n' "$extra" "$PATH"
}

# apt_ensure CMD_OR_PATH PACKAGE...: install PACKAGEs when CMD_OR_PATH is missing.
# A path (containing "/") is tested with -x, anything else with `command -v`.
_APT_UPDATED=0
apt_ensure() {
  local probe="$1"
  shift
  if [[ "$probe" == */* ]]; then
    [[ -x "$probe" ]] && return 0
  else
    command -v "$probe" >/dev/null 2>&1 && return 0
  fi
  [[ "${SKIP_APT:-0}" == 1 ]] && die "$probe is missing and SKIP_APT=1 (apt-get install $*)"
  command -v apt-get >/dev/null 2>&1 || die "$probe is missing and apt-get is not available (install: $*)"
  log "installing $* (apt-get; $probe not found)"
  if [[ $_APT_UPDATED == 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _APT_UPDATED=1
  fi
  # policy-rc.d exit 101 stops Debian's maintainer scripts from starting system services
  # (postgresql, redis-server): the scripts start their own throwaway instances.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    created_policy=1
  fi
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" || rc=$?
  [[ $created_policy == 1 ]] && as_root rm -f "$policy"
  [[ $rc == 0 ]] || die "apt-get install $* failed"
}

# pip in $VENV, its output in $VENV/pip.log (shown only when it fails: the machine's pip config
# can make pip print pages of harmless warnings).
_pip() {
  local rc=0
  "$VENV/bin/python" -m pip --disable-pip-version-check "$@" >"$VENV/pip.log" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    grep -v "is ignored: it is neither a file nor a directory" "$VENV/pip.log" | tail -n 60 >&2
    die "pip $* failed (full log: $VENV/pip.log)"
  fi
}

# ensure_venv EXTRA: create $VENV if needed and `pip install -e ".[EXTRA]"` into it.
# The install is skipped when pyproject.toml has not changed since the last successful one
# (stamp file in the venv), so re-runs are fast. FORCE_INSTALL=1 reinstalls anyway.
ensure_venv() {
  local extra="$1" python
  if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    warn "$VENV is broken (its interpreter does not run); recreating it"
    rm -rf "$VENV"
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    python="$(find_python)"
    log "creating $VENV with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
    "$python" -m venv "$VENV"
    _pip install --upgrade pip
  fi
  local stamp="$VENV/.installed-$extra" want
  want="$(sha256sum <"$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [[ "${FORCE_INSTALL:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "$VENV is up to date with pyproject.toml ([$extra] installed)"
  else
    log "pip install -e \".[$extra]\" into $VENV"
    (cd "$REPO_ROOT" && _pip install -e ".[$extra]")
    printf '%s\n' "$want" >"$stamp"
  fi
  export VIRTUAL_ENV="$VENV"
  export PATH="$VENV/bin:$PATH"
  hash -r
}

# A TCP port that is free on 127.0.0.1 right now.
free_port() {
  "${VENV}/bin/python" - <<'EOF' 2>/dev/null || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

# True when something listens on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Throwaway services for the tests. start_services creates one temp dir ($SERVICES_DIR) and
# installs an EXIT trap that stops everything started in it and deletes it.

SERVICES_DIR=""
PG_DATA=""
PG_BINDIR=""
REDIS_PID=""

# Run a command as the `postgres` user when we are root (initdb refuses to run as root).
_as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd "$SERVICES_DIR" && runuser -u postgres -- "$@")
  else
    (cd "$SERVICES_DIR" && "$@")
  fi
}

stop_services() {
  local rc=$?
  if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
    _as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  if [[ -n "$SERVICES_DIR" && -d "$SERVICES_DIR" && "${KEEP_SERVICES_DIR:-0}" != 1 ]]; then
    rm -rf "$SERVICES_DIR"
  fi
  return $rc
}

start_services_dir() {
  [[ -n "$SERVICES_DIR" ]] && return 0
  SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/support-chat-test.XXXXXX")"
  chmod 755 "$SERVICES_DIR"
  trap stop_services EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# start_postgres: a PostgreSQL cluster in $SERVICES_DIR/pg on a free port (trust auth).
# Sets PG_PORT and TEST_DATABASE_URL.
start_postgres() {
  start_services_dir
  PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
  if [[ ! -x "$PG_BINDIR/initdb" ]]; then
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    if [[ -n "$newest" && -x "$newest/initdb" ]]; then
      PG_BINDIR="$newest"
    else
      apt_ensure "$PG_BINDIR/initdb" postgresql-15
    fi
  fi
  local dir="$SERVICES_DIR/pg"
  mkdir -p "$dir"
  [[ $EUID -eq 0 ]] && chown postgres: "$dir"
  PG_DATA="$dir/data"
  PG_PORT="$(free_port)"
  log "starting PostgreSQL ($PG_BINDIR) on 127.0.0.1:$PG_PORT, data in $PG_DATA"
  _as_pg "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }
  _as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w -t 60 -o \
    "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    die "PostgreSQL did not start"
  }
  TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  export PG_PORT TEST_DATABASE_URL
}

# start_redis: a redis-server on a free port, no persistence, 200 databases.
# Sets REDIS_PORT, REDIS_URL_TEST (database 0) and REDIS_URL_TEST_BASE (no database part).
start_redis() {
  start_services_dir
  apt_ensure redis-server redis-server
  local dir="$SERVICES_DIR/redis"
  mkdir -p "$dir"
  REDIS_PORT="$(free_port)"
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no --maxclients 10000 --databases 200 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    if port_in_use "$REDIS_PORT"; then
      REDIS_URL_TEST_BASE="redis://127.0.0.1:$REDIS_PORT"
      REDIS_URL_TEST="$REDIS_URL_TEST_BASE/0"
      export REDIS_PORT REDIS_URL_TEST REDIS_URL_TEST_BASE
      return 0
    fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/redis.log" >&2 || true
  die "redis-server did not start"
}
