"""`reminders outbox` shows when each message went out in [schedule] timezone, saying which; JSON keeps ISO 8601
with the offset."""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.conftest import Cli


def test_it_shows_the_sending_time_in_the_schedules_zone(loaded: Cli) -> None:
    before = datetime.now(ZoneInfo("Asia/Shanghai"))
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    records = json.loads(loaded("outbox", "--format", "json").output)
    assert len(records) == 7
    for record in records:
        for key in ("sent_at", "created_at"):
            moment = datetime.fromisoformat(record[key])
            assert moment.utcoffset() == timedelta(hours=8), record
            assert timedelta(0) <= moment - before < timedelta(minutes=10), record
    lines = loaded("outbox").output.splitlines()
    assert lines[0].split() == ["编号", "周期", "类别", "收件人", "状态", "次数", "发送时间", "地址", "/", "错误"]
    first = records[0]
    shown = datetime.fromisoformat(first["sent_at"]).strftime("%Y-%m-%d %H:%M +0800")
    assert lines[2].startswith(f"{first['id']:<4}  2021-06  提醒  {first['recipient']}")
    assert f"  已发送  1     {shown}  {first['addresses'][0]}" in lines[2]
