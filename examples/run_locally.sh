#!/usr/bin/env bash
# The client commands of examples/github-actions/release.yml, in the same order, against a local
# control plane (`make run` in another terminal), with sample files generated here:
#
#   bash examples/run_locally.sh
#
# First a candidate whose bias check fails: its gate exits 6 and the server refuses to promote it.
# Then a retrained candidate that passes: its promotion to production waits for an approver on
# the Promotions page (log in as bob / bob).
#
# Environment: MLOPS_URL (default http://127.0.0.1:8000); MLOPS_TOKEN, an editor's token, and
# MLOPS_APPROVER_TOKEN, an approver's (both created with manage.py when not set, which needs the
# server's database); MODEL and PROMPT (default ci-example-fraud, ci-example-summarize);
# MAX_WAIT, seconds to wait for an evaluation (default 600); PY, the Python to run the client with.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export MLOPS_URL=${MLOPS_URL:-http://127.0.0.1:8000}
MODEL=${MODEL:-ci-example-fraud}
PROMPT=${PROMPT:-ci-example-summarize}
MAX_WAIT=${MAX_WAIT:-600}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlops-example.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n=== %s\n' "$*"; }
mlops() { printf '$ mlops_client %s\n' "$*" >&2; "$PY" -m mlops_client "$@"; }
as_approver() { MLOPS_TOKEN=$MLOPS_APPROVER_TOKEN mlops "$@"; }
# `expect CODE command...`: the command must exit with CODE (a gate that has to fail, a refused promotion).
expect() {
  local want=$1 code=0
  shift
  "$@" || code=$?
  if [ "$code" != "$want" ]; then echo "expected exit $want, got $code" >&2; exit 1; fi
  echo "(exit $code, as expected)"
}

if [ -z "${MLOPS_TOKEN:-}" ]; then
  MLOPS_TOKEN=$("$PY" manage.py create_api_user ci-example --role editor | tail -n 1)
fi
if [ -z "${MLOPS_APPROVER_TOKEN:-}" ]; then
  MLOPS_APPROVER_TOKEN=$("$PY" manage.py create_api_user ci-example-approver --role approver | tail -n 1)
fi
export MLOPS_TOKEN

step "Sample files in $WORK"
# Reference and new data: amount 1..500, country DE/FR/ES, age 18..90 (the new rows stay inside those ranges).
"$PY" -c 'c = ["DE", "FR", "ES"]; print("amount,country,age"); [print(f"{i * 37 % 500 + 1},{c[i % 3]},{18 + i * 7 % 73}") for i in range(1000)]' > "$WORK/reference.csv"
"$PY" -c 'c = ["DE", "FR", "ES"]; print("amount,country,age"); [print(f"{i * 53 % 500 + 1},{c[i % 5 % 3]},{18 + i * 11 % 73}") for i in range(400)]' > "$WORK/data.csv"
# Holdout predictions, 97 % right. Biased: 70 % of group f are positives against 45 % of group m, so the
# model selects f far more often (demographic parity difference about 0.25). Fair: 50 % in both groups.
predictions() {
  "$PY" -c 'import random, sys; r = random.Random(int(sys.argv[3])); rates = {"f": float(sys.argv[1]), "m": float(sys.argv[2])}; print("label,prediction,score,gender")
for g in ["f", "m"] * 1000: y = int(r.random() < rates[g]); p = y if r.random() < 0.97 else 1 - y; print(f"{y},{p},{min(1, max(0, 0.1 + 0.8 * p + r.gauss(0, 0.05))):.4f},{g}")' "$@"
}
predictions 0.70 0.45 1 > "$WORK/preds_biased.csv"
predictions 0.50 0.50 2 > "$WORK/preds_fair.csv"
# A prompt with recorded outputs in its eval set, so that `--provider replay` evaluates it offline.
mkdir -p "$WORK/prompts/$PROMPT"
cat > "$WORK/prompts/$PROMPT/v1.yaml" <<YAML
name: $PROMPT
version: 1
model: claude-sonnet-4-5
temperature: 0.3
max_tokens: 500
system: |
  You are a concise summarizer. Return exactly 3 bullet points, each under 20 words.
template: |
  Summarize the following text:

  {text}
eval_criteria:
- name: bullet_count
  type: format_check
  expected: 3
- name: relevance
  type: similarity
  threshold: 0.8
YAML
"$PY" -c 'import json
rows = [("The meeting moved to Tuesday at 10. Bring the Q3 numbers. Lunch is provided.", "- Meeting moved to Tuesday at 10\n- Bring the Q3 numbers\n- Lunch is provided"),
        ("Sales grew 4% in Q3. Costs fell. The board approved the budget.", "- Sales grew 4% in Q3\n- Costs fell\n- Board approved the budget")]
for text, summary in rows: print(json.dumps({"input": {"text": text}, "expected": summary, "response": summary}))' > "$WORK/prompts/$PROMPT/eval_set.jsonl"
wc -l "$WORK"/*.csv "$WORK/prompts/$PROMPT/eval_set.jsonl"

step "job test: check the server and the token"
mlops whoami

step "job test: unit tests"
echo "(your pytest tests/ -v runs here)"

step "job test: import prompts, evaluate them, prompt gate"
mlops prompts import "$WORK/prompts"
as_approver policy --prompt "$PROMPT" --default  # once per prompt, by an approver
mlops evaluate-prompt --prompt "$PROMPT" --version latest --provider replay --wait --max-wait "$MAX_WAIT"
mlops gate --prompt "$PROMPT" --version latest --max-wait "$MAX_WAIT"

step "job train: train (your script), register as candidate"
echo "(python scripts/train.py runs here; its holdout predictions are $WORK/preds_biased.csv)"
V=$(mlops register --model "$MODEL" --metrics '{"accuracy": 0.97}' --data-version sample-1 --tags '{"pipeline": "run_locally"}')
echo "registered $MODEL v$V"
mlops schema --model "$MODEL" --infer "$WORK/reference.csv"  # once per model
as_approver policy --model "$MODEL" --default                # once per model, by an approver

step "job train: validate data, evaluate model, quality gate (the bias check fails)"
mlops evaluate --model "$MODEL" --version "$V" --kind data --file "$WORK/data.csv" --data-version sample-1 --wait --max-wait "$MAX_WAIT"
mlops evaluate --model "$MODEL" --version "$V" --kind model --file "$WORK/preds_biased.csv" --group-column gender \
    --data-version sample-1 --wait --max-wait "$MAX_WAIT"
expect 6 mlops gate --model "$MODEL" --version "$V" --max-wait "$MAX_WAIT"
expect 4 mlops promote --model "$MODEL" --version "$V" --to production --reason "try it anyway"

step "job train again, after a fix: register, validate data, evaluate, gate (passes)"
V=$(mlops register --model "$MODEL" --metrics '{"accuracy": 0.97}' --data-version sample-2 --tags '{"pipeline": "run_locally"}')
echo "registered $MODEL v$V"
mlops evaluate --model "$MODEL" --version "$V" --kind data --file "$WORK/data.csv" --data-version sample-2 --wait --max-wait "$MAX_WAIT"
mlops evaluate --model "$MODEL" --version "$V" --kind model --file "$WORK/preds_fair.csv" --group-column gender \
    --data-version sample-2 --wait --max-wait "$MAX_WAIT"
mlops gate --model "$MODEL" --version "$V" --max-wait "$MAX_WAIT"

step "job deploy: canary, smoke tests, promotion request"
echo "(python scripts/deploy.py --traffic 10 --model $MODEL --version $V runs here)"
echo "(python scripts/smoke_test.py runs here)"
mlops promote --model "$MODEL" --version "$V" --to production --reason "run_locally.sh: gate passed"
echo
echo "Approve it as another user (bob / bob) on $MLOPS_URL/promotions/ ; then"
echo "  $PY -m mlops_client stage --model $MODEL --stage production   prints $V."
