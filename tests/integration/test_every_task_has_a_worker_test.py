"""Every Celery task of the project runs through a real worker somewhere in tests/integration/: a new task without
such a test fails here. A task counts when a test of this folder names it (a test's name, `worker.send`), runs the
beat entry that sends it (`worker.beat("<entry>")`), or is listed below with the test whose request enqueues it."""

import ast
import re
from pathlib import Path

from django.conf import settings

from mlops_site.celery import app

HERE = Path(__file__).parent

# Tasks that an API call enqueues (no beat entry, no name in the test): the test that makes that call.
ENQUEUED_BY = {
    "experiments.tasks.analysis_compute": ("test_experiment_tasks.py", "test_refresh_queues_an_analysis_the_worker_computes_from_the_committed_rows"),
    "experiments.tasks.rollout_start": ("test_rollout_tasks.py", "test_an_error_spike_rolls_the_canary_back_within_one_tick_of_the_beat"),
}


def project_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if name.split(".")[0] in ("registry", "monitoring", "experiments")}


def functions_of(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_project_task_runs_through_a_real_worker_in_some_test():
    sources = {path.name: path.read_text() for path in HERE.glob("test_*.py") if path.name != Path(__file__).name}
    text = "\n".join(sources.values())
    beats = set(re.findall(r'beat\("([a-z0-9-]+)"\)', text))
    by_beat = {settings.CELERY_BEAT_SCHEDULE[entry]["task"] for entry in beats}

    def covered(task: str) -> bool:
        short = task.rsplit(".", 1)[1]
        if task in by_beat or task in text or re.search(rf"\bdef test_\w*{short}", text):
            return True
        if task in ENQUEUED_BY:
            file, test = ENQUEUED_BY[task]
            return test in functions_of(HERE / file)
        return False

    tasks = project_tasks()

    assert len(tasks) >= 16 and "experiments.tasks.rollouts_tick" in tasks
    assert sorted(task for task in tasks if not covered(task)) == []
