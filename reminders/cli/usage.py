"""Wrong command lines answered in Chinese first: the date and month parameter types, and click's own usage errors
(missing option, bad choice, no such command…) translated in one place, with the expected format spelled out."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import click

from reminders.tracking.cycles import CycleError, cycle_of, parse_cycle

DATE_FORMAT = "日期应为 YYYY-MM-DD，如 2021-06-30{given} (expected YYYY-MM-DD)"
CYCLE_FORMAT = "月份应为 YYYY-MM，如 2021-06{given} (expected YYYY-MM)"


class Day(click.DateTime):
    """A day written YYYY-MM-DD; a datetime at midnight, like click.DateTime, so commands call `.date()`."""

    name = "date"

    def __init__(self) -> None:
        super().__init__(["%Y-%m-%d"])

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.strptime(str(value).strip(), "%Y-%m-%d")
        except ValueError:
            self.fail(DATE_FORMAT.format(given=f"，而不是 “{value}”"), param, ctx)


class Cycle(click.ParamType[str]):
    """A month written YYYY-MM (2021-6 is read as 2021-06)."""

    name = "cycle"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "YYYY-MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            year, month = parse_cycle(str(value).strip())
        except CycleError:
            self.fail(CYCLE_FORMAT.format(given=f"，而不是 “{value}”"), param, ctx)
        return cycle_of(datetime(year, month, 1).date())


DAY = Day()
CYCLE = Cycle()
_CJK = re.compile(r"[\u3400-\u9fff]")


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "参数"
    if isinstance(param, click.Option):
        return "/".join(param.opts)
    return param.human_readable_name


def _bad_value(exc: click.BadParameter) -> str:
    param, message = exc.param, exc.message
    name = _name(param)
    if _CJK.search(message):
        return f"{name}：{message}"
    kind = param.type if param is not None else None
    if isinstance(kind, click.Choice):
        choices = ", ".join(map(str, kind.choices))
        return f"{name} 应为 {'、'.join(map(str, kind.choices))} 之一 (expected one of: {choices}; {message})"
    if isinstance(kind, click.DateTime):  # click's own says '%Y-%m-%d', which no user should have to read
        given = re.match(r"'(.*)' does not match", message)
        return f"{name}：{DATE_FORMAT.format(given=f'，而不是 “{given[1]}”' if given else '')}"
    if isinstance(kind, click.IntRange):
        low, high = kind.min, kind.max
        return f"{name} 应为 {low}–{high} 之间的整数 (expected a whole number from {low} to {high}; {message})"
    if kind is click.INT or isinstance(kind, click.types.IntParamType):
        return f"{name} 应为整数 (expected a whole number; {message})"
    return f"{name} 的值不对 (invalid value: {message})"


def translate(exc: click.UsageError) -> click.UsageError:
    """The same error, its message in Chinese first with click's English in parentheses."""
    if _CJK.search(exc.message) and not isinstance(exc, click.BadParameter):
        return exc
    if isinstance(exc, click.MissingParameter):
        param = exc.param
        name = _name(param)
        metavar = param.make_metavar(exc.ctx) if param is not None and exc.ctx is not None else ""
        what = "参数" if isinstance(param, click.Argument) else "选项"
        hint = f"，格式 {metavar}" if isinstance(param, click.Option) and param.type is not click.STRING else ""
        english = "argument" if what == "参数" else "option"
        message = f"缺少{what} {name}{hint} (missing {english} {name})"
    elif isinstance(exc, click.BadParameter):
        message = _bad_value(exc)
    elif isinstance(exc, click.NoSuchOption):
        known = f"；可以用：{', '.join(sorted(exc.possibilities))}" if exc.possibilities else ""
        message = f"没有选项 {exc.option_name}{known} (no such option {exc.option_name})"
    elif isinstance(exc, click.BadOptionUsage) and "requires an argument" in exc.message:
        message = f"选项 {exc.option_name} 后面需要一个值 (option {exc.option_name} requires a value)"
    elif match := re.match(r"No such command '(.*)'", exc.message):
        known = "、".join(exc.ctx.command.list_commands(exc.ctx)) if exc.ctx is not None and isinstance(
            exc.ctx.command, click.Group) else ""
        message = f"没有命令 “{match[1]}”；可用的命令：{known} (no such command {match[1]!r})"
    elif match := re.match(r"Got unexpected extra arguments? \((.*)\)", exc.message):
        message = f"多余的参数：{match[1]} (unexpected extra argument: {match[1]})"
    else:
        message = f"命令行有误 (usage error: {exc.message})"
    return click.UsageError(message, exc.ctx)


class Translating(click.Group):
    """The root group: usage errors raised while parsing the root or any subcommand come out translated."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise translate(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise translate(exc) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head` reports: the reader stopped, nothing went wrong here


def _quiet_stdout() -> None:
    """The reader of our output went away (`status | head`): point stdout at /dev/null so the interpreter's last
    flush has nowhere to fail, and leave without a word."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
