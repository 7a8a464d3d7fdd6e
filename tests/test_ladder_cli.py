"""`reminders ladder`, and the ladder's steps where the office reads them: the task's history on the dashboard and the
督办 column of the exported ledger."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date

import pytest
from openpyxl import load_workbook

from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.test_escalation import asked, close_17, notices, report
from tests.websupport import Site, open_site

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def june(loaded: Cli, smtp: RecordingServer) -> Cli:
    """宗教一处 silent in April and May: its 督办通知 sent with June's reminders, its steps recorded."""
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    loaded("send", "--cycle", "2021-06", "--kind", "escalations", "--as-of", "2021-06-21")
    loaded("send", "--cycle", "2021-06", "--kind", "chases", "--as-of", "2021-06-28")
    notices(loaded, "2021-06", date(2021, 6, 21))  # the steps, as a send records them with the message
    return loaded


@pytest.fixture
def site(june: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(june, monkeypatch) as site:
        yield site


def test_it_lists_who_stands_where_as_json(june: Cli) -> None:
    found = {s["unit"]: s for s in json.loads(june("ladder", "--cycle", "2021-06", "--format", "json").output)}
    notice = found["宗教一处"]
    assert (notice["rung"], notice["rung_label"], notice["number"]) == (2, "督办通知", "督办〔2021〕1号")
    assert notice["recorded"] is True and notice["message_state"] == "sent"
    assert [t["number"] for t in notice["tasks"]] == ["2", "11"]
    assert notice["tasks"][0]["missed_cycles"] == ["2021-04", "2021-05"]
    assert "连续 2 个月未报送进展" in notice["tasks"][0]["reason"]
    chased = found["民族工作处"]  # reported in April and May, chased in June: rung 1
    assert (chased["rung"], chased["rung_label"], chased["number"]) == (1, "催办", None)
    assert chased["message_state"] == "sent"
    assert chased["tasks"][0]["reason"] == "本月未报送进展 (no progress report this month)"
    assert next(iter(found)) == "宗教一处"  # the highest rung first


def test_it_lists_who_stands_where_as_a_table(june: Cli) -> None:
    table = june("ladder", "--cycle", "2021-06").output
    line = next(row for row in table.splitlines() if "宗教一处" in row)
    assert "督办通知" in line and "督办〔2021〕1号" in line and "2、11" in line and "连续 2 个月未报送进展" in line
    assert "催办" in table and "民族工作处" in table


def test_it_refuses_a_bad_cycle_and_one_outside_the_plan_year_clearly(june: Cli) -> None:
    bad = june("ladder", "--cycle", "2021-13", ok=False)
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output and "Traceback" not in bad.output
    outside = june("ladder", "--cycle", "2022-01", ok=False)
    assert outside.exit_code == 1 and "不在计划年度内" in outside.output and "Traceback" not in outside.output


def test_the_dashboard_shows_the_notice_in_the_task_history(site: Site) -> None:
    site.login()
    page = site.client.get("/admin/tasks/2").text
    assert "督办通知" in page and "督办〔2021〕1号" in page and "连续 2 个月未报送进展" in page
    assert "督办〔2021〕" not in site.client.get("/admin/tasks/3").text  # 民族工作处 reported


def test_the_exported_ledger_shows_the_rung_reached_with_its_number(site: Site) -> None:
    site.login()
    rows = list(load_workbook(io.BytesIO(site.client.get("/admin/export.xlsx").content)).active
                .iter_rows(values_only=True))
    column = rows[2].index("督办")
    by_task = {row[0]: row[column] for row in rows[3:]}
    assert by_task[2] == by_task[11] == "督办通知 督办〔2021〕1号"
    assert by_task[3] is None
    records = list(csv.DictReader(io.StringIO(site.client.get("/admin/export.csv").content.decode("utf-8-sig"))))
    assert records[1]["督办"] == "督办通知 督办〔2021〕1号" and records[2]["督办"] == ""


def test_a_unit_not_chased_yet_is_not_on_the_ladder(loaded: Cli) -> None:
    close_17(loaded)
    found = json.loads(loaded("ladder", "--cycle", "2021-06", "--format", "json").output)
    assert found == []  # nobody asked yet: no 催办 before a chase, no 督办 before a failed 催办
    loaded("send", "--cycle", "2021-06", "--kind", "chases", "--as-of", "2021-06-28")
    chased = json.loads(loaded("ladder", "--cycle", "2021-06", "--format", "json").output)
    assert {s["unit"] for s in chased} == {
        "办公室", "民族工作处", "宗教一处", "宗教二处", "政策法规处", "机关党委", "信息中心"}
    assert {s["rung"] for s in chased} == {1}
