#!/usr/bin/env bash
# The demo: `bash scripts/demo.sh`, then open http://127.0.0.1:8000/ (PORT=8001 to change).
#
# Creates .venv (the newest Python 3.10-3.13 on the machine) if needed, installs `-e ".[example]"`, migrates the example
# project's SQLite database, seeds the demo accounts and conversations (idempotent), and serves
# HTTP + WebSockets with `manage.py runserver` (daphne's, ASGI) on 0.0.0.0:$PORT, and the
# tasks worker that sends the notification emails (`manage.py db_worker`, django-tasks-db;
# the emails are printed to the console). Ctrl-C stops both.
# Safe to re-run: existing data is kept and nothing is duplicated.
#
# The demo always uses its embedded defaults (SQLite file example_project/db.sqlite3, in-memory
# channel layer), whatever DATABASE_URL / REDIS_URL the shell has; to try real services, set
# DEMO_DATABASE_URL / DEMO_REDIS_URL. Other knobs: HOST (default 0.0.0.0), and those of
# scripts/_lib.sh (PYTHON, VENV).
set -euo pipefail

# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

PORT="${PORT:-8000}"
HOST="${HOST:-0.0.0.0}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"

ensure_venv example

unset DATABASE_URL REDIS_URL
[[ -n "${DEMO_DATABASE_URL:-}" ]] && export DATABASE_URL="$DEMO_DATABASE_URL"
[[ -n "${DEMO_REDIS_URL:-}" ]] && export REDIS_URL="$DEMO_REDIS_URL"
export DJANGO_SETTINGS_MODULE=example.settings
# Links in the emails point at this server; unread replies are emailed after 30 s, not 120.
export SITE_URL="${SITE_URL:-http://127.0.0.1:$PORT}"
export SUPPORT_CHAT_EMAIL_DELAY="${SUPPORT_CHAT_EMAIL_DELAY:-30}"

cd "$REPO_ROOT/example_project"

if port_in_use "$PORT"; then
  die "port $PORT is already in use (another demo still running?); try PORT=$((PORT + 1)) bash scripts/demo.sh"
fi

log "migrating the example project's database"
python manage.py migrate --noinput
log "seeding demo data"
python manage.py seed_demo

cat <<EOF

  django-support-chat demo
  ------------------------
  Site:           http://127.0.0.1:$PORT/
  Staff inbox:    http://127.0.0.1:$PORT/admin/chat/
  Django admin:   http://127.0.0.1:$PORT/admin/
  REST API:       http://127.0.0.1:$PORT/api/chat/   (schema: /api/chat/schema/)

  Accounts (password for all: demo)
    customer, customer2   site users with the chat widget
    staff                 support staff (works the inbox)
    admin                 superuser

  Tip: log in as 'customer' in one browser and as 'staff' in a private window to chat live.
  Email: a message its recipient has not read within ${SUPPORT_CHAT_EMAIL_DELAY} s, while they are
  away, is emailed to them; the worker prints the email here (console email backend).
  Stop with Ctrl-C. Database: example_project/db.sqlite3 (delete it to start over).

EOF

# The worker for delayed jobs (notification emails): stopped with the server.
python manage.py db_worker --interval 1 &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT
python manage.py runserver "$HOST:$PORT"
