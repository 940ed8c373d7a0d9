"""Does a finished run still stand? Its files against the manifest that recorded them.

Snakemake decides what to rerun from modification times, and three things escape it:

- a file changed inside a directory output (results/sft/model/model.safetensors): Snakemake
  dates a directory by its `.snakemake_timestamp`, which nothing but Snakemake touches;
- a file added to or removed from a directory output;
- a missing intermediate whose consumers are still there: Snakemake then calls the run done
  (rules/manifest.smk makes `all` require every artifact, so such a file is rebuilt instead).

`check` compares the files of every *settled* job with the manifest of the last finished run.
A job is settled when Snakemake has not run it again since that manifest recorded it, by
Snakemake's own records (prefalign.provenance.reruns; never by a file of the run, such as the
job's benchmark, which a user edits as easily as an artifact). A settled job's files must be
exactly those the manifest recorded (no file changed, added or removed in its directory
outputs), and the files it read inside source directories (local models, a reward model) must
still hash as they did. A job that Snakemake finished after the manifest (a run that stopped
before its own manifest step) is not held to the old record, but no file of it may be newer
than the end Snakemake recorded. Files under results/ that no job of the run makes are listed
too. With `strict` (the `check` and `export` targets, which audit a finished run and rebuild
nothing), a settled job's missing output is a finding as well; the default target rebuilds it.

Cost: a file is hashed only when its size differs from the record or it was modified after
the manifest (`full=True` hashes every file: the manifest step, which hashes them anyway).
`prefalign verify` re-hashes everything and also finds changes that kept the old mtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prefalign.hashing import sha256_file
from prefalign.provenance import reruns

# Files under results/ that no job of the manifest makes, by design: resumable training
# checkpoints (prefalign.train.checkpoints; kept across a killed run, deleted on success) and
# Snakemake's directory timestamps.
EXEMPT_PREFIXES = ("results/checkpoints/",)
SNAKEMAKE_FILES = {".snakemake_timestamp"}


@dataclass(frozen=True)
class Finding:
    path: str
    job: str  # the job whose record the file breaks: its producer, or for a source the job that read it
    rule: str  # that job's rule: `--forcerun <rule>` rebuilds the file, or rereads the source
    why: str
    source: bool = False  # a file no job makes (then the reader and what it made are affected)


@dataclass
class Findings:
    stale: list[Finding] = field(default_factory=list)
    unaccounted: list[str] = field(default_factory=list)
    records: bool = True  # Snakemake's records of what it ran were there to read (prefalign.provenance.reruns)

    def __bool__(self) -> bool:
        return bool(self.stale or self.unaccounted)


def job_id(job: dict) -> str:
    wildcards = ",".join(f"{k}={v}" for k, v in sorted(job["wildcards"].items()))
    return f"{job['rule']}[{wildcards}]" if wildcards else job["rule"]


def filesunder(path: Path) -> list[Path]:
    """The file itself, or every file under a folder (sorted; Snakemake's marker files left out)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in SNAKEMAKE_FILES)
    return [path] if path.is_file() else []


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def under(name: str, outputs: list[str]) -> str | None:
    """The declared output `name` is or lies in, if any."""
    for output in outputs:
        if name == output or name.startswith(output.rstrip("/") + "/"):
            return output
    return None


def check(plan: dict, previous: dict | None, previous_mtime_ns: int | None, root: Path = Path("."),
          forced: Callable[[dict], bool] = lambda job: False, full: bool = False,
          hasher: Callable[[Path], str] = sha256_file, strict: bool = False) -> Findings:
    """What of the last finished run (manifest `previous`, written at `previous_mtime_ns`) no longer stands.

    `plan` is this run's job plan (rules/manifest.smk); `forced(job)` is true for jobs this
    invocation rebuilds anyway (--forcerun, --forceall), whose files are not checked. `strict`:
    a settled job's missing output is a finding too (else Snakemake rebuilds it).
    """
    root = Path(root)
    findings = Findings()
    recorded = (previous or {}).get("artifacts", {})
    recorded_jobs = (previous or {}).get("jobs", {})
    recorded_sources = (previous or {}).get("sources", {})
    produced = [path for job in plan["jobs"] for path in job["outputs"].values()]

    def differs(file: Path, want: dict) -> bool:
        stat = file.stat()
        if stat.st_size != want["size"]:
            return True
        if full or previous_mtime_ns is None or stat.st_mtime_ns > previous_mtime_ns:
            return hasher(file) != want["sha256"]
        return False

    findings.records = previous is None or reruns.has_records(root)
    for job in plan["jobs"] if previous is not None else []:
        name = job_id(job)
        if forced(job) or name not in recorded_jobs:
            continue

        def stale(path: str, why: str, source: bool = False) -> None:
            findings.stale.append(Finding(path, name, job["rule"], why, source))

        ends = reruns.rerun_ends(job, root, previous_mtime_ns)
        if ends is not None:  # Snakemake ran it again since the manifest: its files are new, and must stay so
            for output, end in ends.items():
                for file in filesunder(root / output):
                    if reruns.changed_after_end(file, end):
                        stale(_rel(file, root), f"changed after Snakemake finished {name} (its record in "
                                                f"{reruns.METADATA}/ ends earlier)")
            continue
        made = {path for path, entry in recorded.items() if entry.get("job") == name}
        for output in job["outputs"].values():
            where = root / output
            if not where.exists():
                if strict:
                    for key in sorted(k for k in made if under(k, [output])) or [output]:
                        stale(key, f"missing: {name} made it and the manifest records it")
                continue  # else Snakemake rebuilds a missing output (rule all requires every artifact)
            on_disk = {_rel(f, root): f for f in filesunder(where)}
            for key, file in on_disk.items():
                if key in made:
                    if differs(file, recorded[key]):
                        stale(key, f"differs from what {name} made")
                elif where.is_dir():
                    stale(key, f"appeared in {output}/ after {name} made it")
            if where.is_dir():
                for key in sorted(made):
                    if under(key, [output]) and key not in on_disk:
                        stale(key, f"missing from {output}/, where {name} made it")
        # Files inside a source folder (a local model, a reward model): Snakemake dates the
        # folder, not its files. Files that a job makes are checked above, at their producer.
        for inputs in job["inputs"].values():
            for declared in inputs:
                where = root / declared
                if not where.is_dir() or under(declared, produced):
                    continue
                for file in filesunder(where):
                    key = _rel(file, root)
                    want = recorded_sources.get(key)
                    if want is None:
                        stale(key, f"appeared in source folder {declared}/ after {name} read it", True)
                    elif differs(file, want):
                        stale(key, f"changed since {name} read it (source folder {declared}/)", True)
    findings.unaccounted = unaccounted(plan, root)
    return findings


def unaccounted(plan: dict, root: Path = Path(".")) -> list[str]:
    """Files under results/ that no job of the plan makes (nor a rule kept out of the manifest by design)."""
    root = Path(root)
    known = [path for job in plan["jobs"] for path in job["outputs"].values()]
    known += list(plan.get("unrecorded", [])) + [plan.get("manifest", "results/manifest.json")]
    found = []
    for file in filesunder(root / "results"):
        key = _rel(file, root)
        if key.startswith(EXEMPT_PREFIXES) or under(key, known):
            continue
        found.append(key)
    return found


# ---------------------------------------------------------------- what depends on what, and the repair

def downstream(jobs: dict[str, dict], start: set[str]) -> list[str]:
    """Ids of the jobs that read, directly or through others, what the jobs in `start` made (in the run's order).

    `jobs` is the manifest's jobs table ({id: {"inputs": {path: sha}, "outputs": [paths]}})."""
    made_by = {path: name for name, job in jobs.items() for path in job.get("outputs", [])}
    readers: dict[str, set[str]] = {}
    for name, job in jobs.items():
        for path in job.get("inputs", {}):
            if path in made_by:
                readers.setdefault(made_by[path], set()).add(name)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for reader in readers.get(todo.pop(), ()):
            if reader not in seen:
                seen.add(reader)
                todo.append(reader)
    return [name for name in jobs if name in seen and name not in start]  # in the run's order


def compact_outputs(job: dict) -> list[str]:
    """A job's outputs as declared: a directory output once, as `folder/`, not file by file."""
    folders = [d.rstrip("/") for d in job.get("directories", [])]
    shown: list[str] = []
    for path in job.get("outputs", []):
        folder = under(path, folders)
        entry = f"{folder}/" if folder else path
        if entry not in shown:
            shown.append(entry)
    return shown


def repair_command(rules: list[str]) -> str:
    """The Snakemake call that rebuilds what `rules` made, and so everything made from it."""
    return "snakemake --cores all --forcerun " + " ".join(sorted(set(rules)))


def explain(findings: Findings, jobs: dict[str, dict], what: str) -> str:
    """The refusal: every stale file, what was made from it, and the command that repairs it.

    `jobs`: the manifest's jobs table (to list the affected downstream artifacts); `what`: the
    record the files were held to, e.g. "results/manifest.json".
    """
    lines = []
    if findings.stale:
        lines.append(f"{len(findings.stale)} artifact(s) no longer match {what}:")
        by_job: dict[tuple[str, bool], list[Finding]] = {}
        for finding in findings.stale:
            by_job.setdefault((finding.job, finding.source), []).append(finding)
        for (name, source), items in by_job.items():
            lines += [f"  {finding.path}: {finding.why}" for finding in items[:10]]
            if len(items) > 10:
                lines.append(f"  ... and {len(items) - 10} more of {name}")
            affected = ([name] if source else []) + downstream(jobs, {name})
            files = [path for reader in affected for path in compact_outputs(jobs.get(reader, {}))]
            if files:
                lines.append(f"    made from it: {', '.join(files)}")
        lines.append("  repair (rebuild them and everything made from them): "
                     + repair_command([f.rule for f in findings.stale]))
        if not findings.records:
            lines.append(f"  ({reruns.METADATA}/ is missing: Snakemake keeps no record of what it ran (--drop-metadata, "
                         "--persistence-backend db?), so every job is held to the manifest)")
    if findings.unaccounted:
        lines.append(f"{len(findings.unaccounted)} file(s) under results/ that no job of this run makes:")
        lines += [f"  {path}" for path in findings.unaccounted[:20]]
        if len(findings.unaccounted) > 20:
            lines.append(f"  ... and {len(findings.unaccounted) - 20} more")
        lines.append("  results/ holds only what the workflow makes (an earlier config's outputs, a copy, a note?): "
                     "move them out of results/ or delete them")
    return "\n".join(lines)


def read_previous(path: Path) -> tuple[dict | None, int | None]:
    """The manifest of the last finished run (the rule flags its output update(), so Snakemake
    keeps it for this step) and its modification time; (None, None) when there is none."""
    try:
        previous = json.loads(Path(path).read_text(encoding="utf-8"))
        return (previous, Path(path).stat().st_mtime_ns) if isinstance(previous, dict) else (None, None)
    except (OSError, ValueError):
        return None, None
