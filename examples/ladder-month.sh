#!/bin/sh
# The 督办 ladder on the bundled example data (README, "The ladder"): April's and May's reminders go out, five units
# report in April and four in May, then June's month runs — reminders, 督办通知, digests, a 临期提醒 and the chase —
# into var/maildir/. Run it on a fresh checkout (it starts from an empty database: rm -rf var first).
set -eu
cd "$(dirname "$0")/.."
REMINDERS_DEMO_WEB_SECRET="${REMINDERS_DEMO_WEB_SECRET:-demo-only-secret-do-not-use-in-production}"
export REMINDERS_DEMO_WEB_SECRET
run() { echo "\$ reminders $*"; reminders --config examples/reminders.toml "$@"; echo; }
quiet() { reminders --config examples/reminders.toml "$@" >/dev/null; }

# Every lead task of a unit still open on a day, as `status --format json` lists them.
open_tasks() {
    reminders --config examples/reminders.toml status --as-of "$2" --format json | python3 -c "
import json, sys
print(' '.join(t['number'] for t in json.load(sys.stdin)
               if t['lead_unit'] == sys.argv[1] and t['state'] not in ('done', 'unassigned')))" "$1"
}
report_all() {  # unit, day, percent
    for task in $(open_tasks "$1" "$2"); do
        quiet progress "$task" --unit "$1" --percent "$3" --note "按计划推进" --date "$2"
    done
}

quiet init
quiet import-plan examples/plan-2021.txt
quiet import-leaders examples/leaders.csv
quiet import-units examples/units.csv
quiet import-assignments examples/assignments.csv
quiet send --cycle 2021-04 --kind reminders
for unit in 办公室 民族工作处 宗教二处 政策法规处 信息中心; do report_all "$unit" 2021-04-23 30; done
quiet send --cycle 2021-05 --kind reminders
for unit in 办公室 民族工作处 政策法规处 信息中心; do report_all "$unit" 2021-05-24 50; done
run send --cycle 2021-06
run send --kind headsups --as-of 2021-06-21
run send --cycle 2021-06 --kind chases
run ladder --cycle 2021-06
