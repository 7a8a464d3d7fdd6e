"""序时进度: a task whose latest reported percentage is more than `[ladder] lag_points` behind the expected one is
`lagging` (滞后), between due_soon and on_track; the 开始日期 column moves where the expected progress starts."""

import csv
import io
import json
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from reminders import config
from reminders.config import ConfigError
from reminders.tracking.pace import expected_percent, is_lagging
from reminders.tracking.status import task_state
from reminders.vocabulary import LEDGER_FILLS, LIGHT_COLOURS, STATES, TaskState, lights, state_label
from tests.conftest import EXAMPLES, Cli

AS_OF = "2021-06-20"  # June's reminders are computed for this day
# Task 3 (民族工作处, 2021年10月): 170 of the 303 days from 1 January to 31 October have gone on 20 June.
EXPECTED_3 = 56


def task(run: Cli, number: str, as_of: str = AS_OF) -> dict[str, object]:
    records = json.loads(run("status", "--as-of", as_of, "--format", "json").output)
    return next(record for record in records if record["number"] == number)


def report(run: Cli, number: str, unit: str, percent: str | None, day: str) -> None:
    run("progress", number, "--unit", unit, *(("--percent", percent) if percent else ()), "--note", "推进中",
        "--date", day)


def breakdown(tmp_path: Path, starts: dict[str, str] | None, header: str = "开始日期") -> Path:
    """The example assignments, with a start-date column when `starts` (task number → cell) is given."""
    rows = list(csv.reader(io.StringIO((EXAMPLES / "assignments.csv").read_text(encoding="utf-8"))))
    if starts is not None:
        rows = [[*rows[0], header], *([*row, starts.get(row[0], "")] for row in rows[1:])]
    path = tmp_path / "assignments-start.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_the_expected_progress_grows_linearly_from_the_start_to_the_deadline() -> None:
    start, deadline = date(2021, 1, 1), date(2021, 10, 31)
    assert expected_percent(start, deadline, date(2020, 12, 1)) == 0
    assert expected_percent(start, deadline, start) == 0
    assert expected_percent(start, deadline, date(2021, 6, 20)) == EXPECTED_3
    assert expected_percent(start, deadline, deadline) == 100
    assert expected_percent(start, deadline, date(2021, 11, 5)) == 100
    assert expected_percent(deadline, deadline, date(2021, 10, 30)) == 0  # a one-day task


def test_lagging_is_more_than_the_points_behind_and_needs_a_percentage() -> None:
    assert is_lagging(35, 56, 20)
    assert not is_lagging(36, 56, 20)  # exactly 20 behind is still on pace
    assert not is_lagging(None, 56, 20)  # nothing reported: judged by the deadline alone
    assert not is_lagging(0, None, 20)  # no deadline, no pace


def test_lagging_sits_between_due_soon_and_on_track() -> None:
    order = list(STATES)
    assert order.index(TaskState.DUE_SOON) < order.index(TaskState.LAGGING) < order.index(TaskState.ON_TRACK)
    day = date(2021, 6, 20)
    assert task_state(date(2021, 10, 31), True, False, day, 7, lagging=True) is TaskState.LAGGING
    assert task_state(date(2021, 6, 25), True, False, day, 7, lagging=True) is TaskState.DUE_SOON
    assert task_state(date(2021, 6, 1), True, False, day, 7, lagging=True) is TaskState.OVERDUE
    assert task_state(date(2021, 10, 31), True, True, day, 7, lagging=True) is TaskState.DONE
    assert (state_label("lagging"), state_label("lagging", "en")) == ("滞后", "Lagging")
    colours = [LIGHT_COLOURS[state] for state in STATES]
    assert len(set(colours)) == len(colours)  # a light of its own
    assert LEDGER_FILLS[TaskState.LAGGING] not in {LEDGER_FILLS[s] for s in STATES if s is not TaskState.LAGGING}
    assert lights("en")[TaskState.LAGGING].label == "Lagging"


def test_a_task_far_behind_its_pace_is_lagging_in_the_status(loaded: Cli) -> None:
    report(loaded, "3", "民族工作处", "30", "2021-06-18")
    line = task(loaded, "3")
    assert (line["state"], line["expected_percent"], line["percent"]) == ("lagging", EXPECTED_3, 30)
    assert "滞后 1" in loaded("status", "--as-of", AS_OF).output
    rows = {row["number"]: row for row in csv.DictReader(io.StringIO(loaded("status", "--as-of", AS_OF, "--format",
                                                                            "csv").output))}
    assert (rows["3"]["state"], rows["3"]["expected_percent"], rows["3"]["percent"]) == ("lagging", str(EXPECTED_3),
                                                                                          "30")
    # a later note without a percentage leaves the figure standing
    report(loaded, "3", "民族工作处", None, "2021-06-19")
    assert (task(loaded, "3")["state"], task(loaded, "3")["percent"]) == ("lagging", 30)
    # catching up ends it
    report(loaded, "3", "民族工作处", "40", "2021-06-20")
    assert (task(loaded, "3")["state"], task(loaded, "3")["percent"]) == ("on_track", 40)


def test_a_task_without_a_reported_percentage_is_not_lagging(loaded: Cli) -> None:
    report(loaded, "3", "办公室", "5", "2021-06-18")  # a co-unit's figure is not the task's
    line = task(loaded, "3")
    assert (line["state"], line["expected_percent"], line["percent"]) == ("on_track", EXPECTED_3, None)
    line = task(loaded, "4")  # 年底前, never reported
    assert (line["state"], line["expected_percent"], line["percent"]) == ("on_track", 47, None)
    assert (task(loaded, "1")["expected_percent"], task(loaded, "1")["state"]) == (None, "ongoing")  # 长期坚持


def test_due_soon_outranks_lagging(loaded: Cli) -> None:
    report(loaded, "14", "政策法规处", "10", "2021-06-18")  # due 2021-06-25
    line = task(loaded, "14")
    assert (line["state"], line["expected_percent"], line["percent"]) == ("due_soon", 97, 10)


def test_a_start_date_moves_the_pace(loaded: Cli, tmp_path: Path) -> None:
    report(loaded, "3", "民族工作处", "10", "2021-06-18")
    assert task(loaded, "3")["state"] == "lagging"
    result = loaded("import-assignments", str(breakdown(tmp_path, {"3": "2021年5月1日"})))
    assert "任务 3：开始日期 （空） → 2021-05-01" in result.output
    line = task(loaded, "3")  # 50 of the 183 days from 1 May to 31 October
    assert (line["state"], line["expected_percent"], line["percent"]) == ("on_track", 27, 10)
    # a table without the column keeps the start dates; an empty cell in it clears one
    loaded("import-assignments", str(EXAMPLES / "assignments.csv"))
    assert task(loaded, "3")["expected_percent"] == 27
    loaded("import-assignments", str(breakdown(tmp_path, {}, header="start_date")))
    assert (task(loaded, "3")["expected_percent"], task(loaded, "3")["state"]) == (EXPECTED_3, "lagging")


@pytest.mark.parametrize(("cell", "words"), [
    ("2021-13-01", "无法识别的日期 “2021-13-01”"),
    ("下个月", "应为日期，如 2021-03-01 或 3月1日"),
    ("2021-11-01", "开始日期 2021-11-01 晚于完成时限 2021-10-31"),
])
def test_a_bad_start_date_is_refused_naming_row_and_column(loaded: Cli, tmp_path: Path, cell: str,
                                                           words: str) -> None:
    result = loaded("import-assignments", str(breakdown(tmp_path, {"3": cell}, header="start_date")), ok=False)
    assert result.exit_code == 1
    assert "row 4, column start_date: " in result.output and words in result.output
    assert task(loaded, "3")["expected_percent"] == EXPECTED_3  # nothing was imported


def test_the_lag_is_set_in_the_ladder_section(loaded: Cli) -> None:
    report(loaded, "3", "民族工作处", "30", "2021-06-18")  # 26 points behind
    loaded.config.write_text(loaded.config.read_text(encoding="utf-8") + "\n[ladder]\nlag_points = 30\n",
                             encoding="utf-8")
    assert task(loaded, "3")["state"] == "on_track"


@pytest.mark.parametrize(("text", "words"), [
    ("[ladder]\nlag_points = 101\n", "0–100"),
    ("[ladder]\nlag_points = -1\n", "0–100"),
    ("[ladder]\nlag_points = \"20\"\n", "wrong type"),
    ("[ladder]\nlag_point = 20\n", "unknown key"),
])
def test_a_bad_lag_is_refused_naming_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "reminders.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        config.load(str(path))
    assert error.value.key in ("ladder.lag_points", "ladder.lag_point") and words in str(error.value)


def test_the_example_config_names_the_default_lag() -> None:
    assert config.load(str(EXAMPLES.parent / "config.example.toml")).ladder.lag_points == 20


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def test_the_reminder_and_the_ledger_show_the_lagging_light(loaded: Cli, tmp_path: Path) -> None:
    report(loaded, "3", "民族工作处", "30", "2021-06-18")
    loaded("preview", "--cycle", "2021-06", "--out", str(tmp_path / "preview"))
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default)
             for p in (tmp_path / "preview").glob("*.eml")]
    reminder = next(m for m in mails if "工作提醒" in m["Subject"] and "民族工作处" in m["Subject"])
    assert isinstance(reminder, EmailMessage)
    assert "滞后" in _body(reminder, "plain")
    html = _body(reminder, "html")
    assert LIGHT_COLOURS[TaskState.LAGGING] in html and "滞后" in html
    out = tmp_path / "ledger.csv"
    loaded("export", "--format", "csv", "--out", str(out), "--as-of", AS_OF)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert next(row for row in rows if row["序号"] == "3")["状态"] == "滞后"
