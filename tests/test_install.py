"""The templates ship as package data of reminders.templates, so any install finds them, not only a checkout.

Building and installing a real wheel is .ci/run's job; these tests check the same contract in milliseconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

from reminders.mail import render
from reminders.mail.render import Renderer
from reminders.web import pages
from tests.test_render import REMINDER

REPO = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
BUNDLED = Path(str(files("reminders.templates")))


def _packaged_templates() -> set[str]:
    """The template files the wheel carries: what pyproject's package-data globs pick from templates/."""
    patterns = SETUPTOOLS["package-data"]["reminders.templates"]
    return {name for pattern in patterns for name in glob.glob(pattern, root_dir=REPO / "templates", recursive=True)}


def test_it_ships_every_template_as_package_data() -> None:
    on_disk = {str(p.relative_to(REPO / "templates")) for p in (REPO / "templates").rglob("*")
               if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert on_disk == _packaged_templates()
    assert files("reminders.templates").joinpath("email/zh_CN/reminder-body.html").is_file()
    assert files("reminders.templates").joinpath("web/admin/dashboard.html").is_file()


def test_it_lists_every_package_of_the_source_tree() -> None:
    # pyproject lists the packages by hand (packages.find cannot see the mapped templates folder): a new
    # subpackage missing from that list would be missing from every wheel.
    found = {".".join(d.relative_to(REPO).parts) for d in (REPO / "reminders").rglob("*")
             if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))}
    assert set(SETUPTOOLS["packages"]) == {"reminders", "reminders.templates", *found}
    assert SETUPTOOLS["package-dir"] == {"reminders.templates": "templates"}


def test_it_loads_mail_and_web_templates_from_the_package() -> None:
    assert render.TEMPLATES_DIR == BUNDLED / "email"
    assert pages.TEMPLATES_DIR == BUNDLED / "web"
    assert {p.name for p in render.TEMPLATES_DIR.iterdir() if p.is_dir()} >= {"zh_CN", "en"}
    renderer = Renderer("en")
    assert renderer.env.loader.searchpath == [str(BUNDLED / "email" / "en"), str(BUNDLED / "email" / "zh_CN")]
    assert pages.make_env("zh_CN").get_template("form.html")


def test_it_renders_a_mail_from_an_install_without_the_checkout(tmp_path: Path) -> None:
    # The wheel's layout by hand: reminders/ with templates/ inside it as reminders/templates/, and no top-level
    # templates/ anywhere near, so a lookup relative to the source tree would find nothing.
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "reminders", site / "reminders", ignore=shutil.ignore_patterns("__pycache__"))
    for name in [*_packaged_templates(), "__init__.py"]:
        target = site / "reminders" / "templates" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "templates" / name, target)
    script = (
        "from reminders.mail import render\n"
        "from tests.test_render import REMINDER\n"
        "mail = render.Renderer('en').render('reminder', REMINDER)\n"
        "print(render.__file__, render.TEMPLATES_DIR, len(mail.html), sep='\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}  # the copy first; tests/ from REPO
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    module, templates, html_length = done.stdout.splitlines()
    assert Path(module) == site / "reminders" / "mail" / "render.py"
    assert Path(templates) == site / "reminders" / "templates" / "email"
    assert int(html_length) > 1000
    # In-process, the same context renders the same way from the editable install's templates.
    assert int(html_length) == len(Renderer("en").render("reminder", REMINDER).html)
