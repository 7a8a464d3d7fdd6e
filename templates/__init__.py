"""The Jinja templates, shipped as the package `reminders.templates` (see reminders/bundle.py).

This file is needed: setuptools' editable install cannot import a mapped folder without one.
"""
