"""The Maildir transport: each message a file in a local folder (the embedded default, and the demo's)."""

import mailbox
from pathlib import Path

from reminders.delivery.relay import DeliveryError
from reminders.delivery.relay import fault as _fault
from reminders.delivery.smtp import Claim, Outcome, Settle


def deliver_maildir(folder: Path, claim: Claim, settle: Settle) -> None:
    try:
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips these when `folder` already exists
            (folder / sub).mkdir(parents=True, exist_ok=True)
        box = mailbox.Maildir(folder, create=True)
    except OSError as exc:
        raise DeliveryError(f"cannot use {folder} as a Maildir: {exc}") from exc
    while (env := claim()) is not None:
        try:
            # Local line endings, so the file reads cleanly in a text editor as well as a mail client.
            box.add(env.data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            settle(Outcome(env.key, sent=False, error=_fault(exc)))
        else:
            settle(Outcome(env.key, sent=True))
