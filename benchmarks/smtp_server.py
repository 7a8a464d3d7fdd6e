"""A counting SMTP sink for the benchmark, run as its own process so it does not share the client's CPU.

    python -m benchmarks.smtp_server --port P [--delay-ms D] [--count-file PATH]

Prints "listening <port>" once it accepts connections. Each message is counted and dropped (nothing is kept in
memory). SIGUSR1 writes the count to --count-file (atomically); SIGTERM/SIGINT prints "count N" and exits.
--delay-ms delays every reply (greeting, EHLO, MAIL, RCPT, DATA, end of data, QUIT) like a relay across a network.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        self.bytes += len(envelope.content or b"")
        return "250 OK"


class DelayedSMTP(SMTP):
    """An SMTP session whose every reply waits `delay` seconds, as across a network to a distant relay."""

    def __init__(self, handler: Any, delay: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.delay = delay

    async def push(self, status: AnyStr) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        await super().push(status)


def _write_count(counter: Counter, path: Path | None) -> None:
    if path is None:
        return
    partial = path.with_suffix(".part")
    partial.write_text(f"{counter.messages} {counter.bytes}\n")
    os.replace(partial, path)


def read_count(path: Path) -> int:
    return int(path.read_text().split()[0])


async def serve(port: int, delay: float, count_file: Path | None) -> Counter:
    counter = Counter()

    def factory() -> SMTP:
        return DelayedSMTP(counter, delay, hostname="bench.example.org", data_size_limit=None,
                           ident="bench-smtp")

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, _write_count, counter, count_file)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"listening {port}", flush=True)
    await stop.wait()
    server.close()
    return counter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--count-file", type=Path)
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    counter = asyncio.run(serve(args.port, args.delay_ms / 1000, args.count_file))
    _write_count(counter, args.count_file)
    print(f"count {counter.messages}", flush=True)


if __name__ == "__main__":
    main()
