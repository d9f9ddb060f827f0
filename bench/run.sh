#!/usr/bin/env bash
# `make bench`: registry read latency and query counts, with MLflow's registry search as the anchor,
# and the prompt-folder import (first import and a no-change re-import). See bench/README.md.
# BENCH_ONLY=prompts runs only the prompt import (~2 min), BENCH_ONLY=registry only the registry part,
# BENCH_ONLY=monitoring only the drift report and event ingestion (~8 min; first run also installs bench/.venv-evidently). Everything runs on 127.0.0.1 in a throwaway folder under /tmp; every
# process started here is stopped by its PID (process group) on exit. Results: bench/results/.
# BENCH_ONLY=evaluation only the model evaluation against scikit-learn + fairlearn (~3 min).
# BENCH_ONLY=operations only the operations step: 10M events over 30 days, the roll-up task, the cost / operations / quality pages
# (11-14 min, needs ~2.2 GB under /tmp; BENCH_OPS_EVENTS scales it down).
# BENCH_ONLY=experiments only the A/B step: one experiment with 10M exposures and 1M outcomes analysed on SQLite and on a
# throwaway PostgreSQL (beside pandas + statsmodels), and assignment over HTTP (~15 min, ~4 GB under /tmp; BENCH_EXP_EXPOSURES scales it).
# BENCH_ONLY=rollouts only the canary step: the route endpoint beside /healthz under 50 clients, a tick with 100 rollouts, an
# error spike rolled back by the worker's beat (~3 min).
# BENCH_ONLY=numbers only the figures against their reference libraries: a month of roll-up percentiles against numpy's exact
# quantiles, ROUGE against rouge-score and edit distance against rapidfuzz on 10,000 rows (~1 min idle, ~4 min on a loaded machine).
# BENCH_ONLY=tracking only our MLflow API beside a local `mlflow server` through MlflowClient: log_batch of 1,000 metrics and the
# registry search (~6 min; the first run also installs bench/.venv-mlflow).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VENV_DIR=${VENV:-.venv}
PY="$ROOT/$VENV_DIR/bin/python"
GUNICORN="$ROOT/$VENV_DIR/bin/gunicorn"
BENCH="$ROOT/bench/registry_bench.py"
MODELS=${BENCH_MODELS:-200}
SMALL_MODELS=${BENCH_SMALL_MODELS:-20}
VERSIONS=${BENCH_VERSIONS:-10}
REQUESTS=${BENCH_REQUESTS:-200}
WARMUP=${BENCH_WARMUP:-20}
MLFLOW_WANTED=${BENCH_MLFLOW_SERIES:-3.17}          # the version the issue quotes
MLFLOW_VENV="$ROOT/bench/.venv-mlflow"
MLFLOW_RUNS=${BENCH_MLFLOW_RUNS:-0}                 # 1: also one run (params + metrics) per version; ~3x the seeding time
SKIP_MLFLOW=${BENCH_SKIP_MLFLOW:-0}
RESULTS="$ROOT/bench/results"
ONLY=${BENCH_ONLY:-all}                             # all | registry | prompts | monitoring | operations | evaluation | experiments | rollouts | numbers | tracking
case "$ONLY" in all|registry|prompts|monitoring|operations|evaluation|experiments|rollouts|numbers|tracking) ;; *) echo "bench: BENCH_ONLY must be all, registry, prompts, monitoring, operations, evaluation, experiments, rollouts, numbers or tracking (not '$ONLY')" >&2; exit 2 ;; esac

[ -x "$PY" ] || { echo "bench: $PY not found; run 'make install' first" >&2; exit 1; }
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/mlops-bench.XXXXXX)
pids=()

stop_pid() {  # stop one process we started, and its process group (start_bg made it the leader)
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
now() { date +%s.%N; }
declare -A T
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start_bg() {  # start_bg LOGFILE CMD...: in its own process group (job control on), so stop_pid also gets its children
    local logfile=$1; shift
    set -m
    "$@" >"$logfile" 2>&1 &
    BG_PID=$!
    set +m
    pids+=("$BG_PID")
}
forget_pid() { local keep=() p; for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }

bench_start=$(now)
[ "$ONLY" = prompts ] || [ "$ONLY" = monitoring ] || [ "$ONLY" = operations ] || [ "$ONLY" = evaluation ] || [ "$ONLY" = experiments ] || [ "$ONLY" = rollouts ] || [ "$ONLY" = numbers ] || [ "$ONLY" = tracking ] || log "work folder $WORK; $MODELS x $VERSIONS (and $SMALL_MODELS x $VERSIONS for the query-count check); $REQUESTS timed requests per row"

# Django settings for every step: throwaway SQLite databases, media and static folders, production mode.
unset DATABASE_URL
export DJANGO_SETTINGS_MODULE=mlops_site.settings DJANGO_DEBUG=0 MLOPS_MANIFEST_STATIC=1 LOG_LEVEL=WARNING
# Debug off needs a secret key of its own; the servers and clients here speak plain http on 127.0.0.1, so no
# https redirect or secure-only cookies (they would send every request to https:// or drop the session).
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}" MLOPS_INSECURE_HTTP=1
export MEDIA_ROOT="$WORK/media" STATIC_ROOT="$WORK/static"
export PYTHONWARNINGS="ignore:No directory at"
mkdir -p "$MEDIA_ROOT" "$STATIC_ROOT"
"$PY" "$BENCH" env --out "$WORK/env.json"
t=$(now)
"$PY" manage.py collectstatic --noinput -v0   # the manifest storage of `make serve` needs it before any page renders
T[collectstatic]=$(since "$t")

# MLflow in its own venv: the anchor of the registry reads and the other side of the tracking step.
skip() { log "MLflow anchor SKIPPED: $*"; echo "$*" >"$WORK/mlflow-skipped.txt"; }

ensure_mlflow() {  # bench/.venv-mlflow with mlflow; never touches the project's venv
    local stamp="$MLFLOW_VENV/.bench-installed" base spec versions
    if [ -x "$MLFLOW_VENV/bin/mlflow" ] && [ -f "$stamp" ]; then
        log "MLflow venv present: $(cat "$stamp")"
        return 0
    fi
    base=$("$PY" -c 'import sys; print(sys._base_executable)')
    t=$(now)
    log "MLflow: creating $MLFLOW_VENV with $base"
    "$base" -m venv "$MLFLOW_VENV" >>"$WORK/mlflow-install.log" 2>&1 || { skip "could not create a venv with $base"; return 1; }
    versions=$("$MLFLOW_VENV/bin/pip" index versions mlflow --disable-pip-version-check 2>>"$WORK/mlflow-install.log" \
        | sed -n 's/^Available versions: //p' | tr -d ' ' | tr ',' '\n') || true
    if [ -z "$versions" ]; then
        skip "PyPI did not answer 'pip index versions mlflow' (no network?): $(grep -v '^WARNING' "$WORK/mlflow-install.log" | tail -1)"
        return 1
    fi
    if printf '%s\n' "$versions" | grep -qx "${MLFLOW_WANTED//./\\.}\.[0-9]*"; then
        spec="mlflow==$MLFLOW_WANTED.*"
    elif printf '%s\n' "$versions" | grep -qE '^3\.[0-9]+\.[0-9]+$'; then
        spec="mlflow==$(printf '%s\n' "$versions" | grep -m1 -E '^3\.[0-9]+\.[0-9]+$')"
        log "MLflow $MLFLOW_WANTED is not on PyPI; using the newest 3.x: $spec"
    else
        skip "no MLflow $MLFLOW_WANTED nor any 3.x release on PyPI"
        return 1
    fi
    log "MLflow: pip install '$spec' into bench/.venv-mlflow (about 1.5 min and 850 MB on a fresh machine)"
    if ! "$MLFLOW_VENV/bin/pip" install --disable-pip-version-check -q "$spec" >>"$WORK/mlflow-install.log" 2>&1; then
        skip "pip install '$spec' failed: $(grep -v '^WARNING' "$WORK/mlflow-install.log" | tail -3 | tr '\n' ' ')"
        return 1
    fi
    echo "$spec -> mlflow $("$MLFLOW_VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)')" >"$stamp"
    T[mlflow_install]=$(since "$t")
    log "MLflow installed in ${T[mlflow_install]} s: $(cat "$stamp")"
}

# --- monitoring: drift report on 1,000,000 x 20 (scipy and Evidently beside it), event ingestion over HTTP -------
# One step, its own databases, server and Evidently process; writes bench/results/monitoring.json. Runs with
# BENCH_ONLY=all (first) and BENCH_ONLY=monitoring (then stops). See "Monitoring" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = monitoring ]; then
    MBENCH="$ROOT/bench/monitoring_bench.py"
    MWORK="$WORK/monitoring"
    EVIDENTLY_VENV="$ROOT/bench/.venv-evidently"
    EVIDENTLY_WANTED=${BENCH_EVIDENTLY_VERSION:-0.7.23}     # the version the issue quotes
    EVIDENTLY_TIMEOUT=${BENCH_EVIDENTLY_TIMEOUT:-900}       # the issue: about 243 s on this machine
    DRIFT_ROWS=${BENCH_DRIFT_ROWS:-1000000}
    INGEST_EVENTS=${BENCH_INGEST_EVENTS:-200000}            # per batch size
    INGEST_BATCHES=${BENCH_INGEST_BATCHES:-1000,10000}
    INGEST_THREADS=${BENCH_INGEST_THREADS:-2}
    MPROFILE=${BENCH_MONITORING_PROFILE:-auto}              # auto: only when a goal is missed | always | 0
    mkdir -p "$MWORK"
    cp "$WORK/env.json" "$MWORK/env.json"
    monitoring_start=$(now)
    declare -A MT
    mskip() { log "monitoring: Evidently anchor SKIPPED: $*"; echo "$*" >"$MWORK/evidently-skipped.txt"; }
    ensure_evidently() {  # bench/.venv-evidently with evidently + pandas<3; never touches the project's venv
        local stamp="$EVIDENTLY_VENV/.bench-installed" base versions spec
        if [ -x "$EVIDENTLY_VENV/bin/python" ] && [ -f "$stamp" ]; then
            log "monitoring: Evidently venv present: $(cat "$stamp")"
            return 0
        fi
        base=$("$PY" -c 'import sys; print(sys._base_executable)')
        t=$(now)
        if [ ! -x "$EVIDENTLY_VENV/bin/python" ]; then
            log "monitoring: creating $EVIDENTLY_VENV with $base"
            "$base" -m venv "$EVIDENTLY_VENV" >>"$MWORK/evidently-install.log" 2>&1 || { mskip "could not create a venv with $base"; return 1; }
        fi
        versions=$("$EVIDENTLY_VENV/bin/pip" index versions evidently --disable-pip-version-check 2>>"$MWORK/evidently-install.log" \
            | sed -n 's/^Available versions: //p' | tr -d ' ' | tr ',' '\n') || true
        if [ -z "$versions" ]; then
            mskip "PyPI did not answer 'pip index versions evidently' (no network?)"
            return 1
        fi
        if printf '%s\n' "$versions" | grep -qx "${EVIDENTLY_WANTED//./\\.}"; then
            spec="evidently==$EVIDENTLY_WANTED"
        elif printf '%s\n' "$versions" | grep -qE '^0\.7\.[0-9]+$'; then
            spec="evidently==$(printf '%s\n' "$versions" | grep -m1 -E '^0\.7\.[0-9]+$')"
            log "monitoring: Evidently $EVIDENTLY_WANTED is not on PyPI; using the newest 0.7.x: $spec"
        else
            mskip "no Evidently $EVIDENTLY_WANTED nor any 0.7.x release on PyPI"
            return 1
        fi
        log "monitoring: pip install '$spec' 'pandas<3' into bench/.venv-evidently (once; about 1 GB)"
        if ! "$EVIDENTLY_VENV/bin/pip" install --disable-pip-version-check -q "$spec" "pandas<3" >>"$MWORK/evidently-install.log" 2>&1; then
            mskip "pip install '$spec' failed: $(grep -v '^WARNING' "$MWORK/evidently-install.log" | tail -3 | tr '\n' ' ')"
            return 1
        fi
        echo "$spec -> $("$EVIDENTLY_VENV/bin/python" -c 'import evidently, pandas; print(f"evidently {evidently.__version__}, pandas {pandas.__version__}")')" >"$stamp"
        MT[evidently_install]=$(since "$t")
        log "monitoring: Evidently installed in ${MT[evidently_install]} s: $(cat "$stamp")"
    }

    # 1. The drift report. Data: seeded .npy files (columns x rows), read by every process below.
    t=$(now)
    "$PY" "$MBENCH" data --dir "$MWORK/data" --rows "$DRIFT_ROWS"
    MT[data]=$(since "$t")
    DRIFT_DB="$MWORK/drift.sqlite3"
    # drift_report_run ends with alerts_evaluate, which queues a notification task on commit: Celery gets an
    # in-memory broker here (no Redis needed; the message is queued in the process and nothing is sent).
    mdrift() { SQLITE_PATH="$DRIFT_DB" CELERY_BROKER_URL=memory:// CELERY_RESULT_BACKEND=cache+memory:// "$PY" "$@"; }
    mdrift manage.py migrate --noinput -v0
    log "monitoring: reference through reference_set_from_columns, current window as FeatureBatch rows"
    t=$(now)
    mdrift "$MBENCH" drift-setup --data "$MWORK/data" --out "$MWORK/drift-setup.json"
    MT[drift_setup]=$(since "$t")
    report_id=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["report_id"])' "$MWORK/drift-setup.json")
    log "monitoring: drift_report_run in a process of its own (its peak RSS is the report's plus Django's)"
    mdrift "$MBENCH" drift-run --report-id "$report_id" --out "$MWORK/drift-run.json"
    log "monitoring: drift.drift_report in memory and scipy's ks_2samp loop on the same arrays"
    "$PY" "$MBENCH" drift-inmem --data "$MWORK/data" --stored "$MWORK/drift-run.json" --out "$MWORK/drift-inmem.json"

    # The anchor: Evidently's DataDriftPreset in its own venv and process, stopped after EVIDENTLY_TIMEOUT seconds.
    if [ "${BENCH_SKIP_EVIDENTLY:-0}" = 1 ]; then
        mskip "BENCH_SKIP_EVIDENTLY=1"
    elif ensure_evidently; then
        log "monitoring: Evidently DataDriftPreset on the same arrays (timeout $EVIDENTLY_TIMEOUT s; the issue says about 243 s)"
        t=$(now)
        cd "$MWORK"  # whatever Evidently writes next to itself stays in the work folder
        start_bg "$MWORK/evidently.log" env DO_NOT_TRACK=1 EVIDENTLY_DISABLE_TELEMETRY=1 \
            "$EVIDENTLY_VENV/bin/python" "$MBENCH" evidently --data "$MWORK/data" --out "$MWORK/evidently.json"
        epid=$BG_PID
        cd "$ROOT"
        deadline=$(( $(date +%s) + EVIDENTLY_TIMEOUT ))
        while kill -0 "$epid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
        if kill -0 "$epid" 2>/dev/null; then
            stop_pid "$epid"
            mskip "Evidently did not finish within $EVIDENTLY_TIMEOUT s (stopped)"
        else
            rc=0; wait "$epid" || rc=$?
            if [ "$rc" = 0 ]; then grep '^  ' "$MWORK/evidently.log" || true; else tail -20 "$MWORK/evidently.log"; mskip "Evidently failed (exit $rc; log above)"; fi
        fi
        forget_pid "$epid"
        MT[evidently]=$(since "$t")
    fi

    # 2. Ingestion over HTTP: gunicorn -w 2 on a fresh database, batches of 1,000 and 10,000 events.
    INGEST_DB="$MWORK/ingest.sqlite3"
    SQLITE_PATH="$INGEST_DB" "$PY" manage.py migrate --noinput -v0
    SQLITE_PATH="$INGEST_DB" "$PY" "$MBENCH" ingest-setup --out "$MWORK/ingest-setup.json"
    port=$("$PY" "$BENCH" port)
    log "monitoring: gunicorn mlops_site.wsgi -w 2 on 127.0.0.1:$port (MLOPS_MAX_JSON_MB=64); $INGEST_EVENTS events per batch size ($INGEST_BATCHES), $INGEST_THREADS client threads"
    start_bg "$MWORK/gunicorn.log" env SQLITE_PATH="$INGEST_DB" MLOPS_MAX_JSON_MB=64 \
        "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w 2 --timeout 300
    gpid=$BG_PID
    "$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gpid" --timeout 60 || { tail -20 "$MWORK/gunicorn.log"; exit 1; }
    t=$(now)
    SQLITE_PATH="$INGEST_DB" "$PY" "$MBENCH" ingest-http --base-url "http://127.0.0.1:$port" --setup "$MWORK/ingest-setup.json" \
        --events "$INGEST_EVENTS" --batch-sizes "$INGEST_BATCHES" --threads "$INGEST_THREADS" --out "$MWORK/ingest.json" \
        || { tail -30 "$MWORK/gunicorn.log"; exit 1; }
    MT[ingest]=$(since "$t")
    stop_pid "$gpid"; forget_pid "$gpid"

    # 3. cProfile of the report run and of one 10,000-event request, when a goal was missed (or always).
    if [ "$MPROFILE" != 0 ]; then
        mode=$([ "$MPROFILE" = always ] && echo always || echo auto)
        mdrift "$MBENCH" profile --what drift --mode "$mode" --work "$MWORK" \
            --text "$MWORK/profile-drift.txt" --out "$MWORK/profile-drift.json"
        SQLITE_PATH="$INGEST_DB" "$PY" "$MBENCH" profile --what ingest --mode "$mode" --work "$MWORK" \
            --text "$MWORK/profile-ingest.txt" --out "$MWORK/profile-ingest.json"
    fi
    MT[monitoring]=$(since "$monitoring_start")
    {
        printf '{'
        sep=""
        for k in "${!MT[@]}"; do printf '%s"%s_s": %s' "$sep" "$k" "${MT[$k]}"; sep=", "; done
        printf '}\n'
    } >"$MWORK/timings.json"
    "$PY" "$MBENCH" report --work "$MWORK" --results "$RESULTS/monitoring.json"
    log "monitoring: done in ${MT[monitoring]} s"
    if [ "$ONLY" = monitoring ]; then
        exit 0
    fi
fi

# --- operations: 10,000,000 events over 30 days, the roll-up task, the cost / operations / quality pages ----------
# One step, its own database (~2.2 GB at 10M events); writes bench/results/operations.json. Runs with BENCH_ONLY=all
# and BENCH_ONLY=operations (then stops). See "Operations" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = operations ]; then
    OBENCH="$ROOT/bench/ops_bench.py"
    OWORK="$WORK/operations"
    OPS_EVENTS=${BENCH_OPS_EVENTS:-10000000}
    OPS_REQUESTS=${BENCH_OPS_REQUESTS:-50}                  # timed requests per page
    OPS_WARMUP=${BENCH_OPS_WARMUP:-5}
    OPS_PAGES_SECONDS=${BENCH_OPS_PAGES_SECONDS:-240}       # the timed rounds stop after this long (10 rounds at least)
    OPROFILE=${BENCH_OPS_PROFILE:-auto}                     # auto: cProfile of each 30-day page that misses 200 ms | always | 0
    mkdir -p "$OWORK"
    cp "$WORK/env.json" "$OWORK/env.json"
    operations_start=$(now)
    declare -A OT
    # Nothing here queues a Celery task; the in-memory broker makes sure none could wait on a missing Redis.
    ops() { SQLITE_PATH="$OWORK/ops.sqlite3" CELERY_BROKER_URL=memory:// CELERY_RESULT_BACKEND=cache+memory:// "$PY" "$@"; }
    ops manage.py migrate --noinput -v0
    log "operations: versions, prompts and budgets through the services, then $OPS_EVENTS events over 30 days with executemany"
    t=$(now)
    ops "$OBENCH" data --events "$OPS_EVENTS" --out "$OWORK/data.json"
    OT[data]=$(since "$t")
    log "operations: rollups_update from an empty cursor in a process of its own, then the checks against the raw events"
    t=$(now)
    ops "$OBENCH" rollup --data "$OWORK/data.json" --out "$OWORK/rollup.json"
    OT[rollup]=$(since "$t")
    if [ "${BENCH_OPS_SKIP_PAGES:-0}" = 1 ]; then
        log "operations: pages SKIPPED (BENCH_OPS_SKIP_PAGES=1)"
        echo '{"skipped": "BENCH_OPS_SKIP_PAGES=1"}' >"$OWORK/pages.json"
    else
        log "operations: the pages in-process as a viewer, $OPS_WARMUP warm-up + $OPS_REQUESTS timed requests each, interleaved"
        t=$(now)
        ops "$OBENCH" pages --data "$OWORK/data.json" --requests "$OPS_REQUESTS" --warmup "$OPS_WARMUP" --max-seconds "$OPS_PAGES_SECONDS" \
            --profile "$OPROFILE" \
            --profile-dir "$OWORK" --out "$OWORK/pages.json"
        OT[pages]=$(since "$t")
    fi
    OT[operations]=$(since "$operations_start")
    {
        printf '{'
        sep=""
        for k in "${!OT[@]}"; do printf '%s"%s_s": %s' "$sep" "$k" "${OT[$k]}"; sep=", "; done
        printf '}\n'
    } >"$OWORK/timings.json"
    "$PY" "$OBENCH" report --work "$OWORK" --results "$RESULTS/operations.json"
    log "operations: done in ${OT[operations]} s"
    if [ "$ONLY" = operations ]; then
        exit 0
    fi
fi

# --- experiments: one A/B experiment with 10,000,000 exposures and 1,000,000 outcomes; assignment over HTTP -----------------
# The analysis task on SQLite and on a throwaway PostgreSQL cluster, each beside pandas + statsmodels on the same raw rows;
# then assignment against gunicorn on the SQLite database. Writes bench/results/experiments.json. Runs with BENCH_ONLY=all
# and BENCH_ONLY=experiments (then stops). See "Experiments" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = experiments ]; then
    XBENCH="$ROOT/bench/experiments_bench.py"
    XWORK="$WORK/experiments"
    X_EXPOSURES=${BENCH_EXP_EXPOSURES:-10000000}
    X_OUTCOMES=${BENCH_EXP_OUTCOMES:-1000000}
    X_RUNS=${BENCH_EXP_RUNS:-3}                             # timed analyses per database
    X_WORKERS=${BENCH_EXP_WORKERS:-2}                       # gunicorn workers for assignment
    X_SKIP_PG=${BENCH_EXP_SKIP_PG:-0}
    mkdir -p "$XWORK"
    chmod 755 "$WORK" "$XWORK"                              # the PostgreSQL cluster below runs as user postgres
    cp "$WORK/env.json" "$XWORK/env.json"
    experiments_start=$(now)
    declare -A XT
    # Redis: the assignment plan's cache (CACHES), for gunicorn and for the services that forget a plan.
    rport=$("$PY" "$BENCH" port)
    start_bg "$XWORK/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$XWORK"
    redis_pid=$BG_PID
    xpy() { REDIS_URL="redis://127.0.0.1:$rport/0" CELERY_BROKER_URL=memory:// CELERY_RESULT_BACKEND=cache+memory:// "$PY" "$@"; }
    xsteps() {  # xsteps VENDOR: data, timed analyses, the pandas + statsmodels reference, on the database the environment names
        local vendor=$1 t
        xpy manage.py migrate --noinput -v0
        log "experiments ($vendor): $X_EXPOSURES exposures and $X_OUTCOMES outcomes in bulk (setup)"
        t=$(now); xpy "$XBENCH" data --exposures "$X_EXPOSURES" --outcomes "$X_OUTCOMES" --out "$XWORK/data-$vendor.json"; XT[data_$vendor]=$(since "$t")
        log "experiments ($vendor): analysis_compute x $X_RUNS"
        xpy "$XBENCH" analyze --runs "$X_RUNS" --out "$XWORK/analyze-$vendor.json"
        log "experiments ($vendor): pandas + statsmodels from the raw rows"
        t=$(now); xpy "$XBENCH" reference --analysis "$XWORK/analyze-$vendor.json" --out "$XWORK/reference-$vendor.json"; XT[reference_$vendor]=$(since "$t")
    }
    export SQLITE_PATH="$XWORK/exp.sqlite3"
    xsteps sqlite

    XPGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
    if [ "$X_SKIP_PG" = 1 ]; then
        echo '{"reason": "BENCH_EXP_SKIP_PG=1"}' >"$XWORK/skipped-postgresql.json"
    elif [ -z "$XPGBIN" ] || [ ! -x "$XPGBIN/initdb" ] || { [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; }; then
        echo '{"reason": "no PostgreSQL binaries (initdb) or no postgres user"}' >"$XWORK/skipped-postgresql.json"
    else
        as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
        mkdir -p "$XWORK/pg"
        [ "$(id -u)" = 0 ] && chown postgres "$XWORK/pg"
        pgport=$("$PY" "$BENCH" port)
        as_postgres "$XPGBIN/initdb -D $XWORK/pg/data -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8" >"$XWORK/initdb.log" 2>&1
        # In the foreground under start_bg, so it is stopped by its PID like everything else here. fsync off: a throwaway cluster.
        start_bg "$XWORK/postgres.log" su postgres -s /bin/sh -c "exec $XPGBIN/postgres -D $XWORK/pg/data -p $pgport -c listen_addresses=127.0.0.1 \
            -k $XWORK/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=1GB -c work_mem=64MB"
        pg_pid=$BG_PID
        for _ in $(seq 1 100); do "$XPGBIN/pg_isready" -h 127.0.0.1 -p "$pgport" -q && break; sleep 0.2; done
        as_postgres "$XPGBIN/createdb -h 127.0.0.1 -p $pgport -U postgres mlops"
        DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/mlops" xsteps postgresql
        stop_pid "$pg_pid"; forget_pid "$pg_pid"
    fi

    # Assignment over HTTP, on the SQLite database with its exposures.
    port=$("$PY" "$BENCH" port)
    log "experiments: gunicorn mlops_site.wsgi -w $X_WORKERS on 127.0.0.1:$port; batches of 10,000, then single units under 50 clients"
    start_bg "$XWORK/gunicorn.log" env REDIS_URL="redis://127.0.0.1:$rport/0" CELERY_BROKER_URL=memory:// \
        "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w "$X_WORKERS" --timeout 300
    gpid=$BG_PID
    "$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gpid" --timeout 60 || { tail -20 "$XWORK/gunicorn.log"; exit 1; }
    t=$(now)
    "$PY" "$XBENCH" http --base-url "http://127.0.0.1:$port" --data "$XWORK/data-sqlite.json" --workers "$X_WORKERS" --out "$XWORK/http.json" \
        || { tail -30 "$XWORK/gunicorn.log"; exit 1; }
    XT[http]=$(since "$t")
    stop_pid "$gpid"; forget_pid "$gpid"
    stop_pid "$redis_pid"; forget_pid "$redis_pid"
    unset SQLITE_PATH
    XT[experiments]=$(since "$experiments_start")
    {
        printf '{'
        sep=""
        for k in "${!XT[@]}"; do printf '%s"%s_s": %s' "$sep" "$k" "${XT[$k]}"; sep=", "; done
        printf '}\n'
    } >"$XWORK/timings.json"
    "$PY" "$XBENCH" report --work "$XWORK" --results "$RESULTS/experiments.json"
    log "experiments: done in ${XT[experiments]} s"
    if [ "$ONLY" = experiments ]; then
        exit 0
    fi
fi

# --- rollouts: the route endpoint under 50 clients beside /healthz, a tick with 100 rollouts, spike -> rollback ------------
# Its own database, Redis, gunicorn and a Celery worker with beat; writes bench/results/rollouts.json. Runs with
# BENCH_ONLY=all and BENCH_ONLY=rollouts (then stops; about 3 min). See "Rollouts" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = rollouts ]; then
    RBENCH="$ROOT/bench/rollouts_bench.py"
    RWORK="$WORK/rollouts"
    R_WORKERS=${BENCH_ROLLOUT_WORKERS:-2}                   # gunicorn workers for the route
    R_REQUESTS=${BENCH_ROLLOUT_REQUESTS:-3000}              # per target and round, over 50 clients
    mkdir -p "$RWORK"
    cp "$WORK/env.json" "$RWORK/env.json"
    rollouts_start=$(now)
    rport=$("$PY" "$BENCH" port)
    start_bg "$RWORK/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$RWORK"
    redis_pid=$BG_PID
    export SQLITE_PATH="$RWORK/rollouts.sqlite3" REDIS_URL="redis://127.0.0.1:$rport/0"
    "$PY" manage.py migrate --noinput -v0
    log "rollouts: 101 canaries through the services, 10 minutes of served events each (setup)"
    "$PY" "$RBENCH" data --out "$RWORK/data.json"
    log "rollouts: rollouts_tick with 100 active rollouts"
    "$PY" "$RBENCH" tick --out "$RWORK/tick.json"
    port=$("$PY" "$BENCH" port)
    log "rollouts: gunicorn mlops_site.wsgi -w $R_WORKERS on 127.0.0.1:$port; the route, /api/v1/me and /healthz under 50 clients"
    start_bg "$RWORK/gunicorn.log" "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w "$R_WORKERS" --timeout 300
    gpid=$BG_PID
    "$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gpid" --timeout 60 || { tail -20 "$RWORK/gunicorn.log"; exit 1; }
    "$PY" "$RBENCH" http --base-url "http://127.0.0.1:$port" --data "$RWORK/data.json" --requests "$R_REQUESTS" --workers "$R_WORKERS" \
        --out "$RWORK/http.json" || { tail -30 "$RWORK/gunicorn.log"; exit 1; }
    log "rollouts: an error spike posted, the worker's beat rolls the canary back (up to a minute)"
    "$PY" "$RBENCH" spike-setup --out "$RWORK/spike-setup.json"
    start_bg "$RWORK/worker.log" "$ROOT/$VENV_DIR/bin/celery" -A mlops_site worker -B --concurrency 1 -l info --without-mingle \
        --without-gossip
    wpid=$BG_PID
    "$PY" "$RBENCH" spike --base-url "http://127.0.0.1:$port" --data "$RWORK/data.json" --setup "$RWORK/spike-setup.json" \
        --out "$RWORK/spike.json" || { tail -30 "$RWORK/worker.log"; exit 1; }
    stop_pid "$wpid"; forget_pid "$wpid"
    stop_pid "$gpid"; forget_pid "$gpid"
    stop_pid "$redis_pid"; forget_pid "$redis_pid"
    unset SQLITE_PATH REDIS_URL
    "$PY" "$RBENCH" report --work "$RWORK" --results "$RESULTS/rollouts.json"
    log "rollouts: done in $(since "$rollouts_start") s"
    if [ "$ONLY" = rollouts ]; then
        exit 0
    fi
fi

# --- evaluation: 1,000,000 predictions with 5 groups, ours vs scikit-learn + fairlearn ---------------
# Its own processes and throwaway database; writes bench/results/evaluation.json. See "Evaluation" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = evaluation ]; then
    t=$(now)
    log "evaluation: registry.evaluation vs scikit-learn + fairlearn on 1,000,000 predictions, 5 groups (~3 min)"
    "$PY" "$ROOT/bench/evaluation_bench.py"
    log "evaluation: done in $(since "$t") s"
    if [ "$ONLY" = evaluation ]; then
        exit 0
    fi
fi

# --- numbers: roll-up percentiles vs numpy, ROUGE vs rouge-score, edit distance vs rapidfuzz ---------------
# One process, no database; writes bench/results/numbers.json and exits 1 when a figure misses its reference.
# BENCH_NUMBERS_VALUES (8,000,000) scales the month of raw values, BENCH_NUMBERS_ROWS (10,000) the text rows. See "Numbers" in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = numbers ]; then
    t=$(now)
    log "numbers: a month of roll-up percentiles vs numpy, ROUGE vs rouge-score, edit distance vs rapidfuzz (~1-4 min)"
    "$PY" "$ROOT/bench/numbers_bench.py"
    log "numbers: done in $(since "$t") s"
    if [ "$ONLY" = numbers ]; then
        exit 0
    fi
fi

# --- tracking: our MLflow API beside a local mlflow server, through MlflowClient: log_batch and the registry search ----------
# Its own database, Redis and gunicorn (production settings, -w 1 as the registry reads) and an mlflow server (SQLite, --workers 1);
# writes bench/results/mlflow_tracking.json. Runs with BENCH_ONLY=all and BENCH_ONLY=tracking (then stops; about 6 min). Skipped,
# with the reason in the table and the JSON, when MLflow cannot be installed or its server does not start. See "MLflow tracking"
# in bench/README.md.
if [ "$ONLY" = all ] || [ "$ONLY" = tracking ]; then
    TBENCH="$ROOT/bench/mlflow_tracking_bench.py"
    TWORK="$WORK/tracking"
    mkdir -p "$TWORK"
    cp "$WORK/env.json" "$TWORK/env.json"
    tracking_start=$(now)
    tskip() { log "tracking: SKIPPED: $*"; echo "$*" >"$TWORK/skipped.txt"; }
    if [ "$SKIP_MLFLOW" = 1 ]; then
        tskip "BENCH_SKIP_MLFLOW=1"
    elif ! ensure_mlflow; then
        tskip "$(cat "$WORK/mlflow-skipped.txt")"
        rm -f "$WORK/mlflow-skipped.txt"  # the registry part tries again and says so itself
    else
        # No telemetry to the outside, no job runner beside the server (as the registry part).
        mlenv=(env MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false)
        rport=$("$PY" "$BENCH" port)
        start_bg "$TWORK/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$TWORK"
        redis_pid=$BG_PID
        export SQLITE_PATH="$TWORK/ours.sqlite3" REDIS_URL="redis://127.0.0.1:$rport/0"
        "$PY" manage.py migrate --noinput -v0
        (umask 077 && "$PY" manage.py create_api_user bench-tracker --role editor | tail -1 >"$TWORK/token")
        port=$("$PY" "$BENCH" port)
        mport=$("$PY" "$BENCH" port)
        log "tracking: gunicorn mlops_site.wsgi -w 1 on 127.0.0.1:$port, mlflow server --workers 1 on 127.0.0.1:$mport (SQLite)"
        start_bg "$TWORK/gunicorn.log" "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w 1 --timeout 300
        gpid=$BG_PID
        cd "$TWORK"  # whatever the MLflow server and client write next to themselves stays in the work folder
        start_bg "$TWORK/mlflow-server.log" "${mlenv[@]}" "$MLFLOW_VENV/bin/mlflow" server \
            --backend-store-uri "sqlite:///$TWORK/mlflow.db" --artifacts-destination "$TWORK/mlartifacts" \
            --host 127.0.0.1 --port "$mport" --workers 1
        tmlflow_pid=$BG_PID
        cd "$ROOT"
        "$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gpid" --timeout 60 || { tail -20 "$TWORK/gunicorn.log"; exit 1; }
        if "$PY" "$BENCH" wait --url "http://127.0.0.1:$mport/health" --pid "$tmlflow_pid" --timeout 180; then
            log "tracking: log_batch ${BENCH_TRACKING_ROUNDS:-6} rounds x ${BENCH_TRACKING_CALLS:-50} calls per server; registry" \
                "${BENCH_TRACKING_MODELS:-200} models x ${BENCH_TRACKING_VERSIONS:-5} versions on both, ${BENCH_TRACKING_REQUESTS:-100} searches per target"
            (cd "$TWORK" && "${mlenv[@]}" "$MLFLOW_VENV/bin/python" "$TBENCH" run --ours-url "http://127.0.0.1:$port" \
                --ours-token-file "$TWORK/token" --mlflow-url "http://127.0.0.1:$mport" --rounds "${BENCH_TRACKING_ROUNDS:-6}" \
                --calls "${BENCH_TRACKING_CALLS:-50}" --models "${BENCH_TRACKING_MODELS:-200}" --versions "${BENCH_TRACKING_VERSIONS:-5}" \
                --requests "${BENCH_TRACKING_REQUESTS:-100}" --installed "$(cat "$MLFLOW_VENV/.bench-installed")" --out "$TWORK/tracking.json") \
                || { tail -30 "$TWORK/gunicorn.log"; tail -30 "$TWORK/mlflow-server.log"; exit 1; }
        else
            tail -20 "$TWORK/mlflow-server.log"
            tskip "mlflow server did not start (log above)"
        fi
        stop_pid "$tmlflow_pid"; forget_pid "$tmlflow_pid"
        stop_pid "$gpid"; forget_pid "$gpid"
        stop_pid "$redis_pid"; forget_pid "$redis_pid"
        unset SQLITE_PATH REDIS_URL
    fi
    echo "{\"tracking_s\": $(since "$tracking_start")}" >"$TWORK/timings.json"
    "$PY" "$TBENCH" report --work "$TWORK" --results "$RESULTS/mlflow_tracking.json"
    log "tracking: done in $(since "$tracking_start") s"
    if [ "$ONLY" = tracking ]; then
        exit 0
    fi
fi

# --- prompts: import a folder of 200 prompts x 10 versions, first and no-change re-import -----------
# One step, its own databases and servers; writes bench/results/prompts.json. Skipped with BENCH_ONLY=registry.
if [ "$ONLY" != registry ]; then
    PBENCH="$ROOT/bench/prompts_bench.py"
    PWORK="$WORK/prompts"
    mkdir -p "$PWORK"
    cp "$WORK/env.json" "$PWORK/env.json"
    prompts_start=$(now)
    log "prompts: writing the folder, ${BENCH_PROMPTS:-200} prompts x ${BENCH_PROMPT_VERSIONS:-10} versions, eval sets of ${BENCH_EVAL_ROWS:-1000} rows"
    "$PY" "$PBENCH" generate --dir "$PWORK/folder" --archive "$PWORK/prompts.tar.gz" --out "$PWORK/generate.json" \
        --prompts "${BENCH_PROMPTS:-200}" --versions "${BENCH_PROMPT_VERSIONS:-10}" --rows "${BENCH_EVAL_ROWS:-1000}"
    pdb() {  # pdb NAME: a fresh, migrated database with the editor user (and its token) for one way of importing
        SQLITE_PATH="$PWORK/$1.sqlite3" "$PY" manage.py migrate --noinput -v0
        SQLITE_PATH="$PWORK/$1.sqlite3" "$PY" "$PBENCH" setup --out "$PWORK/setup-$1.json"
    }
    pargs=(--dir "$PWORK/folder" --generated "$PWORK/generate.json")
    for way in command inproc; do
        pdb "$way"
        for kind in first reimport; do
            SQLITE_PATH="$PWORK/$way.sqlite3" "$PY" "$PBENCH" "$way" "${pargs[@]}" --kind "$kind" --out "$PWORK/$way-$kind.json"
        done
    done
    # Over HTTP: one gunicorn per body kind (JSON {files}, .tar.gz upload), each on its own fresh database.
    json_mb=$("$PY" "$PBENCH" json-limit --generated "$PWORK/generate.json")
    [ "$json_mb" = 32 ] || log "prompts: the JSON body is above the default 32 MB; the bench servers run with MLOPS_MAX_JSON_MB=$json_mb"
    for body in json archive; do
        pdb "http_$body"
        port=$("$PY" "$BENCH" port)
        start_bg "$PWORK/gunicorn-$body.log" env SQLITE_PATH="$PWORK/http_$body.sqlite3" MLOPS_MAX_JSON_MB="$json_mb" \
            "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w 1 --timeout 300
        gpid=$BG_PID
        "$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gpid" --timeout 60 || { tail -20 "$PWORK/gunicorn-$body.log"; exit 1; }
        for kind in first reimport; do
            SQLITE_PATH="$PWORK/http_$body.sqlite3" "$PY" "$PBENCH" http "${pargs[@]}" --kind "$kind" --body "$body" \
                --archive "$PWORK/prompts.tar.gz" --base-url "http://127.0.0.1:$port" --setup "$PWORK/setup-http_$body.json" \
                --out "$PWORK/http_$body-$kind.json" || { tail -20 "$PWORK/gunicorn-$body.log"; exit 1; }
            if grep -q '"skipped"' "$PWORK/http_$body-$kind.json"; then break; fi
        done
        stop_pid "$gpid"; forget_pid "$gpid"
    done
    if [ "${BENCH_PROMPTS_PROFILE:-1}" = 1 ]; then  # cProfile of one more in-process first import, on its own database
        pdb profile
        SQLITE_PATH="$PWORK/profile.sqlite3" "$PY" "$PBENCH" inproc "${pargs[@]}" --kind first --profile "$PWORK/profile.txt" \
            --out "$PWORK/profile-first.json"
    fi
    T[prompts]=$(since "$prompts_start")
    echo "{\"prompts_s\": ${T[prompts]}}" >"$PWORK/timings.json"
    "$PY" "$PBENCH" report --work "$PWORK" --json-limit-mb "$json_mb" --results "$RESULTS/prompts.json"
    log "prompts: done in ${T[prompts]} s"
    if [ "$ONLY" = prompts ]; then
        log "BENCH_ONLY=prompts: the registry part is skipped"
        exit 0
    fi
fi

# --- ours: seed two sizes through the real services, count queries in-process ---------------------
for size in small large; do
    n=$([ "$size" = small ] && echo "$SMALL_MODELS" || echo "$MODELS")
    export SQLITE_PATH="$WORK/ours-$size.sqlite3"
    t=$(now)
    "$PY" manage.py migrate --noinput -v0
    T[migrate_$size]=$(since "$t")
    log "ours: $n models x $VERSIONS versions (migrate ${T[migrate_$size]} s)"
    t=$(now)
    "$PY" "$BENCH" seed --models "$n" --versions "$VERSIONS" --out "$WORK/seed-$size.json"
    T[seed_$size]=$(since "$t")
    "$PY" "$BENCH" queries --seed "$WORK/seed-$size.json" --out "$WORK/queries-$size.json"
done
unset SQLITE_PATH

# --- the anchor: MLflow in its own venv, seeded the same way --------------------------------------
MEASURE_PY=$PY
mlflow_args=()
if [ "$SKIP_MLFLOW" = 1 ]; then
    skip "BENCH_SKIP_MLFLOW=1"
elif ensure_mlflow; then
    # No telemetry to the outside, and no background job runner (huey consumers) competing for the 2 cores.
    export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    mport=$("$PY" "$BENCH" port)
    log "MLflow: mlflow server --workers 1 on 127.0.0.1:$mport (SQLite; a fresh database migrates first)"
    t=$(now)
    cd "$WORK"  # whatever the server writes next to itself stays in the work folder
    start_bg "$WORK/mlflow-server.log" "$MLFLOW_VENV/bin/mlflow" server \
        --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/mlartifacts" \
        --host 127.0.0.1 --port "$mport" --workers 1
    mlflow_pid=$BG_PID
    cd "$ROOT"
    if "$PY" "$BENCH" wait --url "http://127.0.0.1:$mport/health" --pid "$mlflow_pid" --timeout 180; then
        T[mlflow_start]=$(since "$t")
        runs_flag=(); [ "$MLFLOW_RUNS" = 1 ] && runs_flag=(--runs)
        t=$(now)
        if (cd "$WORK" && "$MLFLOW_VENV/bin/python" "$ROOT/bench/mlflow_bench.py" --url "http://127.0.0.1:$mport" \
                --models "$MODELS" --versions "$VERSIONS" "${runs_flag[@]}" \
                --installed "$(cat "$MLFLOW_VENV/.bench-installed")" --out "$WORK/mlflow.json"); then
            T[mlflow_seed]=$(since "$t")
            MEASURE_PY="$MLFLOW_VENV/bin/python"
            mlflow_args=(--mlflow-url "http://127.0.0.1:$mport")
        else
            skip "seeding MLflow failed (see the output above)"
        fi
    else
        tail -20 "$WORK/mlflow-server.log"
        skip "mlflow server did not start (log above)"
    fi
    [ ${#mlflow_args[@]} -gt 0 ] || { stop_pid "$mlflow_pid"; forget_pid "$mlflow_pid"; }
fi

# --- over HTTP: gunicorn, one worker, production settings; MLflow's search interleaved ------------
# A second gunicorn serves the small database, so the same reads at the small size are timed in the same loop.
port=$("$PY" "$BENCH" port)
small_port=$("$PY" "$BENCH" port)
log "ours: gunicorn mlops_site.wsgi -w 1 on 127.0.0.1:$port ($MODELS x $VERSIONS) and :$small_port ($SMALL_MODELS x $VERSIONS)"
start_bg "$WORK/gunicorn.log" env SQLITE_PATH="$WORK/ours-large.sqlite3" "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$port" -w 1
gunicorn_pid=$BG_PID
start_bg "$WORK/gunicorn-small.log" env SQLITE_PATH="$WORK/ours-small.sqlite3" "$GUNICORN" mlops_site.wsgi -b "127.0.0.1:$small_port" -w 1
small_pid=$BG_PID
"$PY" "$BENCH" wait --url "http://127.0.0.1:$port/healthz" --pid "$gunicorn_pid" --timeout 60 || { tail -20 "$WORK/gunicorn.log"; exit 1; }
"$PY" "$BENCH" wait --url "http://127.0.0.1:$small_port/healthz" --pid "$small_pid" --timeout 60 || { tail -20 "$WORK/gunicorn-small.log"; exit 1; }
log "timing: $REQUESTS requests per row after $WARMUP warm-up requests each, all rows interleaved"
t=$(now)
"$MEASURE_PY" "$BENCH" http --base-url "http://127.0.0.1:$port" --seed "$WORK/seed-large.json" \
    --small-base-url "http://127.0.0.1:$small_port" --small-seed "$WORK/seed-small.json" \
    --requests "$REQUESTS" --warmup "$WARMUP" "${mlflow_args[@]}" --out "$WORK/http.json"
T[http]=$(since "$t")
for pid in "${pids[@]}"; do stop_pid "$pid"; done
pids=()

# --- report -------------------------------------------------------------------------------------
T[total]=$(since "$bench_start")
{
    printf '{'
    sep=""
    for k in "${!T[@]}"; do printf '%s"%s_s": %s' "$sep" "$k" "${T[$k]}"; sep=", "; done
    printf '}\n'
} >"$WORK/timings.json"
"$PY" "$BENCH" report --work "$WORK" --results "$RESULTS/registry.json"
log "total bench wall time ${T[total]} s (phases: $(tr -d '{}"' <"$WORK/timings.json"))"
