"""Per-address outcomes of an outbox message: which addresses the relay accepted, refused (5xx) or put off (4xx).

A message's `deliveries` column holds them as JSON {address: [outcome, answer]} once addresses fared differently;
empty while they fared alike, when the message's own state speaks for every address. Only "sent" and "failed" are
final: a message is claimed again for its other addresses alone, with the same bytes and Message-ID.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from reminders.delivery.smtp import Outcome
from reminders.vocabulary import OutboxState

Fate = Literal["sent", "failed", "deferred"]
Deliveries = dict[str, tuple[Fate, str]]
_FINAL = ("sent", "failed")


def parse(text: str) -> Deliveries:
    if not text:
        return {}
    return {address: (fate, answer) for address, (fate, answer) in json.loads(text).items()}


def dump(deliveries: Deliveries) -> str:
    return json.dumps({address: list(entry) for address, entry in deliveries.items()}, ensure_ascii=False) \
        if deliveries else ""


def remaining(addresses: Sequence[str], deliveries: Deliveries) -> tuple[str, ...]:
    """The addresses still to send to: not accepted, not refused for good."""
    return tuple(a for a in addresses if deliveries.get(a, ("deferred", ""))[0] not in _FINAL)


def merge(deliveries: Deliveries, tried: Sequence[str], outcome: Outcome) -> Deliveries:
    """The per-address record after an attempt at the addresses `tried`. Written only when addresses fared
    differently in this attempt or an earlier one."""
    refused, deferred = dict(outcome.refused), dict(outcome.deferred)
    if not deliveries and not refused and not deferred:
        return {}
    merged = dict(deliveries)
    for address in tried:
        if address in refused:
            merged[address] = ("failed", refused[address])
        elif address in deferred:
            merged[address] = ("deferred", deferred[address])
        elif outcome.sent:
            merged[address] = ("sent", "")
        elif outcome.permanent:
            merged[address] = ("failed", outcome.error or "")
    return merged


def state_after(outcome: Outcome, deliveries: Deliveries | None = None) -> OutboxState:
    """The message's state after an attempt: pending while any address may still take it later; failed when an
    address was refused, in this attempt or an earlier one (`deliveries`, merged with this attempt)."""
    if outcome.deferred:
        return "pending"
    if outcome.refused:
        return "failed"
    if outcome.sent:
        return "failed" if refusals(deliveries or {}) else "sent"
    return "failed" if outcome.permanent else "pending"


def refusals(deliveries: Deliveries) -> str:
    """The answers of the addresses refused for good, each named ("" when none was)."""
    return "; ".join(f"{address}: {answer}" for address, (fate, answer) in deliveries.items() if fate == "failed")


def reached(outcome: Outcome, tried: Sequence[str]) -> list[str]:
    """The addresses of `tried` this attempt reached: all but those refused or put off; none when not sent."""
    if not outcome.sent:
        return []
    missed = {address for address, _ in (*outcome.refused, *outcome.deferred)}
    return [address for address in tried if address not in missed]


def each(addresses: Sequence[str], deliveries: Deliveries, state: str, last_error: str | None) -> list[
        tuple[str, str, str]]:
    """(address, state, answer) for every address: its own record where it fared apart, else the message's."""
    shown = []
    for address in addresses:
        fate, answer = deliveries.get(address, ("", ""))
        if fate in _FINAL:
            shown.append((address, fate, answer))
        elif state in ("sent", "failed"):
            shown.append((address, state, "" if state == "sent" else (answer or last_error or "")))
        else:
            shown.append((address, state, answer or last_error or ""))
    return shown
