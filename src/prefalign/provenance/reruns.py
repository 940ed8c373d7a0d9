"""Which jobs Snakemake itself ran after the manifest: read from Snakemake's own records, never
from a file of the run (a benchmark or log file is edited as easily as an artifact).

Snakemake 9, with its default file persistence, keeps one JSON record per output path under
`.snakemake/metadata/`, named by the URL-safe base64 of the path as the rule declares it (cut
into folders of NAME_MAX - 1 characters, all but the last prefixed "@"). It writes the record when
the job has finished, after touching the job's outputs: `rule` is the rule, `endtime` the
output's modification time at that moment (for a directory output, its `.snakemake_timestamp`).

So a job ran again after a manifest written at time T when every output has a record of the
job's rule with `endtime` after T. Its files are then not held to that manifest, but none of them
may be newer than the end Snakemake recorded: a file changed after Snakemake finished the job was
changed by someone else.

Without a record (Snakemake run with --drop-metadata or --persistence-backend db, or
`.snakemake/` deleted) a job counts as not run again: its files are held to the manifest.
"""

from __future__ import annotations

import json
import os
from base64 import urlsafe_b64encode
from pathlib import Path

METADATA = Path(".snakemake/metadata")
# Snakemake sets endtime from the same stat as the file's own mtime; the margin only absorbs the
# float rounding of seconds (no hand edit lands within a millisecond of Snakemake's touch).
MARGIN_S = 1e-3


def record_path(root: Path, path: str) -> Path:
    """Where Snakemake's file persistence keeps the record of output `path` (snakemake.persistence.file)."""
    folder = Path(root) / METADATA
    try:
        max_len = os.pathconf(folder if folder.is_dir() else Path(root), "PC_NAME_MAX") or 255
    except (OSError, ValueError):
        max_len = 255
    name = urlsafe_b64encode(path.encode()).decode()
    parts = [name[i: i + max_len - 1] for i in range(0, len(name), max_len - 1)]
    return folder.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def record(root: Path, path: str) -> dict | None:
    """Snakemake's record of output `path` (relative to the working directory `root`), or None."""
    try:
        data = json.loads(record_path(root, path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def has_records(root: Path) -> bool:
    """True when the working directory holds Snakemake's file records at all."""
    return (Path(root) / METADATA).is_dir()


def rerun_ends(job: dict, root: Path, since_ns: int | None) -> dict[str, float] | None:
    """{output: end time (s)} when Snakemake finished `job` (a plan job) after `since_ns`, else None.

    Every output must carry a record of the job's rule that ended after `since_ns`; with
    `since_ns` None (no manifest yet) nothing is held to a record, and None is returned.
    """
    if since_ns is None:
        return None
    ends = {}
    for output in job["outputs"].values():
        found = record(root, output)
        end = (found or {}).get("endtime")
        if not found or found.get("rule") != job["rule"] or not isinstance(end, (int, float)) or found.get(
                "incomplete"):
            return None
        if end * 1e9 <= since_ns:
            return None
        ends[output] = float(end)
    return ends or None


def changed_after_end(path: Path, end: float) -> bool:
    """True when the file at `path` was modified after Snakemake finished the job that made it."""
    return path.stat().st_mtime > end + MARGIN_S
