#!/bin/sh
# The monthly cycle on the bundled example data: the 2021 plan, its units, leaders and assignments,
# two progress reports, then June 2021's reminders and digests delivered into var/maildir/, and the same
# messages written as .eml files into var/preview/ (double-click one to open it in a mail program).
set -eu
cd "$(dirname "$0")/.."
# A secret for the report links of this demo only (examples/reminders.toml names this variable): with it every
# reminder carries its unit's link to the report form. A real deployment sets its own, never this one.
REMINDERS_DEMO_WEB_SECRET="${REMINDERS_DEMO_WEB_SECRET:-demo-only-secret-do-not-use-in-production}"
export REMINDERS_DEMO_WEB_SECRET
run() { echo "\$ reminders $*"; reminders --config examples/reminders.toml "$@"; echo; }

run check-config
run init
run import-plan examples/plan-2021.txt
run import-leaders examples/leaders.csv
run import-units examples/units.csv
run import-assignments examples/assignments.csv
run progress 3 --unit 民族工作处 --percent 60 --note "已开展主题宣讲12场，覆盖群众3000余人" --date 2021-06-18
run progress 8 --unit 民族工作处 --done --note "清真食品管理办法修订完成" --date 2021-06-19
run status --as-of 2021-06-20
run send --cycle 2021-06
run preview --cycle 2021-06 --out var/preview
echo "The mails as delivered: var/maildir/new/ (one file per mail; mutt -f var/maildir, or any Maildir reader)."
ls var/maildir/new | sed 's/^/  /'
echo
echo "The same mails as .eml files, which open with a double-click (Outlook, Thunderbird, Foxmail, Apple Mail):"
echo "  $(pwd)/var/preview/"
echo
echo "Each unit's report link, as its reminder carries it:"
python3 - var/preview <<'PY'
import email
import sys
from email import policy
from pathlib import Path

for path in sorted(Path(sys.argv[1]).glob("reminder-*.eml")):
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(("plain",))
    for line in body.get_content().splitlines() if body is not None else ():
        if "/r/" in line and line.startswith("点击填报"):
            print(f"  {message['To'].addresses[0].display_name}: {line.split('：', 1)[1]}")
PY
echo
echo "The form behind a link is served by: REMINDERS_DEMO_WEB_SECRET=... reminders --config examples/reminders.toml serve"
echo "(links expire at the end of the next month: these June 2021 ones have; a current month's link opens the form)"
