#!/bin/sh
# The monthly cycle on the bundled example data: the 2021 plan, its units, leaders and assignments,
# two progress reports, then June 2021's reminders and digests delivered into var/maildir/.
set -eu
cd "$(dirname "$0")/.."
run() { echo "\$ reminders $*"; reminders --config examples/reminders.toml "$@"; echo; }

run init
run import-plan examples/plan-2021.txt
run import-leaders examples/leaders.csv
run import-units examples/units.csv
run import-assignments examples/assignments.csv
run progress 3 --unit 民族工作处 --percent 60 --note "已开展主题宣讲12场，覆盖群众3000余人" --date 2021-06-18
run progress 8 --unit 民族工作处 --done --note "清真食品管理办法修订完成" --date 2021-06-19
run status --as-of 2021-06-20
run send --cycle 2021-06
echo "Open the mails: var/maildir/new/ (any mail client reads a Maildir; each file is one .eml)."
ls var/maildir/new | sed 's/^/  /'
