"""`evaluate`, `evaluate-prompt`, `gate`, `schema` and `policy` run as real subprocesses against a live server.

Celery runs eagerly in tests: an evaluation requested through the live server is computed
when its request commits, so `--wait` and `gate` see it finished.
"""

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_site.roles import user_token_refresh
from registry.models import Evaluation, ModelVersion
from registry.services import evaluations
from tests.client.test_cli import ROOT, assert_fails, cli, token_for
from tests.conftest import make_user
from tests.factories import register
from tests.prompts.conftest import brief_folder, write_folder

BIAS_POLICY = {"checks": [{"check": "accuracy", "op": ">=", "threshold": 0.85}, {"check": "demographic_parity_difference", "op": "<=", "threshold": 0.1}]}


def predictions_csv(path, *, biased: bool, n: int = 3000, seed: int = 0):
    """Labels, predictions (about 96 % right), scores and a gender column; `biased` selects half of group f's negatives too."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    gender = rng.choice(["f", "m", "x"], n)
    prediction = np.where(rng.random(n) < 0.04, 1 - label, label)
    if biased:
        prediction = np.where((gender == "f") & (rng.random(n) < 0.5), 1, prediction)
    score = np.clip(0.1 + 0.8 * prediction + rng.normal(0, 0.05, n), 0, 1).round(4)
    lines = ["label,prediction,score,gender"] + [f"{a},{b},{c},{d}" for a, b, c, d in zip(label, prediction, score, gender, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def fraud(live_server):
    """fraud v1 with the bias policy; the editor's and the approver's CLI credentials."""
    editor, approver = make_user("alice", "editor"), make_user("bob", "approver")
    register("fraud", editor)
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}
    as_bob = {"url": live_server.url, "token": user_token_refresh(user=approver)}
    assert cli("policy", "--model", "fraud", "--file", json.dumps(BIAS_POLICY), **as_bob).returncode == 0
    return as_alice, as_bob


def test_gate_fails_on_a_bias_check_and_passes_after_a_fair_evaluation(celery_eager, fraud, tmp_path):
    as_alice, _ = fraud
    biased = predictions_csv(tmp_path / "biased.csv", biased=True)
    fair = predictions_csv(tmp_path / "fair.csv", biased=False)
    evaluate = ("evaluate", "--model", "fraud", "--version", "1", "--group-column", "gender", "--wait", "--interval", "0.2")

    first = cli(*evaluate, "--file", biased, "--data-version", "2024-06", **as_alice)
    failing = cli("gate", "--model", "fraud", "--version", "1", **as_alice)
    second = cli(*evaluate, "--file", fair, **as_alice)
    passing = cli("gate", "--model", "fraud", "--version", "latest", **as_alice)
    as_json = cli("gate", "--model", "fraud", "--version", "1", "--json", **as_alice)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    evaluation_id = int(lines[0].split()[0])
    assert lines[0] == f"{evaluation_id} done"
    assert lines[1].startswith("model evaluation of fraud v1 on biased.csv · 2024-06, 3,000 rows")
    figures = dict(line.split() for line in lines[3 : lines.index("")])
    assert list(figures) == ["accuracy", "precision", "recall", "f1", "roc_auc", "demographic_parity_difference", "equalized_odds_difference"]
    stored = Evaluation.objects.get(pk=evaluation_id).metrics
    assert float(figures["demographic_parity_difference"]) == pytest.approx(stored["demographic_parity_difference"], rel=1e-5)
    groups = lines[lines.index("") + 1 :]
    assert groups[0].split() == ["GROUP", "(gender)", "ROWS", "SELECTION", "RATE", "TPR", "FPR", "ACCURACY"]
    assert [row.split()[0] for row in groups[1:]] == ["f", "m", "x"]
    assert failing.returncode == 6, (failing.stdout, failing.stderr)
    assert failing.stdout.splitlines()[0] == "fraud v1: 1 of 2 check(s) passed (policy enforced: promotions wait for it)"
    row = next(line for line in failing.stdout.splitlines() if line.startswith("demographic_parity_difference"))
    assert row.split()[2:5] == ["<=", "0.1", "failed"] and f"#{evaluation_id} model: biased.csv" in row
    assert_fails(failing, 6, "error: gates not passed for fraud v1: demographic_parity_difference = 0.2")
    assert second.returncode == 0, second.stderr
    assert passing.returncode == 0, (passing.stdout, passing.stderr)
    assert passing.stdout.splitlines()[0].startswith("fraud v1: 2 of 2 check(s) passed")
    assert passing.stderr == ""
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["passed"] is True


def test_promotion_of_a_version_whose_gate_failed_is_refused(celery_eager, fraud, tmp_path):
    as_alice, _ = fraud
    cli("evaluate", "--model", "fraud", "--version", "1", "--file", predictions_csv(tmp_path / "p.csv", biased=True),
        "--group-column", "gender", "--wait", **as_alice)

    result = cli("promote", "--model", "fraud", "--version", "1", "--to", "production", "--reason", "ship", **as_alice)

    assert_fails(result, 4, "409 conflict (gates_failed)", "demographic_parity_difference")


def test_evaluate_wait_on_a_failed_evaluation_exits_seven_with_the_reason(celery_eager, fraud, tmp_path):
    as_alice, _ = fraud
    (tmp_path / "wrong.csv").write_text("truth,guess\n1,0\n0,0\n")
    fair = predictions_csv(tmp_path / "fair.csv", biased=False)

    failed = cli("evaluate", "--model", "fraud", "--version", "1", "--file", str(tmp_path / "wrong.csv"), "--wait", **as_alice)
    gate_before = cli("gate", "--model", "fraud", "--version", "1", **as_alice)
    cli("evaluate", "--model", "fraud", "--version", "1", "--file", fair, "--group-column", "gender", "--wait", **as_alice)
    cli("evaluate", "--model", "fraud", "--version", "1", "--file", str(tmp_path / "wrong.csv"), **as_alice)
    gate_after = cli("gate", "--model", "fraud", "--version", "1", **as_alice)

    evaluation_id = failed.stdout.split()[0]
    assert failed.stdout == f"{evaluation_id} failed\n"
    assert_fails(failed, 7, f"error: evaluation {evaluation_id} failed: No label column 'label' in the file (columns: truth, guess).")
    assert_fails(gate_before, 6, "accuracy never ran; demographic_parity_difference never ran.")
    assert f"note: the newest model evaluation, {evaluation_id} (wrong.csv), failed: No label column" in gate_before.stdout
    # The fair evaluation passes; the failed one after it is named, since the gate reads the older figures.
    assert gate_after.returncode == 0, gate_after.stderr
    assert "note: the newest model evaluation" in gate_after.stdout and "(wrong.csv), failed" in gate_after.stdout


def test_evaluate_without_wait_prints_the_id_and_flags_are_checked_first(fraud, tmp_path):
    as_alice, _ = fraud
    fair = predictions_csv(tmp_path / "fair.csv", biased=False, n=200)

    queued = cli("evaluate", "--model", "fraud", "--version", "1", "--file", fair, "--positive-label", "1", **as_alice)
    missing = cli("evaluate", "--model", "fraud", "--version", "1", "--file", str(tmp_path / "nope.csv"), **as_alice)
    misplaced = cli("evaluate", "--model", "fraud", "--version", "1", "--file", fair, "--kind", "data", "--group-column", "g", **as_alice)
    no_version = cli("evaluate", "--model", "fraud", "--version", "7", "--file", fair, **as_alice)
    bad_wait = cli("evaluate", "--model", "fraud", "--version", "1", "--file", fair, "--max-wait", "-1", **as_alice)

    number, status = queued.stdout.split()
    assert queued.returncode == 0 and status in ("pending", "done"), queued.stderr
    assert Evaluation.objects.get(pk=number).options == {"positive_label": 1}
    assert_fails(missing, 2, "--file: no such file:")
    assert_fails(misplaced, 2, "--group-column: only for --kind model")
    assert_fails(no_version, 4, "404")
    assert bad_wait.returncode == 2 and "non-negative number of seconds" in bad_wait.stderr
    assert Evaluation.objects.count() == 1


def first_line(process: subprocess.Popen, seconds: float = 30) -> str:
    """The first line `process` prints on stdout, waited for at most `seconds`."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=seconds):
            process.kill()
            pytest.fail(f"printed nothing within {seconds} s")
    return process.stdout.readline().rstrip("\n")


def test_gate_waits_while_an_evaluation_is_pending(fraud, tmp_path):
    as_alice, _ = fraud
    data = Path(predictions_csv(tmp_path / "fair.csv", biased=False)).read_bytes()
    version = ModelVersion.objects.get(model__name="fraud", version=1)
    # Written directly, so nothing enqueues it: it stays pending until this test runs it.
    pending = Evaluation.objects.create(kind="model", model_version=version, data=data, source="late.csv", options={"group_column": "gender"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_URL=as_alice["url"], MLOPS_TOKEN=as_alice["token"])

    gives_up = cli("gate", "--model", "fraud", "--version", "1", "--max-wait", "0.5", "--interval", "0.1", **as_alice)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "mlops_client", "gate", "--model", "fraud", "--version", "1", "--interval", "0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    announced = first_line(waiting)  # it has seen the evaluation pending; only its end can end the wait now
    still_waiting = waiting.poll() is None
    evaluations.evaluation_run(evaluation_id=pending.pk)
    out, err = waiting.communicate(timeout=30)

    assert_fails(gives_up, 8, f"evaluation(s) {pending.pk} (model, pending) of fraud v1 still not finished after 0.5 s")
    assert announced == f"waiting for evaluation(s) {pending.pk} (model, pending) of fraud v1, up to 600 s", (announced, err)
    assert still_waiting
    assert waiting.returncode == 0, (out, err)
    assert out.splitlines()[0].startswith("fraud v1: 2 of 2 check(s) passed")


def test_gate_without_a_policy_exits_zero_and_says_so(live_server):
    editor = make_user("alice", "editor")
    register("churn", editor)
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}

    result = cli("gate", "--model", "churn", "--version", "1", **as_alice)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("churn v1: no gate policy, nothing to check")


def test_schema_inferred_from_a_reference_then_data_evaluated_against_it(celery_eager, fraud, tmp_path):
    as_alice, as_bob = fraud
    (tmp_path / "reference.csv").write_text("amount,country\n" + "".join(f"{10 + i % 90},{'FR' if i % 2 else 'DE'}\n" for i in range(200)))
    (tmp_path / "new.csv").write_text("amount,country\n12,FR\n-5,DE\n30,XX\n40,FR\n")

    none_yet = cli("schema", "--model", "fraud", **as_alice)
    inferred = cli("schema", "--model", "fraud", "--infer", str(tmp_path / "reference.csv"), **as_alice)
    shown = cli("--json", "schema", "--model", "fraud", **as_alice)
    checked = cli("evaluate", "--model", "fraud", "--version", "1", "--kind", "data", "--file", str(tmp_path / "new.csv"),
                  "--data-version", "june", "--wait", "--interval", "0.2", **as_alice)
    policy = cli("policy", "--model", "fraud", "--default", **as_bob)
    gate = cli("gate", "--model", "fraud", "--version", "1", **as_alice)

    assert_fails(none_yet, 4, "404", "no dataset schema yet")
    assert inferred.returncode == 0, inferred.stderr
    assert inferred.stdout.splitlines()[0].startswith("fraud dataset schema: 2 column(s), extra columns refused; inferred from reference.csv")
    assert inferred.stdout.splitlines()[2].split()[:5] == ["amount", "integer", "yes", "0", "10"]
    assert [c["name"] for c in json.loads(shown.stdout)["schema"]["columns"]] == ["amount", "country"]
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[1] == f"data evaluation of fraud v1 on new.csv · june, 4 rows, finished {checked.stdout.splitlines()[1][-16:]}"
    assert "schema_violations  2" in checked.stdout and "unknown_category" in checked.stdout and "below_min" in checked.stdout
    assert policy.returncode == 0 and "schema_violations              <= 0" in policy.stdout, policy.stdout
    assert_fails(gate, 6, "schema_violations = 2 (needs <= 0)", "accuracy never ran")


def test_policy_is_shown_set_by_approvers_only_and_checked_locally(fraud, tmp_path):
    as_alice, as_bob = fraud

    shown = cli("policy", "--model", "fraud", **as_alice)
    by_editor = cli("policy", "--model", "fraud", "--default", **as_alice)
    advisory = cli("policy", "--model", "fraud", "--default", "--not-enforced", **as_bob)
    no_checks = cli("policy", "--model", "fraud", "--file", '{"enforced": true}', **as_bob)
    bad = cli("policy", "--model", "fraud", "--file", '{"checks": [{"check": "accuracy", "op": "=>", "threshold": 1}]}', **as_bob)
    nothing = cli("policy", "--prompt", "nope", **as_alice)

    assert shown.returncode == 0
    assert shown.stdout.splitlines()[0].startswith("fraud gate policy: 2 check(s), enforced; set by bob, ")
    assert shown.stdout.splitlines()[1:] == ["CHECK                          NEEDS", "accuracy                       >= 0.85",
                                             "demographic_parity_difference  <= 0.1"]
    assert_fails(by_editor, 4, "403")
    assert advisory.returncode == 0 and "4 check(s), not enforced" in advisory.stdout
    assert_fails(no_checks, 2, '--file: a JSON object with "checks"')
    assert_fails(bad, 4, "400 bad request", "op: one of")
    assert_fails(nothing, 4, "404")


def test_evaluate_prompt_replays_responses_and_gate_reads_its_figures(celery_eager, live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    as_bob = {"url": live_server.url, "token": token_for("bob", "approver")}
    three, two = "- moved\\n- to\\n- Tuesday", "- sales\\n- up 4%"
    folder = brief_folder()  # the eval set with the outputs recorded for it, which `replay` reads by default
    folder["summarize/eval_set.jsonl"] = "".join(
        f'{{"input": {{"text": "{text}"}}, "expected": "- x", "response": "{three}"}}\n' for text in ("The meeting moved.", "Sales grew.")
    )
    assert cli("prompts", "import", str(write_folder(tmp_path / "prompts", folder)), **as_alice).returncode == 0
    (tmp_path / "worse.jsonl").write_text(f'{{"index": 0, "output": "{three}"}}\n{{"index": 1, "output": "{two}"}}\n')
    checks = {"checks": [{"check": "format_valid", "op": ">", "threshold": 0.95}, {"check": "safety", "op": ">", "threshold": 0.99}]}
    assert cli("policy", "--prompt", "summarize", "--file", json.dumps(checks), **as_bob).returncode == 0
    evaluate = ("evaluate-prompt", "--prompt", "summarize", "--wait", "--interval", "0.2")

    good = cli(*evaluate, "--version", "2", **as_alice)
    passing = cli("gate", "--prompt", "summarize", "--version", "2", **as_alice)
    worse = cli(*evaluate, "--version", "latest", "--provider", "replay", "--responses", str(tmp_path / "worse.jsonl"), **as_alice)
    failing = cli("gate", "--prompt", "summarize", "--version", "3", **as_alice)
    assert cli("policy", "--prompt", "summarize", "--default", **as_bob).returncode == 0
    no_judge = cli("gate", "--prompt", "summarize", "--version", "2", **as_alice)
    openai = cli("evaluate-prompt", "--prompt", "summarize", "--version", "3", "--provider", "openai", **as_alice)
    mixed = cli("evaluate-prompt", "--prompt", "summarize", "--version", "3", "--provider", "openai", "--responses", "x", **as_alice)

    assert good.returncode == 0, good.stderr
    lines = good.stdout.splitlines()
    assert lines[1].startswith("prompt evaluation of summarize v2 on eval set v1 (2 rows), finished ")
    figures = dict(line.split() for line in lines[3:] if line and not line.startswith("not run"))
    assert figures["format_valid"] == "1" and figures["safety"] == "1"
    assert "not run (no figure): relevance" in good.stdout  # llm_judge without a judge model on the server
    assert passing.returncode == 0 and passing.stdout.startswith("summarize v2: 2 of 2 check(s) passed"), passing.stderr
    assert worse.returncode == 0, worse.stderr
    worse_id = int(worse.stdout.split()[0])
    assert "format_valid  0.5" in worse.stdout and "its figures never count for a gate" in worse.stdout  # shown, never counted
    assert_fails(failing, 6, f"gates not passed for summarize v3: format_valid has no evidence that counts (#{worse_id}: a replay of "
                             "responses typed in with the request never counts for a gate)")
    assert f"note: format_valid of #{worse_id} (by alice) does not count" in failing.stdout
    assert_fails(no_judge, 6, "gates not passed for summarize v2: relevance never ran.")
    assert_fails(openai, 4, "400 bad request", "MLOPS_LLM_BASE_URL")
    assert_fails(mixed, 2, "--responses goes with --provider replay")


def test_the_example_pipeline_runs_against_the_server(celery_eager, live_server):
    editor, approver = make_user("ci", "editor"), make_user("ci-approver", "approver")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_URL=live_server.url, MLOPS_TOKEN=user_token_refresh(user=editor), MLOPS_APPROVER_TOKEN=user_token_refresh(user=approver),
               PY=sys.executable, MAX_WAIT="60")

    result = subprocess.run(["bash", str(ROOT / "examples" / "run_locally.sh")], env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "ci-example-summarize v1: 3 of 3 check(s) passed" in result.stdout
    assert "ci-example-fraud v1: 3 of 4 check(s) passed" in result.stdout
    assert "error: gates not passed for ci-example-fraud v1: demographic_parity_difference = 0.241 (needs <= 0.1)." in result.stderr
    assert "error: 409 conflict (gates_failed)" in result.stderr
    assert "ci-example-fraud v2: 4 of 4 check(s) passed" in result.stdout
    version = ModelVersion.objects.get(model__name="ci-example-fraud", version=2)
    assert [(p.to_stage, p.status) for p in version.promotions.all()] == [("production", "pending")]
    assert not Evaluation.objects.exclude(status="done").exists()
