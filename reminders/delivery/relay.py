"""The relay's side of a connection: the client as configured, one login, and the errors that stop a run."""

import socket
import ssl

import aiosmtplib

from reminders.config import Smtp as SmtpSettings
from reminders.config_values import valid_helo_name
from reminders.errors import ReminderError


class DeliveryError(ReminderError):
    """Stops the whole run; `unsettled` lists envelopes claimed but not settled (the caller releases them)."""

    def __init__(self, message: str, unsettled: list[int] | None = None) -> None:
        super().__init__(message)
        self.unsettled: list[int] = list(unsettled or [])


class RelayUnreachable(DeliveryError):
    """The circuit breaker tripped: the relay failed to answer BREAKER times in a row; the rest stays pending.
    `last`: the last fault itself, short, as recorded for the message that met it."""

    last: str = ""


# Consecutive connection failures or timeouts, across a run's connections, after which the run stops trying.
BREAKER = 3


class Retry(Exception):
    """A transient fault: the attempt may succeed later."""


def answer(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def fault(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"  # for faults that are not a server answer


def client(s: SmtpSettings) -> aiosmtplib.SMTP:
    """An unconnected client as `[smtp]` says: TLS mode, certificates (`ca_file`), and the EHLO name."""
    # start_tls=False (not None) for "none": no opportunistic upgrade that could fail on a self-signed cert.
    return aiosmtplib.SMTP(
        hostname=s.host,
        port=s.port,
        timeout=s.timeout,
        use_tls=s.security == "tls",
        start_tls=s.security == "starttls",
        validate_certs=s.verify_certificates,
        cert_bundle=str(s.ca_file) if s.ca_file is not None and s.verify_certificates else None,
        local_hostname=s.helo_name or socket.getfqdn(),
    )


async def login(smtp: aiosmtplib.SMTP, username: str, password: str) -> None:
    """One AUTH with the best mechanism both sides support (aiosmtplib's ranking: CRAM-MD5, PLAIN, LOGIN): a
    refused password is never tried again another way, so a wrong one costs one failed login per run, not one per
    mechanism and connection (relay lock-outs, fail2ban)."""
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()
    methods = smtp.supported_auth_methods if smtp.supports_extension("auth") else []
    if not methods:
        await smtp.login(username, password)  # raises aiosmtplib's clear "AUTH not supported" error
        return
    await getattr(smtp, f"auth_{methods[0].replace('-', '')}")(username, password)


# What an SSL handshake says when the other side does not speak TLS at all (a plain SMTP port).
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL",
            "HTTP_REQUEST", "UNEXPECTED_RECORD", "TLSV1_ALERT_PROTOCOL_VERSION"}


def tls_error(where: str, security: str, exc: ssl.SSLError) -> DeliveryError:
    if security == "tls" and getattr(exc, "reason", None) in _NOT_TLS:
        return DeliveryError(
            f'[smtp] security 设置有误：security = "tls"，但 {where} 不是加密端口，连接时未使用 TLS；'
            f'请改为 security = "starttls"（通常端口 587 或 25）或 "none"，或改用 465 端口 '
            f"(configuration error: [smtp] security = \"tls\" but {where} does not speak TLS from the first byte: "
            f"{exc}; use security = \"starttls\" or \"none\", or the server's implicit-TLS port)")
    return DeliveryError(f"与 {where} 的 TLS 连接失败 (TLS failure with {where}: {exc})")


def starttls_missing(where: str) -> DeliveryError:
    return DeliveryError(
        f'[smtp] security 设置有误：security = "starttls"，但 {where} 不提供 STARTTLS；'
        f'若是 465 这类加密端口请改为 security = "tls"，否则请确认端口 '
        f'(configuration error: [smtp] security = "starttls" but {where} does not offer STARTTLS; '
        f'use security = "tls" for an implicit-TLS port such as 465, or check the port)')


def check_settings(settings: SmtpSettings) -> None:
    s = settings
    checks = {
        "host must be a non-empty name without line breaks": bool(s.host) and not any(c in s.host for c in "\r\n"),
        "port must be 1-65535": 0 < s.port < 65536,
        "security must be none, starttls or tls": s.security in ("none", "starttls", "tls"),
        "a password is set but no username": s.password is None or s.username is not None,
        "timeout must be > 0": s.timeout > 0,
        "connections and retries must be >= 1, backoff >= 0": min(s.connections, s.retries) >= 1 and s.backoff >= 0,
        "max_per_minute must be >= 0 (0: no limit)": s.max_per_minute >= 0,
        "helo_name must be a host name": not s.helo_name or valid_helo_name(s.helo_name),
    }
    if problems := [problem for problem, ok in checks.items() if not ok]:
        raise DeliveryError("bad SMTP settings: " + "; ".join(problems))


def rate_breaker(strikes: int, answer: str) -> RelayUnreachable:
    error = RelayUnreachable(
        f"SMTP 服务器连续 {strikes} 次以发送过快为由拒收（{answer}），已停止本次发送，未发出的邮件仍为待发送，"
        f"稍后会重试 (the relay refused {strikes} times in a row for sending too fast, even at a lower pace; the "
        f"run stopped, unsent messages stay pending)")
    error.last = f"发送过快被拒收 (refused as too fast): {answer}"
    return error


def fewer_connections(answer: str, still_open: int) -> str:
    return (f"SMTP 服务器拒绝更多连接（{answer}），本次运行改用 {still_open} 个连接；可在 [smtp] connections 中设定 "
            f"(the relay refused one more connection: this run goes on with {still_open}; set [smtp] connections "
            f"to what it allows)")


def slower(answer: str, limit: int) -> str:
    return (f"SMTP 服务器要求放慢发送（{answer}），本次运行降至每分钟 {limit} 封；可在 [smtp] max_per_minute 中设定 "
            f"(the relay asked for a slower pace: this run now sends at most {limit} per minute; set "
            f"[smtp] max_per_minute to a pace it accepts)")
