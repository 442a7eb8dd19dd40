#!/usr/bin/env bash
# The test command: `bash scripts/test.sh`.
#
# On a fresh clone it installs what is missing (redis-server, chromium, nginx via apt; .venv with
# the newest Python 3.10-3.13 on the machine and `pip install -e ".[test]"`), starts a throwaway PostgreSQL 15 cluster and a
# throwaway redis-server on free ports (stopped on exit), then runs:
#
#   1. lint        ruff check . && ruff format --check . (Python files, not *.md), lint-imports
#      js          node --test tests/js/ (the shared WebSocket client, realtime.js; Node >= 20)
#   2. sqlite      pytest -m "not postgres and not packaging"      (SQLite, in-memory layer)
#   3. postgres    pytest -m "not packaging" with DATABASE_URL     (the whole suite on PostgreSQL)
#                  (each of 2 and 3 in two pytest processes: browser tests apart from the rest)
#   4. packaging   python -m build, twine check --strict, tests/test_packaging.py against the wheel
#   5. foreign     tests/foreign_host, a second host project with its own AUTH_USER_MODEL, in
#                  pytest processes of their own (DJANGO_SETTINGS_MODULE=tests.foreign_host.settings):
#                  SQLite and PostgreSQL, browser tests apart from the rest
#
# and prints a summary; exits non-zero if any step failed. Every step runs even if an earlier
# one failed, so one run shows everything. (Run by CI through .ci/run.)
#
# Tests that need the services read REDIS_URL_TEST (redis://127.0.0.1:<port>/0),
# CHROMIUM (/usr/bin/chromium) and NGINX (/usr/sbin/nginx; the nginx topology test starts its
# own nginx process); DATABASE_URL is set only for the postgres step.
#
# Passthrough: with arguments, only pytest runs, on SQLite, with those arguments:
#   bash scripts/test.sh -k widget -x
#   bash scripts/test.sh --postgres tests/test_api.py     (same, on the throwaway PostgreSQL)
#   DJANGO_SETTINGS_MODULE=tests.foreign_host.settings bash scripts/test.sh tests/foreign_host -m "not browser"
#
# Knobs: STEPS="lint sqlite" (run only these steps), PYTEST_TIMEOUT (seconds per test, 300),
# STEP_TIMEOUT (seconds per step, 1800), plus those of scripts/_lib.sh (PYTHON, VENV, SKIP_APT).
# The full tox matrix is separate: `bash scripts/tox.sh` (see tox.ini).
set -euo pipefail

# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
cd "$REPO_ROOT"

START_ALL=$SECONDS
PYTEST_TIMEOUT="${PYTEST_TIMEOUT:-300}"
STEP_TIMEOUT="${STEP_TIMEOUT:-1800}"

passthrough=0
use_pg=0
if [[ $# -gt 0 ]]; then
  passthrough=1
  if [[ "$1" == "--postgres" || "$1" == "--pg" ]]; then
    use_pg=1
    shift
  fi
fi

# --- system packages, venv, services ----------------------------------------------------------
setup_start=$SECONDS
apt_ensure redis-server redis-server
apt_ensure chromium chromium
# Never started as a service: tests/e2e/test_nginx_topology.py runs its own nginx process.
# (A path: /usr/sbin is not on every user's PATH.)
apt_ensure /usr/sbin/nginx nginx
ensure_venv test
start_redis
if [[ $passthrough == 0 || $use_pg == 1 ]]; then
  start_postgres
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
export NGINX="${NGINX:-/usr/sbin/nginx}"
# Tests decide on services from these variables only; ignore whatever the caller's shell has.
unset DATABASE_URL REDIS_URL
export PYTHONDONTWRITEBYTECODE=1
log "setup done in $((SECONDS - setup_start))s (REDIS_URL_TEST=$REDIS_URL_TEST${TEST_DATABASE_URL:+, PostgreSQL on port $PG_PORT})"

PYTEST=(python -m pytest --timeout "$PYTEST_TIMEOUT" --durations=10)

if [[ $passthrough == 1 ]]; then
  if [[ $use_pg == 1 ]]; then
    DATABASE_URL="$TEST_DATABASE_URL" "${PYTEST[@]}" "$@"
  else
    "${PYTEST[@]}" "$@"
  fi
  exit $?
fi

# --- steps -----------------------------------------------------------------------------------
STEP_NAMES=()
STEP_RESULTS=()
STEP_TIMES=()
JUNIT_DIR="$SERVICES_DIR/junit"
mkdir -p "$JUNIT_DIR"
WANT_STEPS="${STEPS:-lint js sqlite postgres packaging foreign}"

# Interactive runs keep Ctrl-C working (timeout otherwise moves pytest out of the terminal's
# foreground process group).
TIMEOUT_OPTS=()
[[ -t 0 ]] && TIMEOUT_OPTS=(--foreground)

wanted() { [[ " $WANT_STEPS " == *" $1 "* ]]; }

# step NAME CMD...: run CMD, record pass/fail and duration. pytest's exit 5 (nothing collected)
# counts as "empty", which passes.
step() {
  local name="$1" start=$SECONDS rc=0 result
  shift
  printf '\n%s==== %s ====%s %s\n' "$C_MAGENTA" "$name" "$C_OFF" "$*" >&2
  if declare -F "$1" >/dev/null; then
    "$@" || rc=$?
  else
    timeout "${TIMEOUT_OPTS[@]}" --signal=INT --kill-after=60 "$STEP_TIMEOUT" "$@" || rc=$?
  fi
  case $rc in
    0) result=pass ;;
    5) result="pass (no tests collected)" ;;
    124) result="FAIL (timed out after ${STEP_TIMEOUT}s)" ;;
    *) result="FAIL (exit $rc)" ;;
  esac
  STEP_NAMES+=("$name")
  STEP_RESULTS+=("$result")
  STEP_TIMES+=("$((SECONDS - start))")
}

if wanted lint; then
  step "ruff check" ruff check .
  # ruff >= 0.16 also formats ```python blocks in Markdown, which mangles doc fragments such
  # as a lone `path(...),` line: the docs are not checked.
  step "ruff format --check" ruff format --check --extend-exclude "*.md" .
  # The layer contracts in pyproject.toml ([tool.importlinter]).
  step "import contracts" lint-imports
fi

# The JavaScript unit tests: the shared WebSocket client (static/support_chat/realtime.js)
# against fake sockets and a fake clock. Node's own runner; nothing is installed from npm.
# shellcheck disable=SC2317  # called through step
js_unit() {
  if ! command -v node >/dev/null 2>&1; then
    log "node not found: installing Debian's nodejs for the JavaScript unit tests"
    (apt_ensure node nodejs) || {
      printf '%sNode.js is missing%s: the JavaScript unit tests (tests/js/) need node >= 20 (apt-get install nodejs)\n' "$C_RED" "$C_OFF" >&2
      return 1
    }
  fi
  node --test tests/js/
}
if wanted js; then
  step "node --test tests/js/" js_unit
fi

# Browser tests run in a pytest process of their own: Playwright's sync API keeps an event loop
# running in the main thread for as long as its browser lives, which breaks every asyncio test
# that runs after it in the same process.
if wanted sqlite; then
  step "pytest (SQLite)" "${PYTEST[@]}" -m "not postgres and not packaging and not browser" \
    --junitxml "$JUNIT_DIR/sqlite.xml"
  step "pytest browser (SQLite)" "${PYTEST[@]}" -m "browser and not postgres and not packaging" \
    --junitxml "$JUNIT_DIR/sqlite-browser.xml"
fi

if wanted postgres; then
  step "pytest (PostgreSQL)" env DATABASE_URL="$TEST_DATABASE_URL" "${PYTEST[@]}" \
    -m "not packaging and not browser" --junitxml "$JUNIT_DIR/postgres.xml"
  step "pytest browser (PostgreSQL)" env DATABASE_URL="$TEST_DATABASE_URL" "${PYTEST[@]}" \
    -m "browser and not packaging" --junitxml "$JUNIT_DIR/postgres-browser.xml"
fi

# shellcheck disable=SC2317  # called through step
packaging() {
  local dist="$SERVICES_DIR/dist"
  rm -rf "$dist"
  python -m build --outdir "$dist" . >"$SERVICES_DIR/build.log" 2>&1 || {
    cat "$SERVICES_DIR/build.log" >&2
    return 1
  }
  ls -l "$dist" >&2
  local rc=0
  twine check --strict "$dist"/* || rc=1
  # The wheel test runs even when twine complains, so one run reports both.
  SUPPORT_CHAT_WHEEL="$dist" timeout "${TIMEOUT_OPTS[@]}" --signal=INT --kill-after=60 \
    "$STEP_TIMEOUT" "${PYTEST[@]}" tests/test_packaging.py -m "packaging" \
    --junitxml "$JUNIT_DIR/packaging.xml" || rc=1
  return $rc
}
if wanted packaging; then
  step "packaging (build, twine, wheel test)" packaging
fi

# The foreign host (tests/foreign_host): a site with an email-login user model, its own API,
# WebSocket endpoint and admin URL, that installs the chat by the README's steps. Another
# AUTH_USER_MODEL cannot share a process with the example project's tests (which do not
# collect this directory), and its browser tests need a process of their own too.
FOREIGN=(env DJANGO_SETTINGS_MODULE=tests.foreign_host.settings)
if wanted foreign; then
  step "pytest foreign host (SQLite)" "${FOREIGN[@]}" "${PYTEST[@]}" tests/foreign_host \
    -m "not browser" --junitxml "$JUNIT_DIR/foreign-sqlite.xml"
  step "pytest foreign host browser (SQLite)" "${FOREIGN[@]}" "${PYTEST[@]}" tests/foreign_host \
    -m "browser" --junitxml "$JUNIT_DIR/foreign-sqlite-browser.xml"
  step "pytest foreign host (PostgreSQL)" "${FOREIGN[@]}" DATABASE_URL="$TEST_DATABASE_URL" \
    "${PYTEST[@]}" tests/foreign_host -m "not browser" --junitxml "$JUNIT_DIR/foreign-postgres.xml"
  step "pytest foreign host browser (PostgreSQL)" "${FOREIGN[@]}" \
    DATABASE_URL="$TEST_DATABASE_URL" "${PYTEST[@]}" tests/foreign_host -m "browser" \
    --junitxml "$JUNIT_DIR/foreign-postgres-browser.xml"
fi

# --- summary ---------------------------------------------------------------------------------
failed=0
printf '\n%s==== summary ====%s\n' "$C_BOLD" "$C_OFF"
for i in "${!STEP_NAMES[@]}"; do
  r="${STEP_RESULTS[$i]}"
  [[ $r == FAIL* ]] && failed=1
  printf '  %-40s %-32s %5ss\n' "${STEP_NAMES[$i]}" "$r" "${STEP_TIMES[$i]}"
done
printf '  %-40s %-32s %5ss\n' "total (with setup)" "" "$((SECONDS - START_ALL))"
if [[ $failed == 1 ]]; then
  printf '%sFAILED%s: see the steps marked FAIL above\n' "$C_RED" "$C_OFF"
else
  printf '%sOK%s\n' "$C_GREEN" "$C_OFF"
fi
# Last line: the counts of all pytest runs together, from their JUnit XML reports.
python - "$JUNIT_DIR" <<'EOF' || true
import pathlib, sys, xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        tests, fail = int(suite.get("tests", 0)), int(suite.get("failures", 0))
        err, skip = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
        passed += tests - fail - err - skip
        failed += fail + err
        skipped += skip
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
EOF
exit $failed
