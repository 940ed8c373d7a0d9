"""Progress for a person watching: a bar on a terminal, nothing extra in a log file.

Loops over batches (evaluation, sampling) wrap their iterable in `progress`; the training
steps print their own rate-limited lines (prefalign.train.watch.tracking.ProgressLines).
"""

from __future__ import annotations

import sys


def progress(batches, description: str):
    """`batches` with a progress bar on the terminal; unchanged when stderr is a log file."""
    if not sys.stderr.isatty():
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=description, unit="batch", leave=False)


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
