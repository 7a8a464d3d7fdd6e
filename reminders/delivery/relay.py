"""The relay's side of a connection: the client as configured, one login, and the errors that stop a run."""

import socket
import ssl

import aiosmtplib

from reminders.config import Smtp as SmtpSettings
from reminders.errors import ReminderError


class DeliveryError(ReminderError):
    """Stops the whole run; `unsettled` lists envelopes claimed but not settled (the caller releases them)."""

    def __init__(self, message: str, unsettled: list[int] | None = None) -> None:
        super().__init__(message)
        self.unsettled: list[int] = list(unsettled or [])


class RelayUnreachable(DeliveryError):
    """The circuit breaker tripped: the relay failed to answer BREAKER times in a row; the rest stays pending."""


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
