"""Issue 11, findings 1 and 3: the web process never talks SMTP (a relay that never answers cannot freeze
`reminders serve` or keep it from stopping), a unit's receipts are coalesced within `[web] receipt_window`, and a
link takes at most `[web] submissions_per_hour` submissions an hour."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select

from reminders.config import ConfigError, load
from reminders.daemon import Finisher
from reminders.delivery import dispatch, outbox
from reminders.store.db import make_engine, session_scope
from reminders.store.models import OutboxMessage, ProgressReport, Unit
from reminders.tracking import links
from tests.conftest import Cli, write_config
from tests.smtpserver import RecordingServer, free_port
from tests.test_mime import HTML_CUT, unflowed
from tests.websupport import NOW, SECRET, Site, answer, open_site

UNIT = "宗教二处"  # leads 10 and 12, co-operates on 1 and 2


def lead_answers(note: str = "完成疫情防控检查3次") -> dict[str, str]:
    return answer("10", note, percent="50") | answer("12", "指导宗教团体换届2个", percent="80")


def wait_for(condition: Callable[[], object], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# A relay that accepts connections and never answers --------------------------------------------------------------


class BlackHole:
    """Accepts every connection and never says a word: not even the SMTP greeting."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def configure(cli: Cli, *, smtp_port: int | None = None, retry_every: str = "10s", web: str = "") -> int:
    """Point the loaded CLI's config at `smtp_port` and a free web port; returns the web port."""
    text = cli.config.read_text(encoding="utf-8")
    if smtp_port is not None:
        text = re.sub(r"(?m)^port = \d+$", f"port = {smtp_port}", text, count=1)
    text = text.replace('maildir = "maildir"\n', f'maildir = "maildir"\nretry_every = "{retry_every}"\n')
    port = free_port()
    cli.config.write_text(text + f'\n[web]\nbind = "127.0.0.1"\nport = {port}\n{web}\n', encoding="utf-8")
    return port


@contextmanager
def serving(cli: Cli, port: int, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    env = os.environ | {"REMINDERS_WEB_SECRET": SECRET}
    command = [sys.executable, "-m", "reminders", "--config", str(cli.config), "serve", *args]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            def up() -> bool:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else "exited"
                try:
                    return client.get("/healthz").text == "ok"
                except httpx.TransportError:
                    return False

            wait_for(up, "reminders serve to start")
            yield server, client
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=10)


def stop(server: subprocess.Popen[bytes]) -> tuple[float, str]:
    """SIGTERM, as systemd stops it: how long it took, and what it wrote to stderr."""
    server.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, stderr = server.communicate(timeout=30)
    return time.monotonic() - started, stderr.decode("utf-8", "replace")


def live_link(cli: Cli, unit: str) -> str:
    """The unit's link for this month, as today's reminder carries it."""
    config = load(str(cli.config))
    engine = make_engine(config.database_url)
    with session_scope(engine) as session:
        unit_id = session.scalars(select(Unit.id).where(Unit.name == unit)).one()
    engine.dispose()
    today = datetime.now(config.schedule.tz).date()
    return "/r/" + links.make_token(SECRET.encode(), unit_id, today.strftime("%Y-%m"), today + timedelta(days=40))


def every_task(client: httpx.Client, link: str, note: str) -> dict[str, str]:
    """A note for every task on the unit's form (whichever are open this month)."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    numbers = re.findall(r'name="([0-9.]+)\.note"', page.text)
    assert numbers, page.text
    return {field: value for number in numbers for field, value in answer(number, note).items()}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_relay_that_never_answers_neither_freezes_the_server_nor_keeps_it_from_stopping(
        loaded: Cli, black_hole: BlackHole) -> None:
    """Finding 1, replayed: 45 submissions with a relay that accepts and never answers used to take every worker
    thread (each sent its receipt on one), so /healthz and the form hung for ~95 s and SIGTERM did not stop it."""
    port = configure(loaded, smtp_port=black_hole.port, web="receipt_window = \"0s\"\nsubmissions_per_hour = 100")
    link = live_link(loaded, UNIT)
    with serving(loaded, port) as (server, client):
        form = every_task(client, link, "本月进展")
        slowest = 0.0
        for number in range(45):
            started = time.monotonic()
            response = client.post(link, data=form | {"10.note": f"第{number}次报送"})
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200 and "报送成功" in response.text, response.text
        wait_for(lambda: black_hole.held, "the sender to reach the relay")  # the serve sender is stuck on it now
        started = time.monotonic()
        for _ in range(5):
            assert client.get("/healthz", timeout=10).text == "ok"
            assert client.get(link, timeout=10).status_code == 200
        answered = (time.monotonic() - started) / 10
        stopped, stderr = stop(server)
    print(f"slowest submission {slowest:.3f} s, healthz/form {answered * 1000:.0f} ms, stopped in {stopped:.2f} s")
    assert slowest < 5 and answered < 2
    assert stopped < 15 and server.returncode == 0
    assert "the receipt sender did not finish" in stderr and "Traceback" not in stderr and "Fatal" not in stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_serve_sender_delivers_the_receipts_and_no_sender_leaves_them_to_the_daemon(
        loaded: Cli, smtp: RecordingServer) -> None:
    port = configure(loaded, web='receipt_window = "0s"')
    link = live_link(loaded, UNIT)
    with serving(loaded, port, "--no-sender") as (server, client):
        started = time.monotonic()
        assert client.post(link, data=every_task(client, link, "不发回执时")).status_code == 200
        time.sleep(max(0.0, 12 - (time.monotonic() - started)))  # beyond a turn of retry_every (10 s)
        assert smtp.messages == []  # the daemon's to send
        stop(server)
    with serving(loaded, port) as (server, client):
        assert client.post(link, data=every_task(client, link, "由网页服务发送")).status_code == 200
        wait_for(lambda: len(smtp.messages) == 2, "the serve sender to deliver the receipts", 40)
        stopped, stderr = stop(server)
        assert stopped < 15 and server.returncode == 0 and "Traceback" not in stderr
    subjects = [str(message_from_bytes(m.data, policy=policy.default)["Subject"]) for m in smtp.messages]
    assert all(subject.startswith("【回执】") for subject in subjects)
    assert {m.recipients for m in smtp.messages} == {("zongjiao2@example.org",)}
    bodies = sorted(m.data.decode("ascii", "replace") for m in smtp.messages)
    assert len(set(bodies)) == 2  # two receipts: the one left by --no-sender, and the new one


# Coalescing ----------------------------------------------------------------------------------------------------


def receipts(site: Site) -> list[OutboxMessage]:
    return sorted(site.outbox("receipt"), key=lambda row: row.id)


def text_of(data: bytes) -> str:
    body = message_from_bytes(data, policy=policy.default).get_body(("plain",))
    return str(body.get_content()).replace("\r\n", "\n")  # type: ignore[union-attr]


@contextmanager
def windowed(loaded: Cli, monkeypatch: pytest.MonkeyPatch, web: str) -> Iterator[Site]:
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write(f"\n[web]\n{web}\n")
    with open_site(loaded, monkeypatch) as site:
        yield site


def test_a_units_submissions_within_the_window_make_one_receipt_listing_every_change(
        loaded: Cli, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with windowed(loaded, monkeypatch, 'receipt_window = "4s"') as site:
        assert site.client.post(site.link(UNIT), data=lead_answers("第一次报送：检查3次")).status_code == 200
        [first] = receipts(site)
        assert first.state == "pending" and first.next_attempt_at is not None
        assert first.next_attempt_at - first.created_at == timedelta(seconds=4)  # due when the window ends
        assert site.client.post(site.link(UNIT), data=lead_answers("更正：检查4次")).status_code == 200
        [again] = receipts(site)  # the same receipt, rebuilt
        assert (again.id, again.recipient_key, again.next_attempt_at) == (first.id, first.recipient_key,
                                                                         first.next_attempt_at)
        text = text_of(again.body.data)
        assert "第一次报送：检查3次" in text and "更正：检查4次" in text and text.count("指导宗教团体换届2个") == 2
        assert "（已被下方更正）\n  状态：" in text and text.index("第一次报送") < text.index("更正：检查4次")
        assert "2 项重点工作任务" in text

        finisher = Finisher(site.config, site.engine, kinds=("receipt",))
        finisher()
        assert smtp.messages == []  # the window is still open
        wait_for(lambda: datetime.now(UTC) >= _utc(again.next_attempt_at), "the window to end", 10)
        finisher()
        [mail] = smtp.messages
        assert mail.recipients == ("zongjiao2@example.org",) and "更正：检查4次" in text_of(mail.data)
        assert [row.state for row in receipts(site)] == ["sent"]

        assert site.client.post(site.link(UNIT), data=lead_answers("发送后又报送")).status_code == 200
        sent, new = receipts(site)  # after it was sent, the next submission starts a new receipt
        assert (sent.state, new.state) == ("sent", "pending")
        assert "发送后又报送" in text_of(new.body.data) and "更正：检查4次" not in text_of(new.body.data)
        other = site.client.post(site.link("信息中心"), data=answer("13", "平台已上线", percent="60"))
        assert other.status_code == 200 and len(receipts(site)) == 3  # another unit's receipt is its own


def test_a_receipt_of_a_2000_character_report_travels_as_8bit_and_reads_back_whole(
        loaded: Cli, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The form takes 2,000 characters a field, and the receipt shows each on one line: 6,000 octets, past SMTP's
    998. The line is cut where the reader sees nothing (mail.wrap), so the receipt is not sent as base64."""
    report = ("已完成全市宗教活动场所安全检查，覆盖率100%；" * 80)[:2000]
    with windowed(loaded, monkeypatch, 'receipt_window = "0s"') as site:
        form = answer("10", report, percent="50") | answer("12", "指导宗教团体换届2个", percent="80")
        response = site.client.post(site.link(UNIT), data=form)
        assert response.status_code == 200, response.text[-600:]
        Finisher(site.config, site.engine, kinds=("receipt",))()
        [mail] = smtp.messages
    message = message_from_bytes(mail.data, policy=policy.default)
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert (plain["Content-Transfer-Encoding"], html["Content-Transfer-Encoding"]) == ("8bit", "8bit")
    assert plain.get_param("format") == "flowed" and plain.get_param("delsp") == "yes"
    assert max(map(len, mail.data.split(b"\r\n"))) <= 998
    assert f"进展情况：{report}\r\n" in unflowed(str(plain.get_content()))
    assert f"进展情况：{report}</div>" in str(html.get_content()).replace(HTML_CUT, "")


def _utc(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def test_a_receipt_a_sender_has_claimed_is_not_changed_under_it(
        loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with windowed(loaded, monkeypatch, 'receipt_window = "10m"') as site:
        assert site.client.post(site.link(UNIT), data=lead_answers("第一次")).status_code == 200
        [claimed] = outbox.claim(site.engine, None, ["receipt"], "ducha@example.org")  # being sent right now
        assert site.client.post(site.link(UNIT), data=lead_answers("第二次")).status_code == 200
        first, second = receipts(site)
        assert first.id == claimed.envelope.key and first.body.data == claimed.envelope.data
        assert (first.state, second.state) == ("sending", "pending")
        assert "第一次" not in text_of(second.body.data) and "第二次" in text_of(second.body.data)


def test_the_retry_job_of_serve_sends_receipts_only(loaded: Cli, smtp: RecordingServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with windowed(loaded, monkeypatch, 'receipt_window = "0s"') as site:
        assert dispatch.prepare_cycle(site.engine, site.config, "2021-06", ["reminder"], date(2021, 6, 20)) == 7
        assert site.client.post(site.link(UNIT), data=lead_answers()).status_code == 200
        result = Finisher(site.config, site.engine, kinds=("receipt",))()
        assert result is not None and len(result.sent) == 1
        assert [str(message_from_bytes(m.data, policy=policy.default)["Subject"])[:4] for m in smtp.messages] == [
            "【回执】"]
        with session_scope(site.engine) as session:
            states = session.scalars(select(OutboxMessage.state).where(OutboxMessage.kind == "reminder")).all()
        assert set(states) == {"pending"} and len(states) == 7  # the monthly run's, not serve's


# Per-link limits -----------------------------------------------------------------------------------------------


def web_reports(site: Site, unit: str) -> int:
    with session_scope(site.engine) as session:
        return len(session.scalars(select(ProgressReport.id).where(
            ProgressReport.unit_id == site.unit_id(unit), ProgressReport.source == "web")).all())


def test_a_link_takes_six_submissions_an_hour_then_says_when_to_come_back(
        loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_site(loaded, monkeypatch) as site:
        assert site.config.web.submissions_per_hour == 6  # the default
        for number in range(6):
            site.clock.now = NOW + timedelta(minutes=5 * number)
            assert site.client.post(site.link(UNIT), data=lead_answers(f"第{number}次")).status_code == 200
        assert web_reports(site, UNIT) == 12
        site.clock.now = NOW + timedelta(minutes=30)
        refused = site.client.post(site.link(UNIT), data=lead_answers("第七次"))
        assert refused.status_code == 429
        assert "提交过于频繁" in refused.text and "未记录" in refused.text
        assert "请于 2021-06-21 11:00（Asia/Shanghai） 之后再提交" in refused.text  # the first one is an hour old
        assert refused.headers["retry-after"] == str(30 * 60)
        assert refused.headers["x-frame-options"] == "DENY"
        assert web_reports(site, UNIT) == 12 and len(site.outbox("receipt")) == 1  # nothing recorded, no mail
        assert site.client.get(site.link(UNIT)).status_code == 200  # the form still opens

        other = site.client.post(site.link("信息中心"), data=answer("13", "平台已上线", percent="60"))
        assert other.status_code == 200  # another unit's link is not limited by this one's

        site.clock.now = NOW + timedelta(hours=1)  # the first submission has left the hour
        assert site.client.post(site.link(UNIT), data=lead_answers("一小时后")).status_code == 200
        site.clock.now = NOW + timedelta(minutes=61)
        again = site.client.post(site.link(UNIT), data=lead_answers("又一次"))
        assert again.status_code == 429 and "2021-06-21 11:05（Asia/Shanghai）" in again.text
        assert web_reports(site, UNIT) == 14


def test_the_limit_counts_submissions_not_refused_forms(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with windowed(loaded, monkeypatch, "submissions_per_hour = 1") as site:
        for _ in range(3):  # a form sent back with a mistake is no submission
            assert site.client.post(site.link(UNIT), data=answer("10", "只填一项")).status_code == 400
        assert site.client.post(site.link(UNIT), data=lead_answers()).status_code == 200
        assert site.client.post(site.link(UNIT), data=lead_answers()).status_code == 429


@pytest.mark.parametrize(("line", "key"), [
    ('receipt_window = "soon"', "web.receipt_window"),
    ('receipt_window = "2d"', "web.receipt_window"),
    ("submissions_per_hour = 0", "web.submissions_per_hour"),
    ('submissions_per_hour = "6"', "web.submissions_per_hour"),
])
def test_it_refuses_a_bad_web_limit_and_names_the_key(tmp_path: Path, line: str, key: str) -> None:
    config = write_config(tmp_path / "reminders.toml", f"sqlite:///{tmp_path / 'x.sqlite3'}", extra=f"[web]\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load(str(config))


def test_a_flood_from_one_link_records_six_submissions_and_one_receipt(loaded: Cli, smtp: RecordingServer) -> None:
    """Finding 3, replayed: 50 submissions in 4 s used to record 50 times and mail 50 receipts. Now 30 at once,
    10 in parallel: the hour's 6 are recorded, one receipt lists them, the rest answer 429 and record nothing."""
    port = configure(loaded)
    link = live_link(loaded, UNIT)
    with serving(loaded, port) as (server, client):
        form = every_task(client, link, "洪水")
        with ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(lambda n: client.post(link, data=form | {"10.note": f"第{n}次"}).status_code,
                                     range(30)))
        assert sorted(statuses) == [200] * 6 + [429] * 24
        assert client.get("/healthz").text == "ok"
        stop(server)
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with session_scope(engine) as session:
        times = set(session.scalars(select(ProgressReport.created_at).where(ProgressReport.source == "web")))
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "receipt")).all()
        assert len(times) == 6 and len(rows) == 1 and rows[0].state == "pending"  # due in 10 minutes
        assert sum(f"第{n}次" in text_of(rows[0].body.data) for n in range(30)) == 6
    engine.dispose()
    assert smtp.messages == []
