#!/usr/bin/env bash
# The tox matrix on this machine: `bash scripts/tox.sh [tox args] [-- pytest args]`.
#
# Installs tox into .venv (the `dev` extra), puts every pyenv interpreter (3.10 ... 3.13) on PATH
# so tox finds py310 ... py313, installs redis-server if missing (each tox env starts its own)
# and, when an argument mentions `postgres` (`-m postgres`, `-e py312-django52-postgres`),
# starts a throwaway PostgreSQL (DATABASE_URL), stopped on exit. See tox.ini for the envs.
#
#   bash scripts/tox.sh                         lint, the matrix, packaging
#   bash scripts/tox.sh -e py313-django61,py310-django52
#   bash scripts/tox.sh -p auto -m matrix       the matrix in parallel
#   bash scripts/tox.sh -m postgres             the postgres label, on PostgreSQL
set -euo pipefail

# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
cd "$REPO_ROOT"

apt_ensure redis-server redis-server # each tox env starts its own (see tox.ini)
ensure_venv dev
PATH="$(pyenv_path)"
export PATH
if [[ " $* " == *postgres* ]]; then
  start_postgres
  export DATABASE_URL="$TEST_DATABASE_URL"
else
  unset DATABASE_URL
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}"
rc=0
"$VENV/bin/tox" "$@" || rc=$?
exit $rc
