"""The README's demo, run as a user runs it (a real `sh examples/demo.sh`, in a copy of the checkout's examples):
it sets a demo-only web secret so every reminder carries its report link, prints the links, and writes the
month's mails as .eml files that open with a double-click."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
from email import policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _demo(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("REMINDERS_DEMO_WEB_SECRET", None)
    env.pop("REMINDERS_CONFIG", None)
    return subprocess.run(["sh", str(root / "examples" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=300)


def test_it_runs_the_demo_with_report_links_and_eml_files(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = _demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "填报链接 report links: 已开启，密钥取自环境变量 REMINDERS_DEMO_WEB_SECRET" in done.stdout
    links = done.stdout.split("Each unit's report link, as its reminder carries it:\n", 1)[1].split("\n\n", 1)[0]
    lines = links.splitlines()
    assert len(lines) == 7, links
    assert all(line.startswith("  ") and ": http://127.0.0.1:8025/r/" in line for line in lines), links
    preview = tmp_path / "var" / "preview"
    assert f"  {preview}/\n" in done.stdout
    emls = sorted(preview.glob("*.eml"))
    # 7 reminders, 4 digests and the 督办通知 to 机关党委, whose task 17 (due 31 March) is over 30 days overdue
    assert len(emls) == 12 and len([path for path in emls if path.name.startswith("escalation-")]) == 1
    assert len(list((tmp_path / "var" / "maildir" / "new").iterdir())) == 12
    first = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert first["Auto-Submitted"] == "auto-generated"
    footer = first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "联系人：王敏，电话：0371-65500000" in footer

