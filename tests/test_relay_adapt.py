"""The SMTP transport against a relay that answers addresses one by one, limits connections or limits the pace."""

import asyncio
import re
from collections.abc import Iterator

import pytest

from reminders.delivery.pacing import Throttle, is_rate_answer
from reminders.delivery.smtp import RATE_BREAKER, Outcome, RelayUnreachable, _deliver_smtp, deliver_smtp
from tests.smtpserver import RecordingServer
from tests.test_deliver import Outbox, envelope, run_smtp, settings_for

HANG_GUARD = 60.0  # seconds: only catches a run that never ends, never a measure of speed


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


class Heard:
    """Stands in for the person watching the run: keeps every line `tell` says."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def delivered_ids(server: RecordingServer) -> list[str]:
    return sorted(m.message_id or "" for m in server.messages)


# Per-recipient answers ----------------------------------------------------------------------------------------------


def test_an_address_put_off_with_450_is_deferred_and_the_other_gets_the_message(server: RecordingServer) -> None:
    server.refuse_recipient("busy@example.org", 450)
    outbox = run_smtp(settings_for(server), [envelope(1, ("ann@example.org", "busy@example.org"))])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent, outcome.refused) == (True, False, ())
    assert [address for address, _ in outcome.deferred] == ["busy@example.org"]
    assert outcome.deferred[0][1].startswith("450 ") and "temporarily unavailable" in outcome.deferred[0][1]
    assert outcome.attempts == 1  # the other address got it: the message is not sent again within the run
    assert [m.recipients for m in server.messages] == [("ann@example.org",)]


def test_an_address_refused_with_550_is_refused_for_good_and_the_other_gets_the_message(
    server: RecordingServer,
) -> None:
    server.refuse_recipient("ghost@example.org", 550)
    outbox = run_smtp(settings_for(server), [envelope(1, ("ann@example.org", "ghost@example.org"))])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent, outcome.deferred, outcome.attempts) == (True, True, (), 1)
    assert [address for address, _ in outcome.refused] == ["ghost@example.org"]
    assert outcome.refused[0][1].startswith("550 ") and "User unknown" in outcome.refused[0][1]
    assert [m.recipients for m in server.messages] == [("ann@example.org",)]


def test_both_addresses_refused_one_for_now_one_for_good_is_not_sent_and_not_permanent(
    server: RecordingServer,
) -> None:
    server.refuse_recipient("busy@example.org", 450)
    server.refuse_recipient("ghost@example.org", 550)
    outbox = run_smtp(settings_for(server), [envelope(1, ("busy@example.org", "ghost@example.org")), envelope(2)])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent) == (False, False)  # the 450 address is worth another try later
    assert [(address, answer[:4]) for address, answer in outcome.refused] == [("ghost@example.org", "550 ")]
    assert [(address, answer[:4]) for address, answer in outcome.deferred] == [("busy@example.org", "450 ")]
    assert outcome.error is not None and "busy@example.org" in outcome.error and "ghost@example.org" in outcome.error
    assert outbox.outcomes[2].sent  # the connection stays usable after the refusals
    assert [m.recipients for m in server.messages] == [("ann@example.org",)]


def test_every_address_refused_with_5xx_is_permanent(server: RecordingServer) -> None:
    server.refuse_recipient("ghost@example.org", 550)
    server.refuse_recipient("gone@example.org", 551)
    outbox = run_smtp(settings_for(server), [envelope(1, ("ghost@example.org", "gone@example.org"))])

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent, outcome.deferred, outcome.attempts) == (False, True, (), 1)
    assert sorted(address for address, _ in outcome.refused) == ["ghost@example.org", "gone@example.org"]
    assert server.messages == []


# A relay that allows fewer connections than configured ---------------------------------------------------------------


@pytest.mark.parametrize(("allowed", "connections", "count"), [(2, 8, 40), (1, 4, 20)])
def test_a_relay_allowing_fewer_connections_gets_every_message_once_in_one_run(
    server: RecordingServer, allowed: int, connections: int, count: int
) -> None:
    server.limit_connections(allowed)
    envelopes = [envelope(key) for key in range(1, count + 1)]
    outbox, heard = Outbox(envelopes), Heard()
    settings = settings_for(server, connections=connections)

    unsettled = asyncio.run(asyncio.wait_for(deliver_smtp(settings, outbox.claim, outbox.settle, tell=heard),
                                             HANG_GUARD))

    assert unsettled == [] and not outbox.pending
    assert outbox.outcomes == {e.key: Outcome(e.key, sent=True) for e in envelopes}
    assert delivered_ids(server) == sorted(e.message_id for e in envelopes)  # each exactly once
    assert server.max_served <= allowed
    assert server.turned_away >= 1
    fewer = [line for line in heard.lines if "改用" in line and "个连接" in line]
    assert fewer and all("too many connections" in line for line in fewer), heard.lines
    # Said once for each lower number of connections, not once per connection the relay turned away.
    told = [int(count) for line in fewer for count in re.findall(r"改用 (\d+) 个连接", line)]
    assert told == sorted(set(told), reverse=True) and 1 <= told[-1] <= allowed, heard.lines


# A relay that limits the pace ------------------------------------------------------------------------------------


def test_a_relay_limiting_the_rate_slows_the_run_down_and_gets_every_message_once(server: RecordingServer) -> None:
    server.limit_rate(5, 1.0)
    envelopes = [envelope(key) for key in range(1, 24)]
    outbox, heard = Outbox(envelopes), Heard()
    settings = settings_for(server)  # max_per_minute unset: no limit until the relay asks for one
    assert settings.max_per_minute == 0

    unsettled = asyncio.run(asyncio.wait_for(
        _deliver_smtp(settings, outbox.claim, outbox.settle, Throttle(0, window=1.0), tell=heard), HANG_GUARD))

    assert unsettled == [] and not outbox.pending
    assert [key for key, o in outbox.outcomes.items() if not o.sent] == []  # nothing failed
    assert sorted(outbox.outcomes) == [e.key for e in envelopes]
    assert all(o.attempts == 1 for o in outbox.outcomes.values())  # a rate answer costs no retry
    assert delivered_ids(server) == sorted(e.message_id for e in envelopes)
    assert server.rate_refusals >= 1
    assert any("每分钟" in line and "too much mail" in line for line in heard.lines), heard.lines


def test_a_relay_refusing_every_message_for_its_rate_stops_the_run_with_everything_unsent(
    server: RecordingServer,
) -> None:
    server.limit_rate(0, 60.0)
    envelopes = [envelope(key) for key in range(1, 11)]
    outbox, heard = Outbox(envelopes), Heard()

    settings = settings_for(server, connections=2)

    with pytest.raises(RelayUnreachable) as caught:
        asyncio.run(asyncio.wait_for(_deliver_smtp(settings, outbox.claim, outbox.settle,
                                                   Throttle(0, window=0.2), tell=heard), HANG_GUARD))

    message = str(caught.value)
    assert f"连续 {RATE_BREAKER} 次" in message and "待发送" in message and "too much mail" in message
    # RATE_BREAKER refusals at ever lower paces; the first burst (one MAIL per connection) counts once.
    assert RATE_BREAKER <= server.rate_refusals <= RATE_BREAKER + settings.connections - 1
    assert server.messages == []
    assert not any(o.sent or o.permanent for o in outbox.outcomes.values())  # nothing sent, nothing failed for good
    handed_back = [*outbox.outcomes, *caught.value.unsettled, *(e.key for e in outbox.pending)]
    assert sorted(handed_back) == [e.key for e in envelopes]  # every message accounted for, once
    assert caught.value.unsettled  # claimed and unsent: the caller puts them back to pending
    assert any("每分钟" in line for line in heard.lines)  # it slowed down before giving up


def test_one_burst_of_rate_refusals_over_many_connections_is_not_taken_for_a_relay_that_refuses_everything(
    server: RecordingServer,
) -> None:
    # Eight connections start at once against a relay that takes 3 a second: five MAILs of the same burst are refused
    # before any message is through. That is one pace refused, not five refusals "even at a lower pace".
    server.limit_rate(3, 1.0)
    envelopes = [envelope(key) for key in range(1, 13)]
    outbox, heard = Outbox(envelopes), Heard()

    unsettled = asyncio.run(asyncio.wait_for(_deliver_smtp(settings_for(server, connections=8), outbox.claim,
                                                           outbox.settle, Throttle(0, window=1.0), tell=heard),
                                             HANG_GUARD))

    assert unsettled == [] and not outbox.pending
    assert outbox.outcomes == {e.key: Outcome(e.key, sent=True) for e in envelopes}
    assert delivered_ids(server) == sorted(e.message_id for e in envelopes)
    assert server.rate_refusals >= 1 and any("每分钟" in line for line in heard.lines)


def test_a_burst_of_rate_refusals_for_one_pace_lowers_the_limit_once() -> None:
    async def scenario() -> list[int | None]:
        throttle, stopped = Throttle(0, window=60.0), asyncio.Event()
        for _ in range(10):
            await throttle.admit(stopped)
        pace = throttle.generation  # the ten transmissions started at this pace; three of them are refused
        burst = [throttle.slow_down(pace) for _ in range(3)]
        return [*burst, throttle.slow_down(throttle.generation)]  # then one refused at the lowered pace

    first, second, third, later = asyncio.run(scenario())
    assert first == 8  # four fifths of the ten starts the relay refused
    assert (second, third) == (None, None)  # the same burst: already accounted for, the limit stays 8
    assert later == 7  # refused again at the lowered pace: lower again


def test_a_too_many_recipients_count_limit_puts_the_address_off_without_slowing_down(server: RecordingServer) -> None:
    # Postfix's smtpd_recipient_limit: "452 4.5.3 Error: too many recipients" is a count per message; sending more
    # slowly would not help, so the run keeps its pace and the address alone is tried again later.
    server.fail_next(452, "4.5.3 Error: too many recipients", stage="rcpt")
    outbox, heard = Outbox([envelope(1, ("ann@example.org", "bob@example.org"))]), Heard()

    asyncio.run(asyncio.wait_for(deliver_smtp(settings_for(server), outbox.claim, outbox.settle, tell=heard),
                                 HANG_GUARD))

    outcome = outbox.outcomes[1]
    assert (outcome.sent, outcome.permanent) == (True, False)
    assert outcome.deferred == (("ann@example.org", "452 4.5.3 Error: too many recipients"),)
    assert [m.recipients for m in server.messages] == [("bob@example.org",)]
    assert heard.lines == []  # no "降至每分钟 N 封": the pace was not the problem


# is_rate_answer --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "rate"),
    [
        (450, "4.7.1 Error: too much mail from 1.2.3.4", True),  # Postfix anvil, message rate
        (421, "4.7.0 mx.example.com Error: too many recipients from 1.2.3.4", True),  # Postfix anvil, rcpt rate
        (451, "4.7.1 Rate limit exceeded, try again later", True),
        (452, "4.2.2 Message rate exceeds the limit", True),
        (421, "4.7.28 Our system has detected an unusual rate of unsolicited mail", True),  # Gmail
        (450, "4.7.0 Throttled: too many messages", True),
        (451, "4.3.0 try again later", False),
        (450, "4.2.1 Mailbox temporarily unavailable", False),
        (421, "4.7.0 Error: too many connections from 1.2.3.4", False),  # a connection count, not a pace
        (550, "5.7.1 rate limit", False),  # a 5xx is never a pace
        (554, "5.7.1 too much mail", False),
        (452, "4.5.3 Too many recipients", False),  # a per-message recipient count: no pace would help
        (452, "4.5.3 Error: too many recipients", False),  # Postfix's smtpd_recipient_limit
        (451, "4.7.1 Please try again later (greylisted)", False),
        (421, "4.4.2 Generated by the moderate filter", False),  # "rate" inside a word
    ],
)
def test_is_rate_answer(code: int, text: str, rate: bool) -> None:
    assert is_rate_answer(code, text) is rate
