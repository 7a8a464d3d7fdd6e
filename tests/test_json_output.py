"""The commands' JSON output: one array, one object a line, whatever the number of records (it is written in
chunks, so a plan of 100,000 tasks never becomes one string)."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from reminders.cli.common import echo_json_lines


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
