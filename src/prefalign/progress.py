"""Progress for a person watching: a bar on a terminal; short, rate-limited lines otherwise.

A workflow job writes its log (`> {log} 2>&1`), but a person watches Snakemake's console.
The long-running rules (training, evaluation) also open fd 3 on that console and name it in
$PREFALIGN_CONSOLE, with a label for the console's lines after a colon
(`PREFALIGN_CONSOLE=3:evaluate_model[sft] prefalign ... 3>&2 > {log} 2>&1`): `announce`
writes a line to the log and to that console. Lines come at every tenth of the work, or after
HEARTBEAT_S seconds without one, and are one short line each (never a progress bar's
carriage-return trail). Under `accelerate launch` the worker processes do not inherit fd 3:
their progress stays in the log.

Loops over batches (evaluation, sampling) wrap their iterable in `progress`; the training
steps use RateLimiter through prefalign.train.watch.tracking.ProgressLines.
"""

from __future__ import annotations

import os
import sys
import time

CONSOLE_VAR = "PREFALIGN_CONSOLE"
HEARTBEAT_S = 60.0
_console = None


def console():
    """The console stream a workflow rule handed over ($PREFALIGN_CONSOLE: fd[:label]), or None."""
    global _console
    if _console is None:
        _console = False
        fd = os.environ.get(CONSOLE_VAR, "").partition(":")[0]
        if fd.isdigit():
            try:
                os.fstat(int(fd))
                _console = os.fdopen(int(fd), "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            except OSError:  # not inherited (a worker process of accelerate launch)
                _console = False
    return _console or None


def announce(line: str) -> None:
    """One progress line to the log (stdout) and to the watching console, if a rule opened one."""
    print(line, flush=True)
    stream = console()
    if stream is not None:
        label = os.environ.get(CONSOLE_VAR, "").partition(":")[2]
        try:
            stream.write((f"[{label}] " if label else "") + line[:300] + "\n")
        except OSError:
            pass  # a console that went away must not fail the step


class RateLimiter:
    """Says when `done` of `total` deserves a line: each tenth of the work, or HEARTBEAT_S without one."""

    def __init__(self, total: int, every: float = 0.1, heartbeat_s: float = HEARTBEAT_S):
        self.total, self.every, self.heartbeat_s = max(total, 1), every, heartbeat_s
        self.start = self.last = time.monotonic()
        self.next_share = every

    def line(self, done: int, label: str, unit: str) -> str | None:
        share = done / self.total
        now = time.monotonic()
        crossed = share + 1e-9 >= self.next_share
        if not crossed and now - self.last < self.heartbeat_s:
            return None
        while self.next_share <= share + 1e-9:
            self.next_share += self.every
        self.last = now
        elapsed = now - self.start
        left = elapsed / share - elapsed if share > 0 else 0.0
        return (f"{label}: {unit} {done}/{self.total} ({share:.0%}), {clock(elapsed)} elapsed, "
                f"~{clock(left)} left")


def progress(batches, description: str, label: str | None = None):
    """`batches` with a progress bar on a terminal; elsewhere (a rule's log) with rate-limited
    lines, `<label> <description>: batch 3/10 (30%), ...`, also on the console a rule opened."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(batches, desc=description, unit="batch", leave=False)
    try:
        total = len(batches)
    except TypeError:
        return batches
    return _lines(batches, total, f"{label} {description}" if label else description)


def _lines(batches, total: int, label: str):
    limiter = RateLimiter(total)
    for done, batch in enumerate(batches, 1):
        yield batch
        line = limiter.line(done, label, "batch")
        if line:
            announce(line)


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
