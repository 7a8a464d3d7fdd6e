"""The one base of every error a user can fix, so the CLI and the web app each map them to a message in one place."""

from __future__ import annotations


class ReminderError(Exception):
    """A refusal the person at the keyboard can act on: bad input, a wrong config, a database not set up.

    `str()` is the whole message, Chinese first, naming the file, row, key or task concerned; the CLI prints it and
    exits 1, the web app shows it on an error page. Anything else that escapes is a bug.
    """
