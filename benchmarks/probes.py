"""Processes the benchmark starts and watches: SMTP sinks, stage subprocesses, `reminders --help`, the idle daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.smtp_server import read_count

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


class StageFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SmtpSink:
    """A benchmarks.smtp_server process."""

    delay_ms: float
    folder: Path
    port: int = 0
    process: subprocess.Popen[str] | None = None

    def start(self) -> SmtpSink:
        self.port = free_port()
        self.process = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.smtp_server", "--port", str(self.port), "--delay-ms", str(self.delay_ms),
             "--count-file", str(self.count_file)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening"):
            raise StageFailed(f"SMTP sink did not start: {line!r}")
        return self

    @property
    def count_file(self) -> Path:
        return self.folder / f"smtp-{self.delay_ms:g}ms.count"

    def count(self) -> int:
        """Ask the running server for its message count."""
        assert self.process is not None
        self.count_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self.count_file.exists():
            if time.monotonic() > deadline:
                raise StageFailed("SMTP sink did not report its count")
            time.sleep(0.01)
        return read_count(self.count_file)

    def stop(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(signal.SIGTERM)
        out = self.process.stdout.read()
        self.process.wait(10)
        return int(out.split()[-1]) if out.strip() else -1


def run_stage(command: list[str], result: Path, log: Path) -> dict[str, float]:
    """Run a stage process; its result file plus its wall time and peak RSS (ru_maxrss of that process alone)."""
    result.unlink(missing_ok=True)
    with log.open("a") as errors:
        errors.write(f"$ {' '.join(command)}\n")
        errors.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
    if process.returncode != 0 or not result.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise StageFailed(f"stage failed ({process.returncode}): {' '.join(command)}\n{tail}")
    data: dict[str, float] = json.loads(result.read_text())
    data.update(wall=wall, rss_mb=usage.ru_maxrss / 1024, cpu=usage.ru_utime + usage.ru_stime)
    return data


def reminders_command() -> list[str]:
    script = Path(PYTHON).parent / "reminders"
    return [str(script)] if script.exists() else [PYTHON, "-m", "reminders"]


def help_seconds(runs: int) -> float:
    """Median wall time of `reminders --help`."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*reminders_command(), "--help"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)


def idle_cpu(config: Path, settle: float, window: float) -> float:
    """CPU seconds per wall second of `reminders run` between jobs (its crons set far in the future)."""
    process = subprocess.Popen([*reminders_command(), "--config", str(config), "run"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        time.sleep(settle)
        if process.poll() is not None:
            raise StageFailed(f"the daemon exited with {process.returncode}")
        before, start = _cpu_ticks(process.pid), time.monotonic()
        time.sleep(window)
        ticks, elapsed = _cpu_ticks(process.pid) - before, time.monotonic() - start
    finally:
        process.terminate()
        process.wait(30)
    return ticks / os.sysconf("SC_CLK_TCK") / elapsed
