"""reminders: monthly reminders and leader digests for an annual work plan (督查督办)."""

__version__ = "0.1.0"
