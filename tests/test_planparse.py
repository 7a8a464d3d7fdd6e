import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reminders.intake.planparse import ParsedSection, PlanError, decode_plan, parse_plan, read_plan

SEED = Path(__file__).parent.parent / "examples" / "plan-2021.txt"


def plan(*lines: str) -> str:
    return "\n".join(lines)


def test_it_reads_the_seed_sections() -> None:
    parsed = read_plan(SEED)
    assert parsed.title == "郑州市民族宗教事务局2021年工作计划"
    assert parsed.year == 2021
    assert [s.label for s in parsed.sections] == ["一", "二", "三", "四", "五"]
    assert parsed.sections[0] == ParsedSection(
        1, "一", "深入贯彻学习习近平新时代中国特色社会主义思想和十九届五中全会精神", 8
    )
    assert parsed.sections[3] == ParsedSection(4, "四", "提升民族宗教事务管理能力", 23)


def test_it_reads_the_seed_tasks() -> None:
    tasks = read_plan(SEED).tasks
    assert [t.number for t in tasks] == [str(n) for n in range(1, 20)]
    assert [t.section for t in tasks] == [1, 1] + [2] * 7 + [3] * 3 + [4] * 3 + [5] * 4
    assert tasks[0].title == "持续抓好习近平总书记关于民族宗教工作重要论述的学习贯彻落实"
    assert tasks[0].line == 9
    assert tasks[0].text.startswith("持续抓好习近平总书记")
    assert tasks[4].title == "深化“同心圆•共发展”活动"
    assert "深入开展“同心圆•共发展”活动" in tasks[4].text
    assert tasks[18].title == "提高机关服务保障能力建设"
    assert tasks[18].text.endswith("全面提升机关综合服务保障水平。")
    assert all(t.subsection is None and t.suggested_lead is None for t in tasks)
    assert all(t.suggested_deadline is None for t in tasks)
    assert not any("主办单位" in t.text or "\xa0" in t.text for t in tasks)


def test_it_reads_the_seed_metadata() -> None:
    assert read_plan(SEED).metadata == {
        "index_no": "005252653/2021-00006",
        "issuer": "郑州市民族宗教事务局",
        "category": "计划",
        "written_on": "2021-05-31",
        "published_on": "2021-05-31",
    }


def test_it_reads_the_seed_reencoded_to_gb18030(tmp_path: Path) -> None:
    text = SEED.read_text(encoding="utf-8")
    gb = tmp_path / "plan-gb.txt"
    gb.write_bytes(text.encode("gb18030"))
    assert read_plan(gb) == read_plan(SEED)


def test_it_reads_utf8_with_a_bom_and_gbk(tmp_path: Path) -> None:
    source = plan("某局2021年工作计划", "一、重点工作", "1.推进工作。")
    assert decode_plan(b"\xef\xbb\xbf" + source.encode(), "p.txt") == source
    assert decode_plan(source.encode("gbk"), "p.txt") == source


def test_it_reads_labelled_metadata_and_inline_suggestions() -> None:
    parsed = parse_plan(
        plan(
            "索引号：11410100MB0000000X/2022-00012",
            "发布机构：某市发展和改革委员会",
            "文号：某发改〔2022〕5号",
            "成文日期：2022年3月1日\u3000发布日期：2022-03-05",
            "某市发展和改革委员会2022年工作要点",
            "为做好今年工作，制定本要点。",
            "一、总体要求",
            "以新发展理念为指导，推动高质量发展。",
            "二、重点任务",
            "1、推进项目建设。2022年10月底前完成主体工程。（市发改委牵头，各县区按职责分工负责）",
            "2．优化营商环境。12月底前完成评估",
            "牵头单位：市营商环境局、市市场监管局",
            "3 .加强统计监测",
        )
    )
    assert parsed.metadata == {
        "index_no": "11410100MB0000000X/2022-00012",
        "issuer": "某市发展和改革委员会",
        "doc_no": "某发改〔2022〕5号",
        "written_on": "2022-03-01",
        "published_on": "2022-03-05",
    }
    assert parsed.year == 2022
    assert [s.title for s in parsed.sections] == ["总体要求", "重点任务"]
    one, two, three = parsed.tasks
    assert (one.number, one.section, one.title) == ("1", 2, "推进项目建设")
    assert (one.suggested_lead, one.suggested_deadline) == ("市发改委", "2022年10月底前")
    assert (two.title, two.suggested_lead, two.suggested_deadline) == ("优化营商环境", "市营商环境局", "12月底前")
    assert two.text == "优化营商环境。12月底前完成评估\n牵头单位：市营商环境局、市市场监管局"
    assert (three.number, three.title, three.suggested_lead, three.suggested_deadline) == (
        "3", "加强统计监测", None, None,
    )  # fmt: skip


def test_it_takes_lead_and_deadline_from_their_own_lines() -> None:
    parsed = parse_plan(
        plan(
            "某局2021年工作计划",
            "1.推进改革。深化改革",
            "责任单位：市改革办、市财政局",
            "完成时限：长期坚持",
            "2.完成评估（责任单位：市统计局、市财政局）",
            "3.完成审计。（责任单位：市审计局）",
            "4.完成督查。（由市督查室牵头）",
            "5.完成整改。（各县区负责）",
        )
    )
    one, two, three, four, five = parsed.tasks
    assert (three.title, three.suggested_lead) == ("完成审计", "市审计局")
    assert (four.title, four.suggested_lead) == ("完成督查", "市督查室")
    assert (five.title, five.suggested_lead) == ("完成整改", None)
    assert (one.suggested_lead, one.suggested_deadline, one.section) == ("市改革办", "长期坚持", 0)
    assert (two.title, two.suggested_lead) == ("完成评估", "市统计局")


def test_it_reads_three_levels() -> None:
    parsed = parse_plan(
        plan(
            "某局2021年工作计划",
            "一、加强党的建设",
            "（一）强化理论学习。全年坚持。",
            "1.组织中心组学习。",
            "2.开展专题培训。",
            "(二)严格纪律要求",
            "3.开展警示教育。",
            "二、推进重点工作",
            "（一）项目建设",
            "4.推进重点项目。",
        )
    )
    assert [(t.number, t.section, t.subsection, t.title) for t in parsed.tasks] == [
        ("1", 1, "强化理论学习", "组织中心组学习"),
        ("2", 1, "强化理论学习", "开展专题培训"),
        ("3", 1, "严格纪律要求", "开展警示教育"),
        ("4", 2, "项目建设", "推进重点项目"),
    ]


def test_it_numbers_tasks_restarting_under_each_subsection() -> None:
    parsed = parse_plan(plan("某局2021年工作计划", "一、甲", "（一）乙", "1.a。", "2.b。", "（二）丙", "1.c。"))
    assert [t.number for t in parsed.tasks] == ["1.1.1", "1.1.2", "1.2.1"]


def test_it_treats_bracketed_items_as_tasks_when_a_plan_has_no_arabic_numbers() -> None:
    parsed = parse_plan(
        plan(
            "某局2021年工作要点",
            "一、总体要求",
            "（一）指导思想。以新思想为指导。",
            "（二）基本原则。坚持稳中求进。",
            "二、主要任务",
            "（一）加强学习。组织学习。",
            "（二）推进改革。深化改革。（市改革办牵头）",
            "三、保障措施",
            "（一）加强领导。",
        )
    )
    assert [s.title for s in parsed.sections] == ["总体要求", "主要任务", "保障措施"]
    assert [(t.number, t.section, t.title) for t in parsed.tasks] == [
        ("2.1", 2, "加强学习"),
        ("2.2", 2, "推进改革"),
        ("3.1", 3, "加强领导"),
    ]
    assert parsed.tasks[1].suggested_lead == "市改革办"


def test_it_numbers_bracketed_items_by_their_value_without_sections() -> None:
    parsed = parse_plan(plan("某局2021年工作要点", "（一）加强学习。", "（二）推进改革。", "（十一）其他。"))
    assert [t.number for t in parsed.tasks] == ["1", "2", "11"]


def test_it_numbers_tasks_restarting_in_each_section() -> None:
    parsed = parse_plan(plan("某局2021年工作计划", "一、甲", "1.a。", "2.b。", "二、乙", "1.c。", "2.d。"))
    assert [(t.number, t.section, t.title) for t in parsed.tasks] == [
        ("1.1", 1, "a"),
        ("1.2", 1, "b"),
        ("2.1", 2, "c"),
        ("2.2", 2, "d"),
    ]


def test_it_handles_indentation_full_width_numbers_and_sub_items() -> None:
    parsed = parse_plan(
        plan(
            "\ufeff某局2021年工作计划",
            "\t一、甲",
            "\u3000\u3000１．推进工作。分三步：",
            "\xa0(1)调研；",
            "  ①起草；",
            "",
            "（2）印发。",
            " 2、第二项工作的前半句",
            "后半句。",
            "",
            "某局办公室",
            "2021年5月31日",
        )
    )
    one, two = parsed.tasks
    assert (one.number, one.title, one.text) == ("1", "推进工作", "推进工作。分三步：(1)调研；①起草；（2）印发。")
    assert (two.number, two.title, two.text) == ("2", "第二项工作的前半句后半句", "第二项工作的前半句后半句。")


def test_it_tolerates_traditional_characters() -> None:
    parsed = parse_plan(
        plan("某局二〇二一年工作計劃", "一、加強黨的建設", "1.推進工作。（市某局牽頭）", "完成時限：12月底前")
    )
    assert parsed.year == 2021
    task = parsed.tasks[0]
    assert (task.title, task.suggested_lead, task.suggested_deadline) == ("推進工作", "市某局", "12月底前")


def test_it_takes_the_year_from_metadata_when_the_title_has_none() -> None:
    parsed = parse_plan(plan("• 2020-12-30", "某局工作计划", "1.推进工作。"))
    assert (parsed.year, parsed.metadata["written_on"]) == (2020, "2020-12-30")


def test_it_leaves_the_footer_out() -> None:
    parsed = parse_plan(plan("某局2021年工作计划", "1.推进工作。", "地址：某路1号 邮编：450000", "2.不是任务。"))
    assert [t.text for t in parsed.tasks] == ["推进工作。"]
    parsed = parse_plan(plan("某局2021年工作计划", "1.推进工作。", "发布日期：2021-05-31"))
    assert [t.text for t in parsed.tasks] == ["推进工作。"]


def test_it_joins_a_title_wrapped_onto_two_lines() -> None:
    parsed = parse_plan(
        plan("某县人民政府办公室关于印发", "2023年重点工作任务分解方案的通知", "各乡镇：", "1.扩大有效投资。")
    )
    assert parsed.title == "某县人民政府办公室关于印发2023年重点工作任务分解方案的通知"
    assert (parsed.year, parsed.tasks[0].line) == (2023, 4)


@given(st.text(alphabet="一二十（）()12.．、。：牵头单位：月底前•索引号计划 \n\xa0", max_size=60))
def test_it_raises_nothing_but_plan_errors_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(PlanError):
        parse_plan(text)


def assert_plan_error(text: str, line: int, words: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.txt")
    assert str(caught.value).startswith(f"plan.txt, line {line}: ")
    assert words in str(caught.value)
    assert caught.value.line == line


def test_it_refuses_a_plan_without_a_title() -> None:
    assert_plan_error(plan("", "一、甲", "1.推进工作。"), 2, "缺少标题")
    assert_plan_error(plan("• 2021-05-31", "", ""), 3, "缺少标题")


def test_it_refuses_a_plan_without_tasks() -> None:
    assert_plan_error(plan("", "某局2021年工作计划", "一、总体要求", "做好工作。"), 2, "没有找到编号任务")


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (["一、甲", "1.a", "2.b", "2.c"], 5),
        (["一、甲", "1.a", "2.b", "3.c", "二、乙", "2.d"], 7),
        (["1.a", "2.b", "二、乙", "1.c", "2.d", "1.e"], 7),
    ],
)
def test_it_refuses_task_numbers_going_backwards(body: list[str], line: int) -> None:
    assert_plan_error(plan("某局2021年工作计划", *body), line, "既不连续也不是重新编号")


def test_it_refuses_a_line_that_is_too_long() -> None:
    assert_plan_error(plan("某局2021年工作计划", "1." + "很" * 20_000), 2, "行过长")


def test_it_refuses_binary_and_undecodable_files(tmp_path: Path) -> None:
    cases = {
        "nul.txt": (b"title\nline\n\x00\x01", 3, "NUL"),
        "control.txt": ("某局计划\n\x02\x03".encode(), 2, "控制字符"),
        "utf8.txt": ("某局2021年工作计划\n1.推进".encode() + b"\xff\n", 2, "UTF-8"),
        "neither.txt": (b"plan\nok\n\xff\xfe\xff", 3, "GB18030"),
    }
    for name, (data, line, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(PlanError) as caught:
            read_plan(path)
        assert str(caught.value).startswith(f"{path}, line {line}: "), name
        assert words in str(caught.value)


def test_it_names_only_the_path_when_the_file_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(PlanError) as caught:
        read_plan(missing)
    assert str(caught.value).startswith(f"{missing}: ")
    assert caught.value.line is None
