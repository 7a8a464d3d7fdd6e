"""The TOML configuration, validated once at start into frozen dataclasses.

Every error names the file and the key (`schedule.timezone`), so an operator can fix it without reading code.
Secrets never live in the file: `[smtp] password_env` names the environment variable that holds the password.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reminders.errors import ReminderError

DEFAULT_PATH = "reminders.toml"
ENV_PATH = "REMINDERS_CONFIG"


class ConfigError(ReminderError):
    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass(frozen=True)
class Office:
    name: str = "督查室"
    email: str = "office@example.org"


@dataclass(frozen=True)
class Mail:
    language: str = "zh_CN"
    templates: Path | None = None
    message_id_domain: str | None = None


@dataclass(frozen=True)
class Delivery:
    transport: Literal["smtp", "maildir"] = "maildir"
    maildir: Path = Path("maildir")


@dataclass(frozen=True)
class Smtp:
    """The `[smtp]` section, and the SMTP transport's settings once `password` is filled from the environment."""

    host: str = "localhost"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password_env: str | None = None
    sender: str = "office@example.org"
    sender_name: str = "督查室"
    timeout: float = 30.0
    connections: int = 2
    verify_certificates: bool = True
    retries: int = 3
    backoff: float = 1.0
    max_per_minute: int = 0  # 0: no limit
    password: str | None = field(default=None, repr=False)  # never read from the file


@dataclass(frozen=True)
class Schedule:
    timezone: str = "Asia/Shanghai"
    reminders: str = "0 9 20 * *"
    digests: str = "0 9 26 * *"
    chase: str = "0 10 26 * *"  # 催报: the day after the default report day, to units that have not reported
    report_day: int = 25
    due_soon_days: int = 7
    misfire_grace: str = "3d"  # a duration: "90m", "12h", "3d"

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.misfire_grace)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Web:
    """The `[web]` section: where the report form and the office dashboard are served, and the links' secret."""

    base_url: str = "http://127.0.0.1:8025"
    bind: str = "127.0.0.1"
    port: int = 8025
    secret_env: str = "REMINDERS_WEB_SECRET"  # the NAME of the environment variable holding the HMAC secret
    link_days: int | None = None  # a unit's link expires this many days after its cycle's reminder; default: the
    # end of the next cycle


@dataclass(frozen=True)
class Config:
    path: str
    database_url: str
    office: Office = field(default_factory=Office)
    mail: Mail = field(default_factory=Mail)
    delivery: Delivery = field(default_factory=Delivery)
    smtp: Smtp = field(default_factory=Smtp)
    schedule: Schedule = field(default_factory=Schedule)
    web: Web = field(default_factory=Web)

    def web_secret(self) -> bytes | None:
        """The links' HMAC secret from the environment; None when the variable is unset (links are left out)."""
        value = os.environ.get(self.web.secret_env)
        return value.encode("utf-8") if value else None

    def smtp_password(self) -> str | None:
        """The SMTP password from the environment; an error names the key when the variable is missing."""
        name = self.smtp.password_env
        if not name:
            return None
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(self.path, "smtp.password_env", f"环境变量 {name} 未设置 (environment variable not set)")
        return value


_SECTIONS: dict[str, type] = {
    "office": Office, "mail": Mail, "delivery": Delivery, "smtp": Smtp, "schedule": Schedule, "web": Web,
}
_CHOICES = {
    "delivery.transport": ("smtp", "maildir"),
    "smtp.security": ("none", "starttls", "tls"),
}
_PATHS = {"delivery.maildir", "mail.templates"}
_INTS = {"web.link_days"}  # optional integers (default None)


def resolve_path(explicit: str | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (a named file must exist)."""
    if explicit:
        return Path(explicit), True
    if os.environ.get(ENV_PATH):
        return Path(os.environ[ENV_PATH]), True
    return Path(DEFAULT_PATH), False


def load(explicit: str | None = None) -> Config:
    path, named = resolve_path(explicit)
    if not path.exists():
        if named:
            raise ConfigError(str(path), None, "配置文件不存在 (config file not found)")
        return parse({}, str(path), Path.cwd())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"不是有效的 TOML (invalid TOML): {exc}") from None
    return parse(data, str(path), path.resolve().parent)


def parse(data: dict[str, Any], path: str, base: Path) -> Config:
    """Validate a TOML mapping; relative paths and SQLite files are taken relative to `base`."""
    unknown = set(data) - set(_SECTIONS) - {"database"}
    if unknown:
        raise ConfigError(path, sorted(unknown)[0], "未知的配置节 (unknown section)")
    database = dict(_table(data, "database", path))
    url = database.pop("url", None) or f"sqlite:///{base / 'reminders.sqlite3'}"
    if database:
        raise ConfigError(path, f"database.{sorted(database)[0]}", "未知的配置项 (unknown key)")
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(path, "database.url", "应为 SQLAlchemy 数据库地址 (expected a SQLAlchemy URL)")
    sections = {name: _section(cls, _table(data, name, path), name, path, base) for name, cls in _SECTIONS.items()}
    sections["delivery"] = replace(sections["delivery"], maildir=base / sections["delivery"].maildir)
    config = Config(path=path, database_url=_anchor_sqlite(url, base), **sections)
    _check(config)
    return config


def _table(data: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(path, name, "应为一个表 [section] (expected a table)")
    return table


def _section(cls: type, table: dict[str, Any], name: str, path: str, base: Path) -> Any:
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{name}.{key}"
        if dotted == "smtp.password":
            raise ConfigError(path, dotted, "密码不能写在配置文件中，请用 password_env 指定环境变量 (use password_env)")
        if not hasattr(defaults, key) or key.startswith("_"):
            raise ConfigError(path, dotted, "未知的配置项 (unknown key)")
        expected = getattr(defaults, key)
        if dotted in _PATHS:
            if not isinstance(value, str):
                raise ConfigError(path, dotted, "应为路径字符串 (expected a path string)")
            if not value and dotted == "delivery.maildir":
                raise ConfigError(path, dotted, "不能为空 (must not be empty)")
            values[key] = (base / value) if value else None
            continue
        if dotted in _INTS:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif expected is None or isinstance(expected, str):
            ok = isinstance(value, str)
        elif isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(expected)) and not isinstance(value, bool)
        if not ok:
            kind = "int" if dotted in _INTS else "string" if expected is None else type(expected).__name__
            raise ConfigError(path, dotted, f"类型错误，应为 {kind} (wrong type, expected {kind})")
        if isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ConfigError(path, dotted, "含有换行或控制字符 (line break or control character)")
        if dotted in _CHOICES and value not in _CHOICES[dotted]:
            raise ConfigError(path, dotted, f"取值应为 {' / '.join(_CHOICES[dotted])} (got {value!r})")
        values[key] = float(value) if isinstance(expected, float) else value
    return cls(**values)


def _anchor_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(base / url[len(prefix):])
    return url


def _check(config: Config) -> None:
    path, schedule, smtp = config.path, config.schedule, config.smtp
    try:
        schedule.tz  # noqa: B018
    except (ZoneInfoNotFoundError, ValueError, OSError):
        message = f"未知时区 {schedule.timezone!r} (unknown IANA time zone)"
        raise ConfigError(path, "schedule.timezone", message) from None
    for key in ("reminders", "digests", "chase"):
        expression = getattr(schedule, key)
        try:
            cron_trigger(expression, schedule.timezone)
        except ValueError as exc:
            raise ConfigError(path, f"schedule.{key}", f"无效的 cron 表达式 {expression!r} ({exc})") from None
    if not 1 <= schedule.report_day <= 31:
        raise ConfigError(path, "schedule.report_day", "应在 1–31 之间 (expected 1–31)")
    if schedule.due_soon_days < 0:
        raise ConfigError(path, "schedule.due_soon_days", "不能为负数 (must not be negative)")
    try:
        schedule.grace  # noqa: B018
    except ValueError as exc:
        raise ConfigError(path, "schedule.misfire_grace", str(exc)) from None
    if smtp.max_per_minute < 0:
        raise ConfigError(path, "smtp.max_per_minute", "不能为负数，0 表示不限 (0 means no limit)")
    if not 1 <= smtp.port <= 65535:
        raise ConfigError(path, "smtp.port", "端口应在 1–65535 之间 (expected 1–65535)")
    if smtp.connections < 1:
        raise ConfigError(path, "smtp.connections", "至少为 1 (at least 1)")
    if "@" not in smtp.sender:
        raise ConfigError(path, "smtp.sender", f"不是邮箱地址 {smtp.sender!r} (not an email address)")
    _check_web(config)
    if "@" not in config.office.email:
        raise ConfigError(path, "office.email", f"不是邮箱地址 {config.office.email!r} (not an email address)")


def _check_web(config: Config) -> None:
    path, web = config.path, config.web
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", web.base_url):
        message = f"应为 http(s):// 开头的地址 {web.base_url!r} (expected an http(s) URL)"
        raise ConfigError(path, "web.base_url", message)
    if not web.bind:
        raise ConfigError(path, "web.bind", "不能为空 (must not be empty)")
    if not 1 <= web.port <= 65535:
        raise ConfigError(path, "web.port", "端口应在 1–65535 之间 (expected 1–65535)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", web.secret_env):
        message = f"不是环境变量名 {web.secret_env!r} (not an environment variable name)"
        raise ConfigError(path, "web.secret_env", message)
    if web.link_days is not None and not 1 <= web.link_days <= 366:
        raise ConfigError(path, "web.link_days", "应在 1–366 之间 (expected 1–366 days)")


_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """ "3d", "12h", "90m", "1d12h" → a timedelta."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"应为时长，如 3d、12h、90m，而不是 {text!r} (expected a duration such as 3d, 12h, 90m)")
    try:
        total = sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
    except OverflowError:
        total = timedelta.max
    if total > timedelta(days=366):
        raise ValueError(f"不能超过一年，而不是 {text!r} (at most a year)")
    return total


def cron_trigger(expression: str, timezone: str) -> Any:
    """APScheduler's CronTrigger for a 5-field expression (imported lazily: it is slow to import)."""
    from apscheduler.triggers.cron import CronTrigger

    if len(expression.split()) != 5:
        raise ValueError("需要 5 个字段：分 时 日 月 周 (expected 5 fields: minute hour day month weekday)")
    return CronTrigger.from_crontab(expression, timezone=timezone)
