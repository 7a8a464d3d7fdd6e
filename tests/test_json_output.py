"""The commands' JSON and CSV output: one array, one object a line; one header, one row a line; whatever the number of
records (both are written in chunks, so a plan of 100,000 tasks never becomes one string)."""

from __future__ import annotations

import csv
import io
import json

import click
import pytest
from click.testing import CliRunner

from reminders.cli.common import echo_csv_rows, echo_json_lines


@click.command()
@click.argument("count", type=int)
def emit(count: int) -> None:
    echo_json_lines({"n": n, "text": f"任务 {n}, {{\"x\"}}", "list": ["a", n]} for n in range(count))


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_every_record_once_in_order_one_a_line(count: int) -> None:
    result = CliRunner().invoke(emit, [str(count)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"n": n, "text": f"任务 {n}, {{\"x\"}}", "list": ["a", n]}
                                         for n in range(count)]
    lines = result.output.splitlines()
    if count:
        assert lines[0] == "[" and lines[-1] == "]" and len(lines) == count + 2
        assert all(json.loads(line.rstrip(","))["n"] == n for n, line in enumerate(lines[1:-1]))
        assert "任务 0" in lines[1]  # not escaped to \\uXXXX
    else:
        assert lines == ["[]"]


@click.command()
@click.argument("count", type=int)
def emit_csv(count: int) -> None:
    echo_csv_rows(["n", "text"], ([n, f"任务 {n}, \"引\"\n第二行"] for n in range(count)))


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_every_csv_row_once_in_order_after_one_header(count: int) -> None:
    result = CliRunner().invoke(emit_csv, [str(count)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output, newline="")))
    assert rows == [["n", "text"], *([str(n), f"任务 {n}, \"引\"\n第二行"] for n in range(count))]
    assert result.output.count("n,text") == 1
