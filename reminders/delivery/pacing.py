"""How fast a run sends: the configured limit (`[smtp] max_per_minute`), lowered when the relay says it is too fast."""

import asyncio
import contextlib
import re
from collections import deque

# What relays say when a client sends too fast: Postfix's anvil ("450 4.7.1 Error: too much mail from …", "too many
# recipients from …"), Exim's ratelimit ("… rate … exceeds …"), Exchange/Office 365 ("… rate limit exceeded",
# "throttled"), Gmail ("… unusual rate …"). A 4xx that says none of this is a passing fault, not a pace.
_RATE_WORDS = re.compile(r"\brate\b|too much mail|too many messages|too many recipients from|limit exceeded|"
                         r"rate.?limit|throttl|slow down|sending quota", re.IGNORECASE)
# "452 4.5.3 Error: too many recipients" (Postfix's smtpd_recipient_limit; RFC 3463 X.5.3): a count per message that no
# pace would satisfy: the addresses over it are put off, the run keeps its pace.
_RECIPIENT_COUNT = re.compile(r"\s*4\.5\.3\b")


def is_rate_answer(code: int, text: str) -> bool:
    """Whether a relay's answer asks the client to send more slowly (only ever a 4xx: a 5xx is not a pace)."""
    return 400 <= code < 500 and not _RECIPIENT_COUNT.match(text) and bool(_RATE_WORDS.search(text))


class Throttle:
    """At most `limit` transmissions start in any sliding `window` seconds, across a run's workers (0: no limit).

    Every start is remembered for one window whatever the limit, so that when the relay answers that the run is too
    fast, `slow_down` can set the limit below the pace the relay just refused.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.starts: deque[float] = deque()  # start times within the last window, oldest first
        self.generation = 0  # the pace transmissions start at now: one more at every slow_down

    def _forget_old(self, now: float) -> None:
        while self.starts and self.starts[0] <= now - self.window:
            self.starts.popleft()

    async def admit(self, stopped: asyncio.Event) -> float | None:
        """Wait for a free slot and take it: its start time, or None when the run stopped meanwhile."""
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            now = loop.time()
            self._forget_old(now)
            if self.limit <= 0 or len(self.starts) < self.limit:
                self.starts.append(now)
                return now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), self.starts[0] + self.window - now)
        return None

    def give_back(self, start: float) -> None:  # a slot taken for a transmission that never began
        with contextlib.suppress(ValueError):
            self.starts.remove(start)

    def slow_down(self, pace: int) -> int | None:
        """The relay refused a transmission started at `pace` (the `generation` read when it was admitted) as too
        fast: lower the limit to four fifths of the starts in the last window (the pace the relay refused), at least
        one, and below any limit already set; returns the new limit per window. None, leaving the limit as it is,
        when it was already lowered since that transmission started: the refusals of one burst (several
        connections starting at once) lower it once, not once each."""
        if pace != self.generation:
            return None
        self._forget_old(asyncio.get_running_loop().time())
        refused = max(1, len(self.starts) * 4 // 5)
        self.limit = min(refused, max(1, self.limit - 1)) if self.limit > 0 else refused
        self.generation += 1
        return self.limit
