"""Generate a province-sized plan and its tables in the project's formats.

    python -m benchmarks.generate --units 10000 --tasks 100000 --leaders 500 --out DIR [--seed 1]

Writes plan.txt, leaders.csv, units.csv, assignments.csv and progress.csv (history: several reports per task over
the months before the benchmark's cycle). Up to 999 tasks are numbered through the plan (1…M); the plan parser reads
at most three digits, so larger plans restart numbering in each （一） sub-level (tasks 3.2.15).
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from benchmarks import textbank

YEAR = 2025
CYCLE = f"{YEAR}-06"
AS_OF = date(YEAR, 6, 20)  # the reminders' cron day in CYCLE
THROUGH_LIMIT = 999  # planparse's _TASK reads \d{1,3}
TASKS_PER_SUB = 200
SUBS_PER_SECTION = 10
# (phrase, weight): about a quarter ongoing, a tenth overdue on AS_OF, some due soon, the rest later.
DEADLINES = (
    ("长期坚持", 15), ("持续推进", 5), ("常态化", 3), ("3月底前", 5), ("一季度", 3), ("于5月15日前", 3),
    ("6月25日前", 4), ("6月底前", 8), ("上半年", 6), ("三季度末", 8), ("10月份", 6), (f"{YEAR}年9月30日", 4),
    ("年底前", 12), ("年内", 4), ("每季度", 3), ("下半年", 5), ("6月15日、12月15日前", 2), ("", 4),
)


@dataclass(frozen=True)
class Sizes:
    units: int
    tasks: int
    leaders: int


def task_numbers(tasks: int) -> list[tuple[int, int, str]]:
    """(section, sub-level, number) per task; sub-level 0 means none."""
    if tasks <= THROUGH_LIMIT:
        per_section = max(1, -(-tasks // max(1, min(12, tasks // 8))))
        return [(i // per_section + 1, 0, str(i + 1)) for i in range(tasks)]
    out = []
    for i in range(tasks):
        sub_index, position = divmod(i, TASKS_PER_SUB)
        section, sub = divmod(sub_index, SUBS_PER_SECTION)
        out.append((section + 1, sub + 1, f"{section + 1}.{sub + 1}.{position + 1}"))
    return out


def write_plan(path: Path, numbers: list[tuple[int, int, str]], rng: random.Random) -> None:
    lines = [f"• 000000000/{YEAR}-00001", "  • 某省人民政府办公厅", "  • 计划", f"  • {YEAR}-01-15",
             f"某省{YEAR}年重点工作任务督查督办计划", ""]
    section = sub = 0
    for s, u, number in numbers:
        if s != section:
            section, sub = s, 0
            lines.append(f"{textbank.cn_numeral(s)}、{rng.choice(textbank.VERBS)}{rng.choice(textbank.OBJECTS)}")
        if u != sub:
            sub = u
            lines.append(f"  （{textbank.cn_numeral(u)}）{rng.choice(textbank.OBJECTS)}")
        lines.append(f"    {number.rpartition('.')[2]}.{textbank.paragraph(rng)}")
    lines += ["", "主办单位：某省人民政府办公厅"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def generate(sizes: Sizes, out: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    numbers = task_numbers(sizes.tasks)
    write_plan(out / "plan.txt", numbers, rng)

    leaders = textbank.person_names(sizes.leaders, rng)
    write_csv(out / "leaders.csv", ["姓名", "职务", "邮箱", "接收范围"], [
        [name, "局长" if i == 0 else rng.choice(textbank.TITLES), f"leader{i:04d}@example.org",
         "全部" if i == 0 else "分管"] for i, name in enumerate(leaders)])

    units = textbank.unit_names(sizes.units)
    unit_leader = [leaders[i % len(leaders)] for i in range(len(units))]
    contacts = textbank.person_names(min(len(units), 2000), rng)
    unit_rows = []
    for i, name in enumerate(units):
        emails = f"unit{i:05d}@example.org" + (f";unit{i:05d}.office@example.org" if i % 7 == 0 else "")
        unit_rows.append([name, emails, contacts[i % len(contacts)], unit_leader[i]])
    write_csv(out / "units.csv", ["单位", "邮箱", "联系人", "分管领导"], unit_rows)

    phrases, weights = zip(*DEADLINES, strict=True)
    assignment_rows, progress_rows = [], []
    for _, _, number in numbers:
        lead = rng.randrange(len(units))
        co = [units[c] for c in rng.sample(range(len(units)), min(rng.randint(0, 3), len(units))) if c != lead]
        assignment_rows.append([number, unit_leader[lead], units[lead], "、".join(co),
                                rng.choices(phrases, weights)[0]])
        progress_rows += _history(rng, number, [units[lead], *co])
    write_csv(out / "assignments.csv", ["序号", "责任领导", "牵头单位", "配合单位", "完成时限"], assignment_rows)
    write_csv(out / "progress.csv", ["task", "unit", "date", "percent", "done", "note"], progress_rows)


def _history(rng: random.Random, number: str, owners: list[str]) -> list[list[str]]:
    """0-6 reports between January and the cycle's day; percent rising; one task in ten ends done."""
    count = rng.choice((0, 1, 2, 3, 3, 4, 5, 6))
    days = sorted(rng.randrange((AS_OF - date(YEAR, 1, 10)).days) for _ in range(count))
    done_task = rng.random() < 0.1
    rows, percent = [], 0
    for k, offset in enumerate(days):
        percent = min(100, percent + rng.randint(5, 30))
        done = done_task and k == count - 1
        rows.append([number, rng.choice(owners), (date(YEAR, 1, 10) + timedelta(days=offset)).isoformat(),
                     "100" if done else str(percent), "1" if done else "0", textbank.note(rng)])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--leaders", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    generate(Sizes(args.units, args.tasks, args.leaders), args.out, args.seed)


if __name__ == "__main__":
    main()
