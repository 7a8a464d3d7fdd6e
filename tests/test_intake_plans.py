"""Plans as offices bring them: Word/WPS .docx, Notepad's UTF-16, no title line, portal metadata, odd numbers."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reminders.intake.planparse import PlanError, parse_plan, read_plan
from tests.conftest import EXAMPLES

SEED = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8")
TITLE = "郑州市民族宗教事务局2021年工作计划"
TASK_1 = "持续抓好习近平总书记关于民族宗教工作重要论述的学习贯彻落实"


def plan_error(path: Path, **options: object) -> PlanError:
    with pytest.raises(PlanError) as caught:
        read_plan(path, **options)  # type: ignore[arg-type]
    return caught.value


def test_it_reads_a_word_docx_with_a_metadata_table_paragraphs_and_a_task_table(tmp_path: Path) -> None:
    document = docx.Document()
    meta = document.add_table(rows=2, cols=4)
    for row, cells in zip(meta.rows, [("索引号", "005252653/2021-00006", "主题分类", "计划"),
                                      ("发文机关", "郑州市民族宗教事务局", "成文日期", "2021年05月31日")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_paragraph(TITLE)
    document.add_paragraph("一、深入贯彻学习习近平新时代中国特色社会主义思想和十九届五中全会精神")
    document.add_paragraph(f"1.{TASK_1}。深入贯彻落实习近平总书记关于河南宗教工作重要指示批示精神。")
    document.add_paragraph("2.认真学习贯彻中央民族工作会议和全国宗教工作会议精神。抓好学习宣传。")
    document.add_paragraph("二、铸牢中华民族共同体意识")
    tasks = document.add_table(rows=2, cols=3)
    for row, cells in zip(tasks.rows, [("3", "加强中华民族共同体意识宣传教育。开展主题教育活动。", "6月底前"),
                                       ("4.", "全面深入持久推进民族团结进步创建工作。", "年底前")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.save(tmp_path / "plan.docx")

    parsed = read_plan(tmp_path / "plan.docx")

    assert (parsed.title, parsed.year) == (TITLE, 2021)
    assert parsed.metadata == {"index_no": "005252653/2021-00006", "category": "计划", "issuer": "郑州市民族宗教事务局",
                               "written_on": "2021-05-31"}
    assert [t.number for t in parsed.tasks] == ["1", "2", "3", "4"]
    assert [t.section for t in parsed.tasks] == [1, 1, 2, 2]
    assert parsed.tasks[0].title == TASK_1
    assert parsed.tasks[2].title == "加强中华民族共同体意识宣传教育"
    assert parsed.tasks[2].suggested_deadline == "6月底前"


def test_it_reads_the_seed_saved_as_a_docx_like_the_text(tmp_path: Path) -> None:
    document = docx.Document()
    for line in SEED.splitlines():
        document.add_paragraph(line)
    document.save(tmp_path / "plan.docx")
    from_docx = read_plan(tmp_path / "plan.docx")
    from_text = read_plan(EXAMPLES / "plan-2021.txt")
    assert (from_docx.title, from_docx.year, from_docx.metadata) == (from_text.title, 2021, from_text.metadata)
    assert from_docx.tasks == from_text.tasks


def test_it_refuses_a_damaged_docx_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "plan.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    error = plan_error(tmp_path / "plan.docx")
    assert str(error).startswith(f"{tmp_path / 'plan.docx'}: 无法读取 Word 文件")
    assert error.line is None


def test_it_asks_for_a_docx_when_given_a_legacy_doc(tmp_path: Path) -> None:
    (tmp_path / "plan.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    error = plan_error(tmp_path / "plan.doc")
    assert str(error) == (f"{tmp_path / 'plan.doc'}: 这是旧版 Word/WPS 文件（.doc/.wps），请另存为 .docx 或文本 "
                          "(legacy .doc or .wps file: save it as .docx or text)")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_it_reads_utf16_text_with_or_without_a_bom(tmp_path: Path, encoding: str) -> None:
    """Notepad's "Unicode" is UTF-16 LE with a BOM; utf-16-le/-be here are written without one."""
    path = tmp_path / "plan.txt"
    path.write_bytes(SEED.replace("\n", "\r\n").encode(encoding))
    parsed = read_plan(path)
    assert (parsed.title, len(parsed.sections), len(parsed.tasks)) == (TITLE, 5, 19)
    assert parsed.tasks[0].title == TASK_1


def test_it_names_the_line_of_invalid_utf16(tmp_path: Path) -> None:
    path = tmp_path / "plan.txt"
    head = "\ufeff某局2021年工作计划\r\n1.推进".encode("utf-16-le")
    path.write_bytes(head + b"\x00\xd8" + "\r\n".encode("utf-16-le"))
    error = plan_error(path)
    assert (error.line, error.message) == (2, "无法按 UTF-16 解码 (invalid UTF-16 text)")


FLAT = "1.加强中华民族共同体意识宣传教育。\n2.全面推进民族团结进步创建工作，6月底前完成。\n"


def test_it_takes_title_and_year_from_the_options_when_the_text_has_no_title(tmp_path: Path) -> None:
    path = tmp_path / "flat.txt"
    path.write_text(FLAT, encoding="utf-8")
    parsed = read_plan(path, title="市民宗局2021年重点任务", year=2021)
    assert (parsed.title, parsed.year) == ("市民宗局2021年重点任务", 2021)
    assert [(t.number, t.title, t.line) for t in parsed.tasks] == [
        ("1", "加强中华民族共同体意识宣传教育", 1), ("2", "全面推进民族团结进步创建工作，6月底前完成", 2)]


def test_it_refuses_a_plan_without_a_title_line_or_title_option(tmp_path: Path) -> None:
    path = tmp_path / "flat.txt"
    path.write_text(FLAT, encoding="utf-8")
    error = plan_error(path, year=2021)
    assert str(error) == (f"{path}, line 1: 缺少标题，文件以编号条目开头；请用 --title 给出计划标题 "
                          "(no title line: give one with --title)")


def test_it_refuses_a_plan_without_a_year_unless_given_one(tmp_path: Path) -> None:
    path = tmp_path / "plan.txt"
    path.write_text("市民宗局重点工作任务\n" + FLAT, encoding="utf-8")
    error = plan_error(path)
    assert str(error) == (f"{path}, line 1: 计划“市民宗局重点工作任务”的标题和元数据中都没有年份，请用 --year 指定 "
                          "(no year in the title or metadata: give --year)")
    assert read_plan(path, year=2022).year == 2022


def test_the_year_option_overrides_the_year_of_the_title() -> None:
    assert parse_plan(f"{TITLE}\n{FLAT}", year=2022).year == 2022


@pytest.mark.parametrize(
    "header",
    [
        ["[索引号] 005252653/2021-00006", "[主题分类] 计划", "[发文机关] 郑州市民族宗教事务局",
         "[成文日期] 2021-05-31"],
        ["1. [索引号] 005252653/2021-00006", "2. [主题分类] 计划", "3. [发文机关] 郑州市民族宗教事务局",
         "4. [成文日期] 2021-05-31"],
        ["1、【索引号】005252653/2021-00006", "2、【主题分类】计划", "3、【发文机关】郑州市民族宗教事务局",
         "4、【成文日期】2021年05月31日"],
        ["索引号：005252653/2021-00006", "主题分类：计划", "发文机关：郑州市民族宗教事务局",
         "成文日期：2021-05-31"],
        ["1.索引号：005252653/2021-00006", "2.主题分类：计划", "3.发文机关：郑州市民族宗教事务局",
         "4.成文日期：2021-05-31"],
        ["索引号\t005252653/2021-00006\t主题分类\t计划", "发文机关\t郑州市民族宗教事务局\t成文日期\t2021-05-31"],
    ],
    ids=["bracketed", "numbered-bracketed", "numbered-lenticular", "labelled", "numbered-labelled", "tab-cells"],
)
def test_it_reads_portal_metadata_headers_and_never_takes_them_for_tasks(header: list[str]) -> None:
    parsed = parse_plan("\n".join([*header, TITLE, "一、铸牢中华民族共同体意识", "1.加强宣传教育。",
                                   "2.推进创建工作。"]), "plan.txt")
    assert parsed.metadata == {"index_no": "005252653/2021-00006", "category": "计划", "issuer": "郑州市民族宗教事务局",
                               "written_on": "2021-05-31"}
    assert (parsed.title, [t.number for t in parsed.tasks]) == (TITLE, ["1", "2"])


def test_a_bracketed_task_heading_is_still_a_task() -> None:
    parsed = parse_plan(f"{TITLE}\n1.【重点】加强宣传教育。\n2.推进创建工作。", "plan.txt")
    assert [t.title for t in parsed.tasks] == ["【重点】加强宣传教育", "推进创建工作"]


def test_it_reads_a_task_numbered_1000_after_999_as_a_task_of_its_own() -> None:
    body = "\n".join(f"{n}.完成第{n}项工作。" for n in range(1, 1002))
    parsed = parse_plan(f"{TITLE}\n{body}", "plan.txt")
    assert [t.number for t in parsed.tasks[-3:]] == ["999", "1000", "1001"]
    assert parsed.tasks[999].title == "完成第1000项工作"
    assert parsed.tasks[998].text == "完成第999项工作。"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (["1.甲。", "2.乙。", "4.丙。"], 4, "任务编号 4 跟在第 3 行的 2 之后，既不连续也不是重新编号，应为 3 或 1 "
                                          "(unexpected task number: expected 3 or 1)"),
        (["998.甲。", "999.乙。", "1001.丙。"], 4, "任务编号 1001 跟在第 3 行的 999 之后，既不连续也不是重新编号，"
                                                   "应为 1000 或 1 (unexpected task number: expected 1000 or 1)"),
        (["1.做好接办工作。", "100、二百人规模的培训班各办一期。"], 3,
         "任务编号 100 跟在第 2 行的 1 之后，既不连续也不是重新编号，应为 2 或 1 "
         "(unexpected task number: expected 2 or 1)"),
    ],
)
def test_it_refuses_a_task_number_that_jumps_naming_the_line(body: list[str], line: int, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan("\n".join([TITLE, *body]), "plan.txt")
    assert (caught.value.line, caught.value.message) == (line, message)


def _small_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph(TITLE)
    document.add_paragraph("1.加强中华民族共同体意识宣传教育。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


SMALL_DOCX = _small_docx()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(4, len(SMALL_DOCX)), flips=st.lists(st.tuples(st.integers(4, len(SMALL_DOCX) - 1),
                                                                   st.integers(0, 255)), max_size=8))
def test_a_damaged_docx_is_read_or_refused_with_a_plan_error(tmp_path: Path, cut: int,
                                                             flips: list[tuple[int, int]]) -> None:
    data = bytearray(SMALL_DOCX[:cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    path = tmp_path / "plan.docx"
    path.write_bytes(bytes(data))
    with contextlib.suppress(PlanError):
        read_plan(path)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"]),
       tail=st.binary(max_size=3))
def test_utf16_text_is_read_or_refused_with_a_plan_error(text: str, encoding: str, tail: bytes) -> None:
    from reminders.intake.planparse import decode_plan

    with contextlib.suppress(PlanError):
        decode_plan(text.encode(encoding, errors="surrogatepass") + tail, "plan.txt")
