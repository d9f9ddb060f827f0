"""Every background task is bounded and evaluations keep to their own queue: a task past its soft time limit is
interrupted and past its hard one its worker process is replaced, and a long evaluation never waits in front of
ingestion, reports or the canary controller. The queues as a real worker consumes them: tests/integration/."""

import pytest

from mlops_site.celery import app
from registry.services.evaluations import STALE_RUN
from tests.test_settings import settings_values

APPS = ("registry", "monitoring", "experiments")


@pytest.fixture(scope="module")
def our_tasks() -> dict:
    app.loader.import_default_modules()  # every app's tasks module, as a worker imports them when it starts
    found = {name: task for name, task in app.tasks.items() if name.split(".")[0] in APPS}
    assert len(found) >= 10, sorted(found)
    return found


def test_every_task_of_our_apps_has_a_soft_and_a_hard_time_limit(our_tasks):
    limits = {
        name: (task.soft_time_limit or app.conf.task_soft_time_limit, task.time_limit or app.conf.task_time_limit)
        for name, task in our_tasks.items()
    }

    unbounded = {name: pair for name, pair in limits.items() if not (pair[0] and pair[1] and pair[0] < pair[1])}
    assert not unbounded, f"tasks without a soft limit below a hard one: {unbounded}"


def test_evaluation_task_stops_before_a_stale_run_may_be_claimed_again(our_tasks):
    task = our_tasks["registry.tasks.evaluation_compute"]

    assert 0 < task.soft_time_limit < task.time_limit < STALE_RUN.total_seconds()


def test_evaluation_tasks_go_to_the_evaluations_queue_and_the_rest_to_the_default_one(our_tasks):
    default = app.conf.task_default_queue

    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in our_tasks}

    assert queues.pop("registry.tasks.evaluation_compute") == f"{default}-evaluations"
    assert set(queues.values()) == {default}


def test_evaluations_queue_is_named_after_the_sites_default_queue():
    site_a = settings_values({"CELERY_TASK_DEFAULT_QUEUE": "site-a"}, "CELERY_TASK_ROUTES", "MLOPS_EVALUATIONS_QUEUE")

    assert site_a["MLOPS_EVALUATIONS_QUEUE"] == "site-a-evaluations"
    assert site_a["CELERY_TASK_ROUTES"] == {"registry.tasks.evaluation_compute": {"queue": "site-a-evaluations"}}
