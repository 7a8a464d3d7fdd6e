"""Files shipped inside the package: the Jinja templates.

They live in the repository's top-level templates/ (email/<language>/ for the mails, web/ for the web app) and ship
as the package data of `reminders.templates` (pyproject.toml maps the folder onto that package), so a checkout, an
editable install and a wheel find them alike. Found by name through importlib.resources, never by a path relative
to this file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

TEMPLATES = "reminders.templates"


def template_folder(name: str) -> Path:
    """The real directory of one template set ("email", "web"): Jinja's FileSystemLoader cannot read from a zip."""
    path = Path(str(files(TEMPLATES).joinpath(name)))
    if not path.is_dir():
        raise RuntimeError(f"the bundled templates {name}/ are not a directory on disk ({path}); "
                           "install reminders with pip (unzipped), not from a zip or zipapp")
    return path
