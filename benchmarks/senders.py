"""The two baselines: the limit (pre-rendered bytes, bare aiosmtplib, reused connections) and a naive cron sender."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import aiosmtplib

from reminders.config import Config
from reminders.mail.draft import Draft
from reminders.mail.message import render_draft
from reminders.mail.render import Renderer

Message = tuple[Sequence[str], bytes]


async def _bare_worker(host: str, port: int, sender: str, messages: Iterator[Message]) -> None:
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=60)
    await smtp.connect()
    for recipients, data in messages:  # one iterator shared by every worker: each message is sent once
        await smtp.sendmail(sender, list(recipients), data)
    await smtp.quit()


def bare_aiosmtplib(host: str, port: int, sender: str, messages: Iterable[Message], connections: int) -> None:
    shared = iter(messages)

    async def run() -> None:
        await asyncio.gather(*(_bare_worker(host, port, sender, shared) for _ in range(connections)))

    asyncio.run(run())


def naive_smtplib(config: Config, drafts: Sequence[Draft]) -> None:
    """Render, build, connect, send, quit: one message at a time, as a cron script would."""
    renderer = Renderer(config.mail.language, config.mail.templates)
    now = datetime.now(config.schedule.tz)
    smtp = config.smtp
    for draft in drafts:
        message = render_draft(config, renderer, draft, now)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=60) as client:
            client.sendmail(smtp.sender, list(message.addresses), message.data)
