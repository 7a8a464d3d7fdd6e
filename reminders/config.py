"""The TOML configuration, validated once at start into frozen dataclasses.

Every error names the file and the key (`schedule.timezone`), so an operator can fix it without reading code.
Secrets never live in the file: `[smtp] password_env` names the environment variable that holds the password.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reminders.addresses import stored_domain
from reminders.config_calendar import Calendar, CalendarValueError, parse_calendar
from reminders.config_ladder import Ladder, LadderValueError, parse_ladder
from reminders.config_values import cron_trigger, parse_duration, valid_helo_name
from reminders.config_web import Web, web_problem
from reminders.errors import ReminderError

DEFAULT_PATH = "reminders.toml"
ENV_PATH = "REMINDERS_CONFIG"
# The From of mails written into a Maildir by a config that names no sender: plainly not a real address.
LOCAL_SENDER = "reminders@localhost"


class ConfigError(ReminderError):
    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass(frozen=True)
class Office:
    name: str = "督查室"
    email: str = ""  # the Reply-To; required with transport = "smtp", no default goes out
    contact: str = ""  # the person units may call, in every mail's footer
    phone: str = ""


@dataclass(frozen=True)
class Mail:
    language: str = "zh_CN"
    templates: Path | None = None
    message_id_domain: str | None = None
    address_form: str = "你单位"  # how a reminder addresses the unit: 你处 / 你单位 / 贵单位


@dataclass(frozen=True)
class Digest:
    attach_ledger: bool = True  # leaders whose scope is 全部 get the 工作台账 XLSX attached
    # A larger workbook is left out and the digest says so: 6 MB, base64 and all, keeps the digest under the
    # 10 MB that Postfix (message_size_limit) and Exchange take by default, which would refuse it whole.
    ledger_max_mb: float = 6.0


@dataclass(frozen=True)
class Delivery:
    transport: Literal["smtp", "maildir"] = "maildir"
    maildir: Path = Path("maildir")
    retry_every: str = "1m"  # the daemon's job that sends what is pending and due (put off, interrupted, receipts)
    give_up_after: str = "3d"  # a message failing this long is failed with the relay's last answer

    @property
    def retry_interval(self) -> timedelta:
        return parse_duration(self.retry_every)

    @property
    def give_up(self) -> timedelta:
        return parse_duration(self.give_up_after)


@dataclass(frozen=True)
class Smtp:
    """The `[smtp]` section, and the SMTP transport's settings once `password` is filled from the environment."""

    host: str = "localhost"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password_env: str | None = None
    sender: str = ""  # From and envelope sender, a bare address once loaded; required with transport = "smtp"
    sender_name: str = ""  # default: the display name written in `sender`, else [office] name
    timeout: float = 30.0
    connections: int = 2
    verify_certificates: bool = True
    retries: int = 3
    backoff: float = 1.0
    max_per_minute: int = 0  # 0: no limit
    helo_name: str = ""  # the EHLO/HELO name; "" (default): this machine's fully qualified name, socket.getfqdn()
    ca_file: Path | None = None  # PEM CA certificates that verify the relay (starttls/tls); default: the system's
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
    shift: str = "next"  # a run falling on a non-working day moves to the next / previous working day, or "none"
    headsup: str = "0 9 * * *"  # the daily 临期提醒 job

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.misfire_grace)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


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
    digest: Digest = field(default_factory=Digest)
    ladder: Ladder = field(default_factory=Ladder)  # config_ladder.py
    calendar: Calendar = field(default_factory=Calendar)  # config_calendar.py

    def from_address(self) -> str:
        """The From address: `[smtp] sender`, or a plainly local one for a Maildir config that names none."""
        return self.smtp.sender or LOCAL_SENDER

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
    "digest": Digest,
}
_CHOICES = {
    "delivery.transport": ("smtp", "maildir"),
    "mail.language": ("zh_CN", "en"),
    "smtp.security": ("none", "starttls", "tls"),
    "schedule.shift": ("next", "previous", "none"),
    "mail.address_form": ("你处", "你单位", "贵单位"),
}
_PATHS = {"delivery.maildir", "mail.templates", "smtp.ca_file"}
# Control characters, and the line and paragraph separators: anything str.splitlines() breaks on, which could start
# a new header line in a mail.
_BREAKING = {"Cc", "Zl", "Zp"}
_INTS = {"web.link_days"}  # optional integers (default None)


def resolve_path(explicit: str | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (a named file must exist)."""
    if explicit:
        return Path(explicit), True
    if os.environ.get(ENV_PATH):
        return Path(os.environ[ENV_PATH]), True
    return Path(DEFAULT_PATH), False


class NoConfigFile(ConfigError):
    """Neither --config nor $REMINDERS_CONFIG names a file and ./reminders.toml does not exist: nothing is guessed
    (a database made in whatever folder the command ran in, mail signed by nobody)."""

    def __init__(self, default: Path) -> None:
        self.default = default
        super().__init__(str(default), None, f"未找到配置文件：未指定 --config，环境变量 {ENV_PATH} 未设置，"
                         f"{default} 不存在；"
                         f"可复制 config.example.toml 为 reminders.toml 后修改 "
                         f"(no config file: no --config, ${ENV_PATH} unset, {default} does not exist)")


def load(explicit: str | None = None) -> Config:
    path, named = resolve_path(explicit)
    if not path.exists():
        if named:
            raise ConfigError(str(path), None, "配置文件不存在 (config file not found)")
        raise NoConfigFile(Path.cwd() / DEFAULT_PATH)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"不是有效的 TOML (invalid TOML): {exc}") from None
    return parse(data, str(path), path.resolve().parent)


def parse(data: dict[str, Any], path: str, base: Path) -> Config:
    """Validate a TOML mapping; relative paths and SQLite files are taken relative to `base`."""
    unknown = set(data) - set(_SECTIONS) - {"database", "calendar", "ladder"}
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
    _resolve_addresses(sections, "sender_name" in _table(data, "smtp", path), path)
    try:
        calendar = parse_calendar(_table(data, "calendar", path))
        ladder = parse_ladder(_table(data, "ladder", path))
    except (CalendarValueError, LadderValueError) as exc:
        raise ConfigError(path, exc.key, exc.message) from None
    config = Config(path=path, database_url=_anchor_sqlite(url, base), calendar=calendar, ladder=ladder,
                    **sections)
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
        if isinstance(value, str) and any(unicodedata.category(ch) in _BREAKING for ch in value):
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


_NAMED = re.compile(r"(.*?)\s*<([^<>]*)>")


def _resolve_addresses(sections: dict[str, Any], sender_name_set: bool, path: str) -> None:
    """Every address checked as mails are built, internationalised domains as punycode; `[smtp] sender` may be
    `Name <addr>`, whose name signs the mails unless `sender_name` is set (else `[office] name` does)."""
    office, smtp, mail = sections["office"], sections["smtp"], sections["mail"]
    name_in_sender, sender = "", smtp.sender.strip()
    if sender:
        named = _NAMED.fullmatch(sender)
        if named:
            name_in_sender, sender = named[1].strip(), named[2].strip()
            if len(name_in_sender) > 1 and name_in_sender[0] == name_in_sender[-1] == '"':
                name_in_sender = re.sub(r"\\(.)", r"\1", name_in_sender[1:-1])
        sender = _address(path, "smtp.sender", sender, smtp.sender)
    sender_name = smtp.sender_name if sender_name_set else (name_in_sender or office.name)
    sections["smtp"] = replace(smtp, sender=sender, sender_name=sender_name)
    if office.email:
        sections["office"] = replace(office, email=_address(path, "office.email", office.email.strip(), office.email))
    if mail.message_id_domain:
        domain = _domain(path, "mail.message_id_domain", mail.message_id_domain.strip())
        sections["mail"] = replace(mail, message_id_domain=domain)


def _address(path: str, key: str, text: str, written: str) -> str:
    local = text.rpartition("@")[0]
    if not local.isascii() and not re.search(r"[\s<>]", local):
        raise ConfigError(path, key, f"邮箱地址 {written!r} 的用户名部分只能用 ASCII 字符 "
                                     "(the local part must be ASCII)")
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, HeaderParseError, IndexError, AttributeError):  # the email parser trips on some input
        parsed = None
    if parsed is None or parsed.addr_spec != text or not parsed.username or not parsed.domain:
        raise ConfigError(path, key, f"不是邮箱地址 {written!r}，应为 name@example.org"
                                     f"{' 或 名称 <name@example.org>' if key == 'smtp.sender' else ''} "
                                     "(not an email address)")
    return f"{local}@{_domain(path, key, parsed.domain)}"


def _domain(path: str, key: str, domain: str) -> str:
    """`domain` as the ASCII form mails carry (punycode for an internationalised one), or a ConfigError: the same
    rules as the imported directory's addresses (reminders.addresses), stricter than what mime.make_message_id
    accepts, so a sender's domain always makes a Message-ID."""
    try:
        return stored_domain(domain)
    except ValueError as exc:
        raise ConfigError(path, key, str(exc)) from None


def _check(config: Config) -> None:
    path, schedule, smtp = config.path, config.schedule, config.smtp
    try:
        schedule.tz  # noqa: B018
    except (ZoneInfoNotFoundError, ValueError, OSError):
        message = f"未知时区 {schedule.timezone!r} (unknown IANA time zone)"
        raise ConfigError(path, "schedule.timezone", message) from None
    for key in ("reminders", "digests", "chase", "headsup"):
        expression = getattr(schedule, key)
        try:
            cron_trigger(expression, schedule.timezone)
        except ValueError as exc:
            raise ConfigError(path, f"schedule.{key}", f"无效的 cron 表达式 {expression!r} ({exc})") from None
    if not 1 <= schedule.report_day <= 31:
        raise ConfigError(path, "schedule.report_day", "应在 1–31 之间 (expected 1–31)")
    if schedule.due_soon_days < 0:
        raise ConfigError(path, "schedule.due_soon_days", "不能为负数 (must not be negative)")
    for key, text, least, most in (("schedule.misfire_grace", schedule.misfire_grace, "0s", None),
                                   ("delivery.retry_every", config.delivery.retry_every, "10s", None),
                                   ("delivery.give_up_after", config.delivery.give_up_after, "0s", None),
                                   ("web.receipt_window", config.web.receipt_window, "0s", "1d")):
        try:
            length = parse_duration(text)
        except ValueError as exc:
            raise ConfigError(path, key, str(exc)) from None
        if length < parse_duration(least) or (most is not None and length > parse_duration(most)):
            bounds = f"至少 {least} (at least {least})" if most is None else f"不能超过 {most} (at most {most})"
            raise ConfigError(path, key, bounds)
    if not 0 < config.digest.ledger_max_mb <= 1000:
        message = "应大于 0、不超过 1000 (MB) (expected more than 0, at most 1000)"
        raise ConfigError(path, "digest.ledger_max_mb", message)
    if smtp.max_per_minute < 0:
        raise ConfigError(path, "smtp.max_per_minute", "不能为负数，0 表示不限 (0 means no limit)")
    if not 1 <= smtp.port <= 65535:
        raise ConfigError(path, "smtp.port", "端口应在 1–65535 之间 (expected 1–65535)")
    if smtp.connections < 1:
        raise ConfigError(path, "smtp.connections", "至少为 1 (at least 1)")
    _check_smtp_identity(path, smtp)
    if problem := web_problem(config.web):
        raise ConfigError(path, *problem)
    if config.delivery.transport == "smtp":
        for key, value in (("smtp.sender", smtp.sender), ("office.email", config.office.email)):
            if not value:
                raise ConfigError(path, key, '使用 transport = "smtp" 时必须填写，系统不会代填地址 '
                                             '(required with transport = "smtp": no address is made up)')


def _check_smtp_identity(path: str, smtp: Smtp) -> None:
    if smtp.helo_name and not valid_helo_name(smtp.helo_name):
        raise ConfigError(path, "smtp.helo_name", f"不是有效的主机名 {smtp.helo_name!r}，应为 mail.bureau.example "
                                                  "这样的完整域名 (expected a fully qualified host name)")
    if smtp.ca_file is not None:
        try:
            ssl.create_default_context(cafile=str(smtp.ca_file))
        except FileNotFoundError:
            raise ConfigError(path, "smtp.ca_file", f"文件不存在 {smtp.ca_file} (file not found)") from None
        except ssl.SSLError as exc:
            raise ConfigError(path, "smtp.ca_file", f"不是 PEM 格式的 CA 证书文件 {smtp.ca_file} "
                                                    f"(not a PEM file of CA certificates: {exc})") from None
        except OSError as exc:
            raise ConfigError(path, "smtp.ca_file", f"无法读取 {smtp.ca_file} (cannot read: {exc})") from None
