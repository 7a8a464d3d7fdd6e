from datetime import date

import pytest

from reminders.intake.deadlines import Deadline, DeadlineError, find_deadline, normalise, parse_deadline

Y = 2021

DATED = [
    ("2021年6月底前", date(2021, 6, 30)),
    ("6月底前", date(2021, 6, 30)),
    ("要求6月底完成", date(2021, 6, 30)),
    ("6月底", date(2021, 6, 30)),
    ("2022年10月底前", date(2022, 10, 31)),
    ("2021年10月", date(2021, 10, 31)),
    ("10月份", date(2021, 10, 31)),
    ("4月", date(2021, 4, 30)),
    ("4月份", date(2021, 4, 30)),
    ("2月", date(2021, 2, 28)),
    ("2021年6月30日", date(2021, 6, 30)),
    ("2021年3月15日前", date(2021, 3, 15)),
    ("于2月3日前", date(2021, 2, 3)),
    ("6月30日", date(2021, 6, 30)),
    ("2021-06-30", date(2021, 6, 30)),
    ("2021/6/30", date(2021, 6, 30)),
    ("2021.6.30", date(2021, 6, 30)),
    ("上半年", date(2021, 6, 30)),
    ("下半年", date(2021, 12, 31)),
    ("一季度", date(2021, 3, 31)),
    ("第一季度", date(2021, 3, 31)),
    ("一季度末", date(2021, 3, 31)),
    ("三季度末", date(2021, 9, 30)),
    ("第三季度", date(2021, 9, 30)),
    ("二季度", date(2021, 6, 30)),
    ("年底前", date(2021, 12, 31)),
    ("年内", date(2021, 12, 31)),
    ("年底", date(2021, 12, 31)),
    ("全年", date(2021, 12, 31)),
    ("12月底前", date(2021, 12, 31)),
    ("本年度", date(2021, 12, 31)),
    ("年底以前", date(2021, 12, 31)),
    ("年底之前", date(2021, 12, 31)),
    ("6月上旬", date(2021, 6, 10)),
    ("6月中旬", date(2021, 6, 20)),
    ("6月下旬", date(2021, 6, 30)),
    ("2022年2月下旬", date(2022, 2, 28)),
    ("二〇二一年十二月底前", date(2021, 12, 31)),
    ("十二月", date(2021, 12, 31)),
    ("三月十五日", date(2021, 3, 15)),
    ("１２月底前", date(2021, 12, 31)),
    ("２０２１年６月３０日", date(2021, 6, 30)),
    ("2 0 21 年 6 月底前", date(2021, 6, 30)),
    ("  6月底前\u3000", date(2021, 6, 30)),
]


@pytest.mark.parametrize(("phrase", "due"), DATED)
def test_it_maps_a_dated_phrase_to_its_day(phrase: str, due: date) -> None:
    deadline = parse_deadline(phrase, Y)
    assert deadline == Deadline("date", due, phrase.strip())


@pytest.mark.parametrize("phrase", ["长期坚持", "持续推进", "常态化", "长期", "持续", "長期堅持"])
def test_it_marks_standing_duties_ongoing_without_a_due_date(phrase: str) -> None:
    assert parse_deadline(phrase, Y) == Deadline("ongoing", None, phrase)


@pytest.mark.parametrize("phrase", ["每月", "每季度", "每月25日前"])
def test_it_marks_duties_recurring_until_year_end(phrase: str) -> None:
    assert parse_deadline(phrase, Y) == Deadline("recurring", date(2021, 12, 31), phrase)


def test_it_takes_named_quarter_ends_of_a_recurring_duty_as_milestones() -> None:
    deadline = parse_deadline("每季度末(6月、9月和12月底)", Y)
    assert deadline.kind == "recurring"
    assert deadline.due == date(2021, 12, 31)
    assert deadline.milestones == (date(2021, 6, 30), date(2021, 9, 30), date(2021, 12, 31))
    assert parse_deadline("每季度末（6月、9月和12月底）", Y).milestones == deadline.milestones


def test_it_keeps_every_date_of_a_list_and_is_due_at_the_last() -> None:
    deadline = parse_deadline("6月15日、12月15日前", Y)
    assert deadline == Deadline(
        "date", date(2021, 12, 15), "6月15日、12月15日前", (date(2021, 6, 15), date(2021, 12, 15))
    )


def test_it_carries_a_named_year_to_later_dates_in_a_list() -> None:
    deadline = parse_deadline("2022年3月31日和6月30日", Y)
    assert deadline.milestones == (date(2022, 3, 31), date(2022, 6, 30))


@pytest.mark.parametrize("phrase", ["", "   ", "\u3000"])
def test_it_infers_year_end_for_an_empty_phrase(phrase: str) -> None:
    assert parse_deadline(phrase, Y) == Deadline("inferred", date(2021, 12, 31), "")


def test_it_uses_the_callers_year_for_phrases_without_one() -> None:
    assert parse_deadline("6月底前", 2024).due == date(2024, 6, 30)
    assert parse_deadline("2月", 2024).due == date(2024, 2, 29)


@pytest.mark.parametrize("phrase", ["下个月", "5日前后", "尽快", "2021年6月底前后", "abc", "6月底、下个月"])
def test_it_refuses_an_unknown_phrase_naming_it(phrase: str) -> None:
    with pytest.raises(DeadlineError) as caught:
        parse_deadline(phrase, Y)
    assert f"“{phrase}”" in str(caught.value)
    assert str(caught.value).startswith("无法识别的完成时限")


@pytest.mark.parametrize("phrase", ["2月30日", "13月", "2021年13月底前", "2021-02-29", "4月31日前"])
def test_it_refuses_an_impossible_date_naming_the_phrase(phrase: str) -> None:
    with pytest.raises(DeadlineError, match=f"“{phrase}”"):
        parse_deadline(phrase, Y)


def test_it_normalises_numerals_widths_and_spaces() -> None:
    assert normalise("二〇二一年 十二月 三十一日") == "2021年12月31日"
    assert normalise("２０２１年") == "2021年"
    assert normalise("年底以前") == "年底以前"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("加快建设，2022年10月底前完成主体工程。", "2022年10月底前"),
        ("开展评估，12月底前完成。", "12月底前"),
        ("分别于6月15日、12月15日前报送。", "6月15日、12月15日前"),
        ("力争年底前全面完成。", "年底前"),
        ("深化改革，持续推进各项工作。", None),
        ("做好2021年度人大建议办理。", None),
    ],
)
def test_it_finds_a_deadline_inside_task_text(text: str, found: str | None) -> None:
    assert find_deadline(text) == found


def test_it_reads_a_spreadsheet_date_with_a_time_of_day() -> None:
    assert parse_deadline("2021-06-30 14:30:00", 2021).due == date(2021, 6, 30)
