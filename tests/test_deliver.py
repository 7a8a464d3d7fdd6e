import asyncio
import logging
import shutil
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from reminders.delivery.maildir import deliver_maildir
from reminders.delivery.pacing import Throttle
from reminders.delivery.smtp import (
    BREAKER,
    DeliveryError,
    Envelope,
    Outcome,
    RelayUnreachable,
    SmtpSettings,
    _deliver_smtp,
    deliver_smtp,
)
from tests.smtpserver import RecordingServer, free_port, self_signed_context

PASSWORD = "correct-horse-battery"


class Outbox:
    """Stands in for the database outbox: hands out envelopes, records outcomes once each."""

    def __init__(self, envelopes: Iterable[Envelope]) -> None:
        self.pending = deque(envelopes)
        self.outcomes: dict[int, Outcome] = {}

    def claim(self) -> Envelope | None:
        return self.pending.popleft() if self.pending else None

    def settle(self, outcome: Outcome) -> None:
        assert outcome.key not in self.outcomes, f"settled twice: {outcome.key}"
        self.outcomes[outcome.key] = outcome


def envelope(key: int, recipients: tuple[str, ...] = ("ann@example.org",)) -> Envelope:
    msg = EmailMessage()
    msg["From"] = "office@example.org"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"Reminder {key}"
    msg["Message-ID"] = f"<reminder-{key}@example.org>"
    msg.set_content(f"Monthly progress is due (item {key}).\n.a line starting with a dot\n")
    return Envelope(key, "office@example.org", recipients, msg.as_bytes(policy=SMTP_POLICY), msg["Message-ID"])


def run_smtp(settings: SmtpSettings, envelopes: Iterable[Envelope]) -> Outbox:
    outbox = Outbox(envelopes)
    asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))
    return outbox


def settings_for(server: RecordingServer, **overrides: Any) -> SmtpSettings:
    base: dict[str, Any] = {"host": server.host, "port": server.port, "timeout": 5.0, "backoff": 0.01}
    return SmtpSettings(**(base | overrides))


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


@pytest.fixture
def auth_server() -> Iterator[RecordingServer]:
    with RecordingServer(username="office", password=PASSWORD) as srv:
        yield srv


def test_it_delivers_every_envelope_once_over_two_connections(server: RecordingServer) -> None:
    envelopes = [envelope(key) for key in range(1, 21)]
    outbox = run_smtp(settings_for(server, connections=2), envelopes)

    assert outbox.outcomes == {e.key: Outcome(e.key, sent=True) for e in envelopes}
    received = server.messages
    assert sorted(m.message_id or "" for m in received) == sorted(e.message_id for e in envelopes)
    assert {m.connection for m in received} == {1, 2}
    by_id = {m.message_id: m for m in received}
    first = by_id[envelopes[0].message_id]
    assert first.sender == "office@example.org"
    assert first.recipients == ("ann@example.org",)
    assert b"\r\n.a line starting with a dot" in first.data


def test_it_reuses_connections(server: RecordingServer) -> None:
    run_smtp(settings_for(server, connections=2), [envelope(key) for key in range(1, 11)])

    assert len(server.messages) == 10
    assert server.connections == 2


def test_it_opens_no_connection_without_work(server: RecordingServer) -> None:
    run_smtp(settings_for(server), [])

    assert server.connections == 0


def test_it_retries_after_451(server: RecordingServer) -> None:
    server.fail_next(451, "4.3.0 try again later", stage="data")
    outbox = run_smtp(settings_for(server, connections=1), [envelope(1)])

    assert outbox.outcomes[1] == Outcome(1, sent=True, attempts=2)
    assert len(server.messages) == 1


def test_it_gives_up_on_421_with_the_answer_in_error(server: RecordingServer) -> None:
    server.fail_next(421, "4.3.2 service shutting down", count=100, stage="mail")
    outbox = run_smtp(settings_for(server, connections=1, retries=3), [envelope(1)])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent, outcome.attempts) == (False, False, 3)
    assert outcome.error is not None and "421 4.3.2 service shutting down" in outcome.error
    assert server.messages == []


def test_it_reports_one_refused_recipient_of_two(server: RecordingServer) -> None:
    server.refuse_recipient("ghost@example.org")
    outbox = run_smtp(settings_for(server), [envelope(1, ("ann@example.org", "ghost@example.org"))])

    outcome = outbox.outcomes[1]
    assert outcome.sent
    assert outcome.error is not None and "ghost@example.org" in outcome.error and "550" in outcome.error
    assert [m.recipients for m in server.messages] == [("ann@example.org",)]


def test_it_marks_a_refused_only_recipient_permanent(server: RecordingServer) -> None:
    server.refuse_recipient("ghost@example.org")
    outbox = run_smtp(settings_for(server), [envelope(1, ("ghost@example.org",)), envelope(2)])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent, outcome.attempts) == (False, True, 1)
    assert outcome.error is not None and "550" in outcome.error and "ghost@example.org" in outcome.error
    assert outbox.outcomes[2].sent  # the connection stays usable after the refusal


def test_it_marks_a_data_5xx_permanent(server: RecordingServer) -> None:
    server.fail_next(554, "5.6.0 message content rejected", stage="data")
    outbox = run_smtp(settings_for(server), [envelope(1)])

    assert outbox.outcomes[1] == Outcome(1, sent=False, error="554 5.6.0 message content rejected", permanent=True)


def test_it_retries_a_connection_dropped_mid_data(server: RecordingServer) -> None:
    server.drop_next(1)
    outbox = run_smtp(settings_for(server, connections=1), [envelope(1), envelope(2)])

    assert outbox.outcomes[1] == Outcome(1, sent=True, attempts=2)
    assert outbox.outcomes[2] == Outcome(2, sent=True)
    assert sorted(m.message_id or "" for m in server.messages) == [envelope(1).message_id, envelope(2).message_id]
    assert server.connections == 2


def test_it_stops_quickly_and_leaves_everything_pending_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    connects = 0
    real_connect = aiosmtplib.SMTP.connect

    async def counting_connect(self: aiosmtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        nonlocal connects
        connects += 1
        return await real_connect(self, *args, **kwargs)

    monkeypatch.setattr(aiosmtplib.SMTP, "connect", counting_connect)
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), retries=3, backoff=0.01, timeout=5.0)
    outbox = Outbox([envelope(key) for key in range(1, 51)])

    with pytest.raises(RelayUnreachable) as caught:
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    assert connects == BREAKER  # not 50 messages x 3 retries
    message = str(caught.value)
    assert message.startswith("SMTP 服务器") and "待发送" in message and "SMTPConnectError" in message
    # The message that met the three failures counts one failed try (it waits for a later run); the others were
    # never tried and go back as they were: nothing failed for good, nothing sent.
    tried = list(outbox.outcomes.values())
    assert [(o.sent, o.permanent) for o in tried] == [(False, False)] and "relay unreachable" in str(tried[0].error)
    assert sorted([*outbox.outcomes, *caught.value.unsettled, *(e.key for e in outbox.pending)]) == list(range(1, 51))


def test_it_stops_quickly_when_the_server_never_greets() -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = SmtpSettings(host="127.0.0.1", port=silent.getsockname()[1], retries=3, backoff=0.01, timeout=0.3)
        outbox = Outbox([envelope(key) for key in range(1, 11)])
        with pytest.raises(RelayUnreachable, match=r"(?i)timed out") as caught:
            asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    assert [(o.sent, o.permanent) for o in outbox.outcomes.values()] == [(False, False)]
    assert sorted([*outbox.outcomes, *caught.value.unsettled, *(e.key for e in outbox.pending)]) == list(range(1, 11))


def test_a_relay_hanging_at_data_trips_the_breaker_but_refusals_do_not(server: RecordingServer) -> None:
    server.delay_replies(0.5, stage="data")
    settings = settings_for(server, timeout=0.2, connections=1, retries=3)
    outbox = Outbox([envelope(1)])
    with pytest.raises(RelayUnreachable):  # a relay that hangs at DATA: timeouts count too
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))
    server.delay_replies(0.0, stage="data")
    server.fail_next(451, "4.3.0 try later", count=4)
    outbox = run_smtp(settings_for(server, connections=1, retries=5), [envelope(2)])
    assert outbox.outcomes[2].sent  # four 451 answers in a row are answers, not an absent relay


def test_it_retries_a_421_at_mail(server: RecordingServer) -> None:
    server.fail_next(421, "4.4.2 idle too long, closing connection", stage="mail")
    outbox = run_smtp(settings_for(server, connections=1), [envelope(1), envelope(2)])

    assert outbox.outcomes == {1: Outcome(1, sent=True, attempts=2), 2: Outcome(2, sent=True)}
    assert len(server.messages) == 2
    assert server.max_concurrent == 1  # 421 closes the session: the old connection goes before the new one opens


@pytest.mark.parametrize("connections", [1, 2, 4])
def test_it_never_opens_more_than_connections_even_reconnecting(server: RecordingServer, connections: int) -> None:
    server.drop_next(connections)
    envelopes = [envelope(key) for key in range(1, 3 * connections + 1)]
    outbox = run_smtp(settings_for(server, connections=connections), envelopes)

    assert all(outbox.outcomes[e.key].sent for e in envelopes)
    assert len(server.messages) == len(envelopes)
    assert server.connections == 2 * connections  # every worker reconnected once per drop it took
    assert server.max_concurrent == connections


def test_it_throttles_transmissions_in_any_sliding_window(server: RecordingServer) -> None:
    limit, window = 5, 1.0
    server.fail_next(451, "4.3.0 try again later", count=2, stage="mail")  # retries count: they reach the relay
    outbox = Outbox(envelope(key) for key in range(1, 13))
    settings = settings_for(server, connections=3)
    throttle = _RecordingThrottle(limit, window)
    asyncio.run(_deliver_smtp(settings, outbox.claim, outbox.settle, throttle))

    assert all(outcome.sent for outcome in outbox.outcomes.values()) and len(outbox.outcomes) == 12
    assert len(server.messages) == 12
    # Every transmission (retries included) was admitted, and no `window` admitted more than `limit`: any limit + 1
    # admissions span at least the window, on the sender's own clock.
    assert len(throttle.admitted) == len(server.mail_times) == 14
    spans = [later - earlier for earlier, later in zip(throttle.admitted, throttle.admitted[limit:], strict=False)]
    assert min(spans) >= window, spans
    # The relay sees the same pace, give or take how long a MAIL command takes to arrive on a loaded machine.
    starts = sorted(server.mail_times)
    relay_spans = [later - earlier for earlier, later in zip(starts, starts[limit:], strict=False)]
    assert min(relay_spans) >= window * 0.8, relay_spans


class _RecordingThrottle(Throttle):
    """The run's throttle, keeping the moment of every admission it granted."""

    def __init__(self, limit: int, window: float) -> None:
        super().__init__(limit, window)
        self.admitted: list[float] = []

    async def admit(self, stopped: asyncio.Event) -> float | None:
        start = await super().admit(stopped)
        if start is not None:
            self.admitted.append(start)
        return start


def test_it_does_not_throttle_when_max_per_minute_is_0(server: RecordingServer) -> None:
    outbox = Outbox(envelope(key) for key in range(1, 21))
    settings = settings_for(server, connections=2, max_per_minute=0)
    # Only a hang guard: a limit would hold the 20 messages for a minute or more.
    asyncio.run(asyncio.wait_for(deliver_smtp(settings, outbox.claim, outbox.settle), 30))

    assert len(outbox.outcomes) == 20 and all(outcome.sent for outcome in outbox.outcomes.values())
    assert len(server.mail_times) == 20


def test_it_cuts_a_throttle_wait_short_when_the_run_stops(server: RecordingServer) -> None:
    server.fail_next(530, "5.7.0 authentication required", stage="data")  # the first message stops the run
    outbox = Outbox([envelope(1), envelope(2)])
    settings = settings_for(server, connections=2, max_per_minute=1)

    with pytest.raises(DeliveryError, match="authentication") as caught:
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    assert len(server.mail_times) == 1  # the other worker waited for the minute to pass and never started
    assert caught.value.unsettled == [1, 2]
    assert outbox.outcomes == {}


def test_it_authenticates(auth_server: RecordingServer) -> None:
    outbox = run_smtp(settings_for(auth_server, username="office", password=PASSWORD), [envelope(1)])

    assert outbox.outcomes[1].sent
    assert [m.login for m in auth_server.messages] == ["office"]


def test_it_stops_on_auth_failure_without_revealing_the_password(auth_server: RecordingServer) -> None:
    wrong = "wrong-password-123"
    outbox = Outbox([envelope(1), envelope(2)])
    settings = settings_for(auth_server, username="office", password=wrong, connections=1)

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    error = caught.value
    assert "535" in str(error)
    assert error.unsettled == [1]
    assert outbox.outcomes == {}
    assert [e.key for e in outbox.pending] == [2]
    for text in (str(error), repr(error), repr(error.__cause__), str(error.__cause__)):
        assert wrong not in text
    assert auth_server.messages == []


def test_it_stops_on_tls_failure(server: RecordingServer) -> None:
    outbox = Outbox([envelope(1)])
    with pytest.raises(DeliveryError, match="TLS") as caught:
        asyncio.run(deliver_smtp(settings_for(server, security="tls"), outbox.claim, outbox.settle))
    assert caught.value.unsettled == [1]


def test_it_stops_when_starttls_is_not_offered(server: RecordingServer) -> None:
    outbox = Outbox([envelope(1)])
    with pytest.raises(DeliveryError, match="STARTTLS"):
        asyncio.run(deliver_smtp(settings_for(server, security="starttls"), outbox.claim, outbox.settle))


def test_it_rejects_bad_settings_before_claiming() -> None:
    outbox = Outbox([envelope(1)])
    with pytest.raises(DeliveryError, match="connections") as caught:
        asyncio.run(deliver_smtp(SmtpSettings(connections=0), outbox.claim, outbox.settle))
    assert caught.value.unsettled == []
    assert len(outbox.pending) == 1


def test_it_hides_the_password_in_settings_repr() -> None:
    settings = SmtpSettings(username="office", password=PASSWORD)

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "office" in repr(settings)


def test_it_writes_maildir_messages_to_new(tmp_path: Path) -> None:
    folder = tmp_path / "maildir"
    envelopes = [envelope(key) for key in (1, 2, 3)]
    outbox = Outbox(envelopes)

    deliver_maildir(folder, outbox.claim, outbox.settle)

    assert outbox.outcomes == {e.key: Outcome(e.key, sent=True) for e in envelopes}
    files = sorted((folder / "new").iterdir())
    assert len(files) == 3
    parsed = [BytesParser(policy=default_policy).parsebytes(f.read_bytes()) for f in files]
    assert sorted(str(m["Message-ID"]) for m in parsed) == [e.message_id for e in envelopes]
    body = parsed[0].get_body()
    assert body is not None and "Monthly progress is due" in body.get_content()
    assert b"\r\n" not in files[0].read_bytes()


def test_it_settles_maildir_filesystem_errors(tmp_path: Path) -> None:
    folder = tmp_path / "maildir"
    outbox = Outbox([envelope(1)])

    def claim_then_break() -> Envelope | None:
        claimed = outbox.claim()
        shutil.rmtree(folder / "tmp", ignore_errors=True)
        return claimed

    deliver_maildir(folder, claim_then_break, outbox.settle)

    outcome = outbox.outcomes[1]
    assert not outcome.sent and not outcome.permanent
    assert outcome.error is not None and "FileNotFoundError" in outcome.error


@pytest.fixture(scope="module")
def tls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def server_tls(tls_folder: Path) -> ssl.SSLContext:
    context = self_signed_context(tls_folder)
    if context is None:
        pytest.skip("openssl is needed to make a test certificate")
    return context


@pytest.fixture(scope="module")
def server_cert(server_tls: ssl.SSLContext, tls_folder: Path) -> Path:
    """The self-signed certificate of `server_tls`: its own CA file."""
    return tls_folder / "cert.pem"


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_it_stops_on_an_untrusted_certificate(server_tls: ssl.SSLContext, implicit: bool) -> None:
    outbox = Outbox([envelope(1)])
    with RecordingServer(tls=server_tls, implicit_tls=implicit) as srv:
        settings = settings_for(srv, security="tls" if implicit else "starttls")
        with pytest.raises(DeliveryError, match=r"TLS failure.*CERTIFICATE_VERIFY_FAILED") as caught:
            asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))
        assert srv.messages == []
    assert caught.value.unsettled == [1]


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_it_sends_over_tls_without_verification_and_warns_once(
    server_tls: ssl.SSLContext, implicit: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with RecordingServer("office", PASSWORD, tls=server_tls, implicit_tls=implicit) as srv:
        settings = settings_for(
            srv,
            security="tls" if implicit else "starttls",
            verify_certificates=False,
            username="office",
            password=PASSWORD,
        )
        with caplog.at_level(logging.WARNING, logger="reminders.delivery.smtp"):
            outbox = run_smtp(settings, [envelope(key) for key in (1, 2, 3)])
        received = srv.messages

    assert all(outcome.sent for outcome in outbox.outcomes.values()) and len(outbox.outcomes) == 3
    assert [(m.tls, m.login) for m in received] == [(True, "office")] * 3
    warnings = [r for r in caplog.records if "verification is disabled" in r.getMessage()]
    assert len(warnings) == 1
    assert PASSWORD not in caplog.text


def _stop_once_the_server_sees_mail(server: RecordingServer, stop: threading.Event) -> threading.Thread:
    def watch() -> None:
        while not server.mail_times:
            time.sleep(0.005)
        stop.set()  # Ctrl-C while the first message is in its SMTP transaction

    helper = threading.Thread(target=watch)
    helper.start()
    return helper


def test_it_finishes_the_message_in_flight_and_starts_no_other_once_stopped(server: RecordingServer) -> None:
    server.delay_replies(0.3)  # the 250 comes well after the stop was asked for
    stop = threading.Event()
    outbox = Outbox(envelope(key) for key in (1, 2, 3))
    helper = _stop_once_the_server_sees_mail(server, stop)

    unsettled = asyncio.run(deliver_smtp(settings_for(server, connections=1), outbox.claim, outbox.settle, stop))
    helper.join()

    assert outbox.outcomes == {1: Outcome(1, sent=True)}
    assert unsettled == []
    assert [e.key for e in outbox.pending] == [2, 3]
    assert [m.message_id for m in server.messages] == [envelope(1).message_id]


def test_it_cuts_a_retry_wait_short_when_stopped_and_hands_the_message_back(server: RecordingServer) -> None:
    server.fail_next(451, "4.3.0 try again later", stage="data")
    stop = threading.Event()
    outbox = Outbox([envelope(1)])

    def settle_never(outcome: Outcome) -> None:
        raise AssertionError(f"settled though stopped: {outcome}")

    helper = _stop_once_the_server_sees_mail(server, stop)
    # A backoff of an hour: only the stop can end this run.
    unsettled = asyncio.run(deliver_smtp(settings_for(server, connections=1, backoff=3600.0), outbox.claim,
                                         settle_never, stop))
    helper.join()

    assert unsettled == [1]  # claimed, not sent: the caller puts it back to pending
    assert server.messages == []


def test_it_says_the_configured_helo_name_to_a_relay_that_wants_a_fully_qualified_one(
    server: RecordingServer,
) -> None:
    server.require_fqdn_helo()
    outbox = run_smtp(settings_for(server, helo_name="reminders.bureau.example"), [envelope(1), envelope(2)])

    assert all(o.sent for o in outbox.outcomes.values()) and len(outbox.outcomes) == 2
    assert set(server.helo_names) == {"reminders.bureau.example"}


def test_it_says_the_machines_fully_qualified_name_by_default(server: RecordingServer) -> None:
    run_smtp(settings_for(server), [envelope(1)])
    assert server.helo_names == [socket.getfqdn()]


def test_a_relay_wanting_a_fully_qualified_helo_refuses_a_bare_one(server: RecordingServer) -> None:
    server.require_fqdn_helo()
    outbox = run_smtp(settings_for(server, helo_name="localhost"), [envelope(1)])
    outcome = outbox.outcomes[1]
    assert not outcome.sent and outcome.error is not None and "504" in outcome.error
    assert server.messages == [] and set(server.helo_names) == {"localhost"}


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_it_verifies_the_relay_with_the_configured_ca_file(
    server_tls: ssl.SSLContext, server_cert: Path, implicit: bool
) -> None:
    with RecordingServer(tls=server_tls, implicit_tls=implicit) as srv:
        settings = settings_for(srv, security="tls" if implicit else "starttls", ca_file=server_cert)
        outbox = run_smtp(settings, [envelope(1)])
        received = srv.messages
    assert outbox.outcomes[1].sent
    assert [m.tls for m in received] == [True]


def test_a_wrong_password_costs_one_login_per_run_over_two_connections(auth_server: RecordingServer) -> None:
    outbox = Outbox([envelope(key) for key in range(1, 7)])
    settings = settings_for(auth_server, username="office", password="wrong-password-123", connections=2)

    with pytest.raises(DeliveryError, match="535"):
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    assert auth_server.auth_attempts == 1
    assert outbox.outcomes == {}
    assert auth_server.messages == []


def test_a_right_password_logs_in_once_per_connection(auth_server: RecordingServer) -> None:
    settings = settings_for(auth_server, username="office", password=PASSWORD, connections=2)
    outbox = run_smtp(settings, [envelope(key) for key in range(1, 7)])

    assert all(o.sent for o in outbox.outcomes.values()) and len(outbox.outcomes) == 6
    assert auth_server.auth_attempts == auth_server.connections


@pytest.mark.parametrize(("security", "says"), [("tls", "不是加密端口"), ("starttls", "不提供 STARTTLS")])
def test_a_wrong_tls_mode_ends_the_run_at_once_as_a_configuration_error(
    server: RecordingServer, security: str, says: str
) -> None:
    outbox = Outbox([envelope(key) for key in range(1, 6)])
    settings = settings_for(server, security=security, connections=2, retries=3, backoff=5.0)

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(deliver_smtp(settings, outbox.claim, outbox.settle))

    message = str(caught.value)
    assert message.startswith("[smtp] security 设置有误") and says in message
    assert "configuration error" in message
    assert server.connections == 1  # one attempt: the second connection waited for the first, no retry
    assert outbox.outcomes == {} and server.messages == []
    assert sorted(caught.value.unsettled + [e.key for e in outbox.pending]) == [1, 2, 3, 4, 5]


def _chinese_envelope(key: int) -> Envelope:
    from datetime import UTC, datetime

    from reminders.mail.mime import RenderedMail, build_message

    data = build_message(RenderedMail("【工作提醒】进展报送", "请于6月25日前报送。\n", "<p>请于6月25日前报送。</p>"),
                         sender="office@example.org", sender_name="督查室", to=[("办公室", "ann@example.org")],
                         reply_to=None, message_id=f"<zh-{key}@example.org>", date=datetime(2021, 6, 20, tzinfo=UTC))
    return Envelope(key, "office@example.org", ("ann@example.org",), data, f"<zh-{key}@example.org>")


@pytest.mark.parametrize("eight_bit", [True, False])
def test_text_goes_as_8bit_where_the_relay_takes_it_and_as_base64_where_not(eight_bit: bool) -> None:
    from reminders.mail.mime import seven_bit

    sent = _chinese_envelope(1)
    assert not sent.data.isascii()  # the outbox keeps the 8bit form
    with RecordingServer(eight_bit=eight_bit) as relay:
        outbox = run_smtp(settings_for(relay), [sent])
        (got,) = relay.messages
    assert outbox.outcomes == {1: Outcome(1, sent=True)}
    if eight_bit:
        assert got.data == sent.data and "BODY=8BITMIME" in got.mail_options
    else:
        assert got.data == seven_bit(sent.data) and got.data.isascii()
        assert not any(option.startswith("BODY=") for option in got.mail_options)
    message = BytesParser(policy=default_policy).parsebytes(got.data)
    assert [part.get_content() for part in message.iter_parts()] == [
        "请于6月25日前报送。\r\n", "<p>请于6月25日前报送。</p>\r\n"]
