"""The pages of training runs: run groups, a group's runs, compare, a run, its artifact files, and the model version
page's link to the run that produced it. Data is made through the ORM, as an MLflow client's calls would leave it."""

import html
import json
import math
import re
import sys
from urllib.parse import quote

import plotly.graph_objects as go
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from registry.models import LoggedModel, Run, RunGroup, RunMetric, RunParam, RunStatus, RunTag
from registry.models.runs import Lifecycle
from tests.conftest import make_user
from tests.factories import register

pytestmark = pytest.mark.django_db

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC, in ms
HOSTILE = '<script>alert("x")</script>'


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_run(group, name="", *, params=None, tags=None, metrics=(), status=RunStatus.FINISHED, start=T0, end=None, **fields) -> Run:
    """A run with its params and tags ({key: value}) and metric points ((key, step, value) or (key, step, value, is_nan))."""
    run = Run.objects.create(group=group, name=name, status=status, start_time=start, end_time=end, **fields)
    RunParam.objects.bulk_create(RunParam(run=run, key=k, value=v) for k, v in (params or {}).items())
    RunTag.objects.bulk_create(RunTag(run=run, key=k, value=v) for k, v in (tags or {}).items())
    RunMetric.objects.bulk_create(
        RunMetric(run=run, key=point[0], step=point[1], value=point[2], is_nan=point[3] if len(point) > 3 else False, timestamp=T0 + i)
        for i, point in enumerate(metrics)
    )
    return run


def figures(response) -> dict[str, dict]:
    """The figures the page hands to charts.js, by metric key, read back from its json_script elements."""
    text = response.content.decode()
    found = {}
    for element_id, key in re.findall(r'data-figure="([\w-]+)" data-metric="([^"]*)"', text):
        script = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', text, re.S)
        figure = json.loads(script.group(1))
        go.Figure(figure)  # plotly validates every key
        found[html.unescape(key)] = figure
    return found


def produced(run, model_name, editor):
    return register(model_name, editor, run=run)  # the lineage is written with the version (it is immutable after)


# --- run groups ---------------------------------------------------------------------------------------------------------


def test_run_group_list_shows_each_group_with_its_active_runs_and_last_start(viewer):
    churn, fraud = RunGroup.objects.create(name="churn-training"), RunGroup.objects.create(name="fraud-training")
    make_run(churn, "a", start=T0)
    make_run(churn, "b", start=T0 + 3_600_000)
    make_run(churn, "gone", start=T0 + 7_200_000, lifecycle_stage=Lifecycle.DELETED)

    response = logged_in(viewer).get("/runs/")

    text = response.content.decode()
    rows = {name: row for row in re.findall(r"<tr>(.*?)</tr>", text, re.S) for name in ("churn-training", "fraud-training") if name in row}
    assert response.status_code == 200
    assert "run group" in text and "Default" in text
    assert f'href="/runs/{churn.pk}/"' in rows["churn-training"]
    assert re.findall(r'<td class="num">(\d+)</td>', rows["churn-training"]) == [str(churn.pk), "2"]
    assert "2026-01-01 01:00 UTC" in rows["churn-training"]
    assert re.findall(r'<td class="num">(\d+)</td>', rows["fraud-training"]) == [str(fraud.pk), "0"]


@pytest.mark.parametrize("url", ["/runs/", "/runs/compare/"])
def test_run_pages_work_with_an_empty_database(viewer, url):
    response = logged_in(viewer).get(url)

    assert response.status_code == 200
    assert b"empty" in response.content


def test_run_group_detail_lists_runs_with_param_and_latest_metric_columns_and_produced_versions(viewer, editor):
    group = RunGroup.objects.create(name="churn-training")
    # Logged out of order: the latest value is the one at the largest step, not the last row written.
    fast = make_run(
        group,
        "fast",
        params={"lr": "0.1", "depth": "4"},
        metrics=[("loss", 2, 0.25), ("loss", 1, 0.5)],
        user=editor,
        start=T0,
        end=T0 + 90_000,
    )
    slow = make_run(group, "slow", params={"lr": "0.01", "depth": "4"}, metrics=[("loss", 0, 0.75)], start=T0 + 1000, end=T0 + 1000 + 7_500)
    version = produced(fast, "churn", editor)

    response = logged_in(viewer).get(f"/runs/{group.pk}/")

    text = response.content.decode()
    fast_row = re.search(rf'<tr id="run-{fast.run_id}">(.*?)</tr>', text, re.S).group(1)
    slow_row = re.search(rf'<tr id="run-{slow.run_id}">(.*?)</tr>', text, re.S).group(1)
    assert response.status_code == 200
    assert re.findall(r'<th class="param-col">(.*?)</th>', text) == ["depth", "lr"]
    assert re.findall(r'<th class="metric-col">(.*?)</th>', text) == ["loss"]
    assert re.findall(r'<td class="num">(.*?)</td>', fast_row) == ["4", "0.1", "0.25"]
    assert re.findall(r'<td class="num">(.*?)</td>', slow_row) == ["4", "0.01", "0.75"]
    assert "1 min 30 s" in fast_row and "7.5 s" in slow_row
    assert "alice" in fast_row
    assert f'href="/models/churn/versions/{version.version}/">churn v{version.version}</a>' in fast_row
    assert f'href="/runs/r/{fast.run_id}/"' in fast_row
    assert f'name="run" value="{fast.run_id}"' in fast_row
    assert 'action="/runs/compare/"' in text and 'method="get"' in text


def test_run_group_detail_filters_by_status_and_hides_deleted_runs(viewer):
    group = RunGroup.objects.create(name="g")
    done = make_run(group, "done-run", status=RunStatus.FINISHED)
    failed = make_run(group, "failed-run", status=RunStatus.FAILED)
    gone = make_run(group, "deleted-run", lifecycle_stage=Lifecycle.DELETED)

    everything = logged_in(viewer).get(f"/runs/{group.pk}/").content.decode()
    only_failed = logged_in(viewer).get(f"/runs/{group.pk}/?status=FAILED").content.decode()

    assert f"run-{done.run_id}" in everything and f"run-{failed.run_id}" in everything
    assert f"run-{gone.run_id}" not in everything
    assert f"run-{failed.run_id}" in only_failed and f"run-{done.run_id}" not in only_failed


def test_run_group_detail_paginates_keeping_the_filter(viewer, settings):
    settings.MLOPS_PAGE_SIZE = 2
    group = RunGroup.objects.create(name="g")
    runs = [make_run(group, f"run-{i}", start=T0 + i, status=RunStatus.FINISHED) for i in range(5)]

    first = logged_in(viewer).get(f"/runs/{group.pk}/?status=FINISHED").content.decode()
    last = logged_in(viewer).get(f"/runs/{group.pk}/?status=FINISHED&page=3").content.decode()

    assert first.count('name="run" value=') == 2 and f"run-{runs[4].run_id}" in first
    assert "page 1 of 3" in first and "?status=FINISHED&page=2" in first
    assert last.count('name="run" value=') == 1 and f"run-{runs[0].run_id}" in last


def test_run_group_detail_shows_differing_params_first_and_caps_the_columns(viewer):
    group = RunGroup.objects.create(name="g")
    same = {f"same{i:02}": "x" for i in range(12)}
    make_run(group, "a", params={**same, "zeta": "1"})
    make_run(group, "b", params={**same, "zeta": "2"})

    text = logged_in(viewer).get(f"/runs/{group.pk}/").content.decode()

    columns = re.findall(r'<th class="param-col">(.*?)</th>', text)
    assert len(columns) == 8 and "zeta" in columns
    assert "5 more params" in text


def test_run_group_detail_is_a_404_for_an_unknown_group(viewer):
    assert logged_in(viewer).get("/runs/999/").status_code == 404


def run_group_with(n_runs: int, editor) -> RunGroup:
    group = RunGroup.objects.create(name=f"g{n_runs}")
    for i in range(n_runs):
        run = make_run(
            group,
            f"r{i}",
            params={"lr": str(i), "seed": "1"},
            tags={"mlflow.user": "alice"},
            user=editor,
            metrics=[("loss", s, 1 / (s + i + 1)) for s in range(5)] + [("acc", 0, 0.5)],
        )
        produced(run, "churn", editor)
    return group


def test_run_group_detail_reads_the_same_number_of_queries_for_2_and_20_runs(viewer, editor):
    small, large = run_group_with(2, editor), run_group_with(20, editor)
    client = logged_in(viewer)
    client.get("/runs/")  # the session's first request writes what later ones only read

    with CaptureQueriesContext(connection) as two:
        client.get(f"/runs/{small.pk}/")
    with CaptureQueriesContext(connection) as twenty:
        client.get(f"/runs/{large.pk}/")
    with CaptureQueriesContext(connection) as groups:
        client.get("/runs/")

    assert len(two) == len(twenty), [q["sql"] for q in twenty]
    assert len(twenty) <= 12
    assert len(groups) <= 6


# --- compare --------------------------------------------------------------------------------------------------------------


def test_run_compare_puts_params_side_by_side_and_marks_the_differing_rows(viewer):
    group = RunGroup.objects.create(name="g")
    a = make_run(group, "a", params={"lr": "0.1", "depth": "4", "only_a": "yes"}, metrics=[("auc", 0, 0.8)])
    b = make_run(group, "b", params={"lr": "0.01", "depth": "4"}, metrics=[("auc", 0, 0.8)])

    response = logged_in(viewer).get(f"/runs/compare/?run={a.run_id}&run={b.run_id}")

    text = response.content.decode()
    table = re.search(r'<table class="grid compare" id="run-params-table">(.*?)</table>', text, re.S).group(1)
    rows = {
        m.group(2): (m.group(1), re.findall(r'<td class="num">(.*?)</td>', m.group(3)))
        for m in re.finditer(r'<tr class="(\w*)"><th>(.*?)</th>(.*?)</tr>', table)
    }
    assert response.status_code == 200
    assert rows == {"depth": ("", ["4", "4"]), "lr": ("differs", ["0.1", "0.01"]), "only_a": ("differs", ["yes", "—"])}
    metrics = re.search(r'id="run-metrics-table">(.*?)</table>', text, re.S).group(1)
    assert '<tr class=""><th>auc</th><td class="num">0.8</td><td class="num">0.8</td></tr>' in metrics


def test_run_compare_draws_one_chart_per_metric_with_a_line_per_run(viewer):
    group = RunGroup.objects.create(name="g")
    a = make_run(group, "a", metrics=[("loss", 0, 0.9), ("loss", 1, 0.6), ("loss", 2, 0.4), ("acc", 2, 0.7)])
    b = make_run(group, "b", metrics=[("loss", 0, 0.8), ("loss", 1, 0.5), ("loss", 2, 0.0, True)])

    response = logged_in(viewer).get(f"/runs/compare/?run={a.run_id}&run={b.run_id}")

    found = figures(response)
    assert sorted(found) == ["acc", "loss"]
    assert [(t["name"], t["x"], t["y"]) for t in found["loss"]["data"]] == [
        ("a", [0, 1, 2], [0.9, 0.6, 0.4]),
        ("b", [0, 1, 2], [0.8, 0.5, None]),
    ]
    assert [(t["name"], t["y"]) for t in found["acc"]["data"]] == [("a", [0.7])]
    assert found["loss"]["layout"]["xaxis"]["title"]["text"] == "step"
    assert b"vendor/plotly.min.js" in response.content


def test_run_compare_labels_runs_sharing_a_name_by_their_id(viewer):
    group = RunGroup.objects.create(name="g")
    a, b = make_run(group, "same", metrics=[("loss", 0, 1.0)]), make_run(group, "same", metrics=[("loss", 0, 2.0)])

    found = figures(logged_in(viewer).get(f"/runs/compare/?run={a.run_id}&run={b.run_id}"))

    assert [t["name"] for t in found["loss"]["data"]] == [f"same ({a.run_id[:8]})", f"same ({b.run_id[:8]})"]


def test_run_compare_refuses_more_than_20_runs_with_a_message(viewer):
    group = RunGroup.objects.create(name="g")
    runs = [make_run(group, f"r{i}") for i in range(21)]

    response = logged_in(viewer).get("/runs/compare/?" + "&".join(f"run={r.run_id}" for r in runs))
    twenty = logged_in(viewer).get("/runs/compare/?" + "&".join(f"run={r.run_id}" for r in runs[:20]))

    assert response.status_code == 400
    assert "at most 20 runs" in response.content.decode()
    assert twenty.status_code == 200


def test_run_compare_refuses_an_unknown_run_id_with_a_message_escaping_it(viewer):
    group = RunGroup.objects.create(name="g")
    real = make_run(group, "real")

    response = logged_in(viewer).get("/runs/compare/", {"run": [real.run_id, HOSTILE]})

    text = response.content.decode()
    assert response.status_code == 400
    assert "No run with the id" in text
    assert HOSTILE not in text and html.escape(HOSTILE) in text


@pytest.mark.parametrize("bogus", ["\x00", "a" * 65, "../x", "é"])
def test_run_compare_and_run_page_refuse_an_id_that_cannot_be_a_run_id(viewer, bogus):
    group = RunGroup.objects.create(name="g")
    real = make_run(group, "real")

    compare = logged_in(viewer).get("/runs/compare/", {"run": [real.run_id, bogus]})
    page = logged_in(viewer).get(f"/runs/r/{quote(bogus, safe='')}/")

    assert compare.status_code == 400 and b"No run with the id" in compare.content
    assert page.status_code == 404


def test_run_compare_reads_the_same_number_of_queries_for_2_and_20_runs(viewer, editor):
    small, large = run_group_with(2, editor), run_group_with(20, editor)
    client = logged_in(viewer)
    client.get("/runs/")

    with CaptureQueriesContext(connection) as two:
        client.get("/runs/compare/", {"run": list(small.runs.values_list("run_id", flat=True))})
    with CaptureQueriesContext(connection) as twenty:
        client.get("/runs/compare/", {"run": list(large.runs.values_list("run_id", flat=True))})

    assert len(two) == len(twenty), [q["sql"] for q in twenty]


# --- one run --------------------------------------------------------------------------------------------------------------


def test_run_detail_shows_info_params_tags_apart_metrics_models_and_versions(viewer, editor):
    group = RunGroup.objects.create(name="churn-training")
    run = make_run(
        group,
        "baseline",
        params={"lr": "0.1"},
        tags={"team": "growth", "mlflow.source.git.commit": "abc123"},
        metrics=[("loss", 0, 0.9), ("loss", 1, 0.4), ("big", 0, sys.float_info.max)],
        user=editor,
        start=T0,
        end=T0 + 5000,
    )
    LoggedModel.objects.create(group=group, run=run, name="model", model_type="sklearn", created_at=T0, updated_at=T0)
    version = produced(run, "churn", editor)

    response = logged_in(viewer).get(f"/runs/r/{run.run_id}/")

    text = response.content.decode()
    section = lambda element_id: re.search(rf'id="{element_id}">(.*?)</(table|ul)>', text, re.S).group(1)  # noqa: E731
    assert response.status_code == 200
    assert run.run_id in section("run-info") and "2026-01-01 00:00:05 UTC" in section("run-info") and "5.0 s" in section("run-info")
    assert f'href="/runs/{group.pk}/">churn-training</a>' in section("run-info")
    assert "<th>lr</th>" in section("run-params")
    assert "<th>team</th>" in section("run-tags") and "mlflow.source" not in section("run-tags")
    assert "<th>mlflow.source.git.commit</th><td>abc123</td>" in section("run-system-tags")
    assert re.search(r"<th>loss</th><td class=\"num\">0.4</td><td class=\"num\">1</td><td class=\"num\">2</td>", section("run-metrics"))
    assert '<th>big</th><td class="num">inf</td>' in section("run-metrics")
    assert "sklearn" in section("run-logged-models")
    assert f'href="/models/churn/versions/{version.version}/"' in section("run-versions")
    found = figures(response)
    assert found["loss"]["data"][0]["y"] == [0.9, 0.4]
    assert found["big"]["data"][0]["y"] == [None]


def test_run_detail_thins_a_long_history_for_its_chart_and_says_so(viewer):
    group = RunGroup.objects.create(name="g")
    run = make_run(group, "long", metrics=[("loss", s, 1 / (s + 1)) for s in range(6001)] + [("acc", 0, 0.5)])

    response = logged_in(viewer).get(f"/runs/r/{run.run_id}/")

    line = figures(response)["loss"]["data"][0]
    assert 1000 < len(line["x"]) <= 2001
    assert line["x"][0] == 0 and line["x"][-1] == 6000 and line["y"][-1] == 1 / 6001
    assert all(y == 1 / (x + 1) for x, y in zip(line["x"], line["y"], strict=True))
    assert b'id="thinned"' in response.content
    assert b"6001" in response.content  # the table counts every point
    assert b'id="thinned"' not in logged_in(viewer).get(f"/runs/r/{make_run(group, 'short', metrics=[('loss', 0, 1.0)]).run_id}/").content


def test_run_detail_lists_artifacts_with_sizes_and_downloads_one(viewer):
    group = RunGroup.objects.create(name="g")
    run = make_run(group, "r")
    default_storage.save(f"mlflow-artifacts/{run.artifact_folder}/model/model.pkl", ContentFile(b"x" * 2048))
    default_storage.save(f"mlflow-artifacts/{run.artifact_folder}/notes.txt", ContentFile(b"hello"))
    client = logged_in(viewer)

    page = client.get(f"/runs/r/{run.run_id}/").content.decode()
    download = client.get(f"/runs/r/{run.run_id}/artifacts/model/model.pkl")

    files = re.search(r'id="run-artifacts">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', files) == [
        (f"/runs/r/{run.run_id}/artifacts/model/model.pkl", "model/model.pkl"),
        (f"/runs/r/{run.run_id}/artifacts/notes.txt", "notes.txt"),
    ]
    assert 'title="2048 bytes">2.0\xa0KB' in files and 'title="5 bytes"' in files
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="model.pkl"'
    assert b"".join(download.streaming_content) == b"x" * 2048


@pytest.mark.parametrize(
    "escape", ["../../{other}/artifacts/secret.txt", "%2e%2e/%2e%2e/{other}/artifacts/secret.txt", "./notes.txt", "..", "/etc/passwd"]
)
def test_run_artifact_refuses_a_path_leaving_the_run_folder(viewer, escape):
    group = RunGroup.objects.create(name="g")
    run, other = make_run(group, "r"), make_run(group, "other")
    default_storage.save(f"mlflow-artifacts/{run.artifact_folder}/notes.txt", ContentFile(b"hello"))
    default_storage.save(f"mlflow-artifacts/{other.artifact_folder}/secret.txt", ContentFile(b"secret of another run"))

    response = logged_in(viewer).get(f"/runs/r/{run.run_id}/artifacts/" + escape.format(other=other.run_id))

    assert response.status_code == 404
    assert b"secret of another run" not in b"".join(getattr(response, "streaming_content", [response.content]))


def test_run_detail_and_download_are_404s_for_an_unknown_run(viewer):
    assert logged_in(viewer).get("/runs/r/" + "0" * 32 + "/").status_code == 404
    assert logged_in(viewer).get("/runs/r/" + "0" * 32 + "/artifacts/a.txt").status_code == 404


def test_run_detail_reads_the_same_number_of_queries_for_few_and_many_params_and_metrics(viewer):
    group = RunGroup.objects.create(name="g")
    few = make_run(group, "few", params={"a": "1"}, tags={"t": "1"}, metrics=[("m0", 0, 1.0)])
    many = make_run(
        group,
        "many",
        params={f"p{i}": str(i) for i in range(50)},
        tags={f"t{i}": "1" for i in range(50)},
        metrics=[(f"m{k}", s, float(s)) for k in range(40) for s in range(20)],
    )
    for run in (few, many):
        LoggedModel.objects.create(group=group, run=run, name="m", created_at=T0, updated_at=T0)
    client = logged_in(viewer)
    client.get("/runs/")

    with CaptureQueriesContext(connection) as small:
        client.get(f"/runs/r/{few.run_id}/")
    with CaptureQueriesContext(connection) as large:
        client.get(f"/runs/r/{many.run_id}/")

    assert len(small) == len(large), [q["sql"] for q in large]


# --- the model version page ------------------------------------------------------------------------------------------------


def test_version_page_says_which_run_produced_it(viewer, editor):
    group = RunGroup.objects.create(name="churn-training")
    run = make_run(group, "baseline")
    version = produced(run, "churn", editor)
    other = register("churn", editor)

    page = logged_in(viewer).get(f"/models/churn/versions/{version.version}/").content.decode()
    without = logged_in(viewer).get(f"/models/churn/versions/{other.version}/").content.decode()

    produced_by = re.search(r'<p id="produced-by">(.*?)</p>', page, re.S).group(1)
    assert f'<a href="/runs/r/{run.run_id}/">baseline</a>' in produced_by
    assert f'<a href="/runs/{group.pk}/">churn-training</a>' in produced_by
    assert 'id="produced-by"' not in without


# --- hostile text and access -----------------------------------------------------------------------------------------------


def test_run_pages_escape_names_params_tags_and_metric_keys(viewer, editor):
    group = RunGroup.objects.create(name=HOSTILE)
    run = make_run(
        group, HOSTILE, params={"p": HOSTILE}, tags={"t": HOSTILE, "mlflow.note": HOSTILE}, user_name=HOSTILE, metrics=[("loss", 0, 1.0)]
    )
    other = make_run(group, "other", params={"p": "1"}, metrics=[("loss", 0, 2.0)])
    version = produced(run, "churn", editor)
    client = logged_in(viewer)

    pages = {
        url: client.get(url)
        for url in (
            "/runs/",
            f"/runs/{group.pk}/",
            f"/runs/compare/?run={run.run_id}&run={other.run_id}",
            f"/runs/r/{run.run_id}/",
            f"/models/churn/versions/{version.version}/",
        )
    }

    for url, response in pages.items():
        text = response.content.decode()
        assert response.status_code == 200, url
        assert HOSTILE not in text, url
        assert html.escape(HOSTILE) in text, url
    names = [t["name"] for t in figures(pages[f"/runs/compare/?run={run.run_id}&run={other.run_id}"])["loss"]["data"]]
    assert "<script>" not in names[0] and "&lt;script&gt;" in names[0]


@pytest.mark.parametrize("url", ["/runs/", "/runs/0/", "/runs/compare/", "/runs/r/abc/", "/runs/r/abc/artifacts/a.txt"])
def test_run_pages_need_login_and_a_role(url):
    anonymous = Client().get(url)
    no_role = logged_in(make_user("nobody", None)).get(url)

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert no_role.status_code == 403


def test_metric_steps_figure_is_valid_plotly_with_gaps_for_values_that_are_not_finite():
    from registry.charts import metric_steps

    figure = metric_steps("loss<b>", [("run <i>a</i>", [0, 1, 2, 3], [1.0, math.nan, math.inf, -math.inf])])

    go.Figure(figure)
    assert figure["data"][0]["y"] == [1.0, None, None, None]
    assert figure["data"][0]["name"] == "run &lt;i&gt;a&lt;/i&gt;"
    assert figure["layout"]["title"]["text"] == "loss&lt;b&gt;"
