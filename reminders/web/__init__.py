"""The web layer: a unit's report form behind its signed link, and the office dashboard. No business logic here."""

from reminders.web.app import create_app

__all__ = ["create_app"]
