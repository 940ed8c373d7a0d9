"""Step `manifest`: sha256 and provenance of every artifact of a run.

`prefalign manifest` gets the run's job plan (every job's rule, wildcards, input and output
paths, params, log and benchmark files, container), which rules/manifest.smk builds from
the workflow's own rules with `workflow_plan`, and writes results/manifest.json:

    run        prefalign version, seed, git commit and dirty flag of the workflow, the
               container (image digest, see `container_info`), the manifest job's own
               software and hardware, the GPUs the jobs saw, the full config and its sha256
    jobs       per job: rule, wildcards, input files with their sha256, output paths,
               params and their sha256 (`config_sha256`: the config slice as the step
               received it), container image, wall time and peak memory (from its
               Snakemake benchmark file), and its environment.json where it wrote one
    artifacts  per file under results/: sha256, size, the job and rule that made it, the
               config_sha256 of that job
    sources    files the jobs read that no job made (local raw datasets): sha256, size

Directory outputs are expanded to their files. Wall time and memory live here, in the
record of the run, and never in the artifacts it hashes. The values of environment
variables that look like credentials (HF_TOKEN, ...) are never written: the text is
scrubbed of them before it is saved.

`prefalign verify` (prefalign.provenance.verify) checks a manifest against the files.

Assumes paths relative to the workflow's working directory; reads only the files in the
plan (all declared inputs of the manifest rule) and the git metadata of the workflow folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
from pathlib import Path, PurePosixPath

from prefalign import __version__
from prefalign.errors import ConfigError, StaleError
from prefalign.hashing import canonical_sha256, sha256_file
from prefalign.jsonl import write_text
from prefalign.provenance import staleness
from prefalign.provenance.staleness import job_id
from prefalign.runtime import container_engine, cpu_hardware, package_versions

MANIFEST_VERSION = 1
OUTPUT_ROOTS = ("results", "logs", "benchmarks")
# Set in the image (Containerfile ENV / Apptainer %environment) or by the launcher; see container_info.
IMAGE_DIGEST_VAR = "PREFALIGN_IMAGE_DIGEST"
IMAGE_NAME_VAR = "PREFALIGN_IMAGE"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH", re.IGNORECASE)
# Snakemake writes these into directory outputs to track their modification time: bookkeeping, not artifacts.
SNAKEMAKE_FILES = {".snakemake_timestamp"}


# ---------------------------------------------------------------- hashing



def files_of(path: Path) -> list[Path]:
    """The file itself, or every file under a folder (sorted; Snakemake's own marker files left out)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in SNAKEMAKE_FILES)
    return [path]


class Hasher:
    """sha256_file with memory: the staleness check and the manifest hash each file once."""

    def __init__(self):
        self.known: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        key = Path(path).as_posix()
        if key not in self.known:
            self.known[key] = sha256_file(Path(path))
        return self.known[key]


def describe(path: Path, hasher=sha256_file) -> dict:
    return {"sha256": hasher(path), "size": path.stat().st_size}


# ---------------------------------------------------------------- the plan (built in rules/manifest.smk)

def _named_paths(files) -> dict[str, list[str]]:
    """{name: [paths]} of a Snakemake file list (unnamed entries under "_")."""
    named: dict[str, list[str]] = {}
    for name, value in files._allitems():
        values = value if isinstance(value, list) else [value]
        named.setdefault(name or "_", []).extend(str(f) for f in values)
    return named


def _job(rule, wildcards: dict) -> dict:
    inputs, _, _, _ = rule.expand_input(wildcards)
    outputs, _ = rule.expand_output(wildcards)
    params, _ = rule.expand_params(wildcards, inputs, outputs, job=None)
    benchmark = rule.expand_benchmark(wildcards)
    return {
        "rule": rule.name,
        "wildcards": dict(wildcards),
        "inputs": _named_paths(inputs),
        "outputs": {name: paths[0] for name, paths in _named_paths(outputs).items()},
        "directories": [str(f) for f in outputs if f.is_directory],
        "log": [str(f) for f in rule.expand_log(wildcards)],
        "benchmark": str(benchmark) if benchmark else None,
        "params": dict(params.items()),
        "container": rule.expand_container_img(wildcards),
    }


def workflow_plan(rules, wildcard_values: dict[str, list], config: dict, skip=("all",),
                  rule_combos: dict[str, list[dict]] | None = None) -> dict:
    """Every job of the workflow (one per rule and wildcard combination) as the manifest records it.

    Called inside the Snakefile (rules/manifest.smk) with `workflow.rules`, after every other
    rule is defined: it expands each rule's inputs, outputs, params, log and benchmark the
    way Snakemake does for a job (Snakemake 9's Rule.expand_* methods). A rule's jobs are
    every combination of its wildcards' values, or exactly the wildcard dicts listed for it
    in `rule_combos` (for wildcards that come in pairs, such as model and baseline of a
    comparison). Combinations that a rule's wildcard constraints exclude are left out.
    Raises ConfigError for a rule with a wildcard that has no entry in `wildcard_values`.
    `unrecorded`: the outputs of the skipped rules (made on demand, outside the manifest by
    design), which the staleness check and `verify` do not count as strays.
    """
    jobs = []
    rule_combos = rule_combos or {}
    for rule in rules:
        if rule.name in skip:
            continue
        if rule.name in rule_combos:
            jobs.extend(_job(rule, combo) for combo in rule_combos[rule.name])
            continue
        names = sorted(rule.wildcard_names)
        unknown = [n for n in names if n not in wildcard_values]
        if unknown:
            raise ConfigError(f"rules/manifest.smk: rule {rule.name} has wildcards {unknown} with no known values; "
                              "add them to MANIFEST_WILDCARDS so the manifest covers its jobs")
        combos: list[dict] = [{}]
        for name in names:
            combos = [{**combo, name: value} for combo in combos for value in wildcard_values[name]]
        for combo in combos:
            outputs, _ = rule.expand_output(combo)
            if all(rule.is_producer(str(f)) for f in outputs):  # the rule's wildcard constraints hold
                jobs.append(_job(rule, combo))
    unrecorded = sorted({path for rule in rules if rule.name in skip for path in _outputs_of(rule, wildcard_values)}
                        - {"results/manifest.json"})
    return {"jobs": jobs, "config": config, "manifest": "results/manifest.json", "unrecorded": unrecorded}


def _outputs_of(rule, wildcard_values: dict[str, list]) -> list[str]:
    """Every output path of a rule, its wildcards expanded over their known values (none for unknown ones)."""
    names = sorted(rule.wildcard_names)
    if any(name not in wildcard_values for name in names):
        return []
    combos: list[dict] = [{}]
    for name in names:
        combos = [{**combo, name: value} for combo in combos for value in wildcard_values[name]]
    paths = []
    for combo in combos:
        outputs, _ = rule.expand_output(combo)
        if all(rule.is_producer(str(f)) for f in outputs):
            paths.extend(str(f) for f in outputs)
    return paths


# Linux caps one command-line argument at 128 KiB (MAX_ARG_STRLEN); the plan travels as one.
PLAN_LIMIT = 120_000


def plan_argument(plan: dict) -> str:
    """The plan as the JSON text the rule passes to `prefalign manifest --plan` (ConfigError if too long)."""
    text = json.dumps(plan, sort_keys=True, default=str)
    if len(text.encode("utf-8")) > PLAN_LIMIT:
        raise ConfigError(f"rules/manifest.smk: the job plan has {len(plan['jobs'])} jobs and {len(text):,} bytes, "
                          f"more than the {PLAN_LIMIT:,} one command-line argument can carry; split the run")
    return text


def plan_inputs(plan: dict) -> list[str]:
    """Everything the manifest reads: every job's inputs, outputs and benchmark file (deduplicated, in order)."""
    seen: dict[str, None] = {}
    for job in plan["jobs"]:
        for paths in job["inputs"].values():
            seen.update(dict.fromkeys(paths))
        seen.update(dict.fromkeys(job["outputs"].values()))
        if job["benchmark"]:
            seen[job["benchmark"]] = None
    return list(seen)


def previous_run_problems(plan: dict, forced_rules=(), force_all: bool = False) -> str | None:
    """Why the files of the last finished run no longer stand, or None (rules/manifest.smk, rule all).

    Called before any job runs: the manifest on disk is the record; jobs of `forced_rules` (or
    every job with `force_all`), which this invocation rebuilds anyway, are not checked. Only
    files modified after the manifest, or whose size differs, are hashed.
    """
    previous, written = read_previous(Path(plan["manifest"]))
    forced = set(forced_rules)

    def is_forced(job: dict) -> bool:
        return force_all or job["rule"] in forced or any(path in forced for path in job["outputs"].values())

    findings = staleness.check(plan, previous, written, forced=is_forced)
    if not findings:
        return None
    return ("the run's files no longer add up; nothing was run.\n"
            + staleness.explain(findings, (previous or {}).get("jobs", {}), plan["manifest"]))


def outside_roots(path: str) -> bool:
    """True when `path` would be written outside results/, logs/, benchmarks/ of the working directory."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return True
    return pure.parts[0] not in OUTPUT_ROOTS or len(pure.parts) < 2


def config_keys_in(path: str, config, prefix: str = "") -> list[str]:
    """Config keys whose value (or mapping key) appears in `path`: the likely cause of a bad path."""
    found = []
    if isinstance(config, dict):
        for key, value in config.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, str) and len(key) > 2 and key in path:
                found.append(here)
            found.extend(config_keys_in(path, value, here))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found.extend(config_keys_in(path, value, f"{prefix}[{i}]"))
    elif isinstance(config, str) and len(config) > 2 and config in path:
        found.append(prefix)
    return found


def check_plan_paths(plan: dict) -> None:
    """Raise ConfigError when a job would write (output, log, benchmark) outside the three trees."""
    problems = []
    for job in plan["jobs"]:
        written = list(job["outputs"].values()) + job["log"] + ([job["benchmark"]] if job["benchmark"] else [])
        for path in written:
            if outside_roots(path):
                keys = config_keys_in(path, plan.get("config", {}))
                cause = f" (from config key {', '.join(keys)})" if keys else ""
                problems.append(f"rule {job['rule']} would write {path!r}{cause}: outside results/, logs/, benchmarks/")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- facts about the run

def read_benchmark(path: Path) -> dict:
    """Wall time, CPU time and peak memory from a Snakemake benchmark TSV (first repeat)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return {}
    row = rows[0]

    def number(key):
        try:
            return float(row[key])
        except (KeyError, TypeError, ValueError):
            return None

    return {"wall_s": number("s"), "cpu_s": number("cpu_time"), "max_rss_mb": number("max_rss")}


def git_info(folder: Path | None) -> dict:
    """Commit and dirty flag of the workflow's git checkout (None where it cannot be seen)."""
    if folder is None or not Path(folder).is_dir():
        return {"commit": None, "dirty": None, "note": "workflow folder not visible"}
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None, "note": "not a git checkout"}
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True,
                                timeout=60)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None, "note": "git is not available"}


def container_info(environ=os.environ) -> dict:
    """The container this job runs in, as far as it can tell.

    digest: $PREFALIGN_IMAGE_DIGEST, which the image or its launcher sets (an image cannot
    hold its own digest, so the build writes it into a derived layer or the launcher passes
    it, e.g. `apptainer exec --env PREFALIGN_IMAGE_DIGEST=sha256:...`); failing that, inside
    Apptainer, the sha256 of the image file ($APPTAINER_CONTAINER) when it is readable.
    image: $PREFALIGN_IMAGE (the name and tag the build sets). runtime: apptainer, docker,
    podman, or None outside a container.
    """
    engine, image_file = container_engine(environ)
    digest, source = environ.get(IMAGE_DIGEST_VAR) or None, IMAGE_DIGEST_VAR
    if digest is None and image_file and Path(image_file).is_file():
        digest, source = "sha256:" + sha256_file(Path(image_file)), "sha256 of the image file"
    return {"runtime": engine, "image": environ.get(IMAGE_NAME_VAR) or image_file or None,
            "digest": digest, "digest_source": source if digest else None}


def own_environment() -> dict:
    """Package versions and CPU of the manifest job (torch is not imported: GPUs come from the jobs)."""
    return {"packages": package_versions(), "platform": platform.platform(), "hardware": cpu_hardware()}


def secret_values(environ=os.environ) -> dict[str, str]:
    return {name: value for name, value in environ.items() if SECRET_NAME.search(name) and len(value) >= 6}


def scrub(text: str, environ=os.environ) -> str:
    """Replace the value of every credential-like environment variable in `text`."""
    for name, value in sorted(secret_values(environ).items(), key=lambda kv: -len(kv[1])):
        text = text.replace(value, f"<redacted ${name}>")
    return text


# ---------------------------------------------------------------- building the manifest

def build(plan: dict, workflow_dir: Path | None, hasher=sha256_file) -> dict:
    artifacts: dict[str, dict] = {}
    jobs: dict[str, dict] = {}
    slices: dict[str, dict] = {}
    gpus: list[dict] = []
    for job in plan["jobs"]:
        name = job_id(job)
        config_sha = canonical_sha256(job["params"])
        slices[config_sha] = job["params"]
        outputs = []
        for path in job["outputs"].values():
            for file in files_of(Path(path)):
                key = file.as_posix()
                artifacts[key] = {**describe(file, hasher), "rule": job["rule"], "job": name, "config_sha256": config_sha}
                outputs.append(key)
        entry = {"rule": job["rule"], "wildcards": job["wildcards"], "outputs": outputs,
                 "directories": job["directories"], "config_sha256": config_sha, "container": job["container"],
                 "log": job["log"], "benchmark": job["benchmark"]}
        if job["benchmark"] and Path(job["benchmark"]).is_file():
            entry.update(read_benchmark(Path(job["benchmark"])))
            # The job's fingerprint as Snakemake ran it: a later rerun rewrites the file (staleness._settled).
            entry["benchmark_sha256"] = sha256_file(Path(job["benchmark"]))
        environment = job["outputs"].get("environment")
        if environment and Path(environment).is_file():
            entry["environment"] = json.loads(Path(environment).read_text(encoding="utf-8"))
            gpu = entry["environment"].get("hardware", {}).get("gpu")
            if gpu and gpu not in gpus:
                gpus.append(gpu)
        jobs[name] = entry
    sources: dict[str, dict] = {}
    for job in plan["jobs"]:
        inputs = {}
        for path in (p for paths in job["inputs"].values() for p in paths):
            for file in files_of(Path(path)):
                key = file.as_posix()
                if key not in artifacts and key not in sources:
                    sources[key] = describe(file, hasher)
                inputs[key] = (artifacts.get(key) or sources[key])["sha256"]
        jobs[job_id(job)]["inputs"] = inputs
    config = plan.get("config", {})
    run = {
        "prefalign": __version__,
        "seed": config.get("seed"),
        "git": git_info(workflow_dir),
        "container": container_info(),
        "environment": own_environment(),
        "gpus": gpus,
        "config": config,
        "config_sha256": canonical_sha256(config),
    }
    return {"manifest_version": MANIFEST_VERSION, "path": plan["manifest"], "run": run, "jobs": jobs,
            "config_slices": slices, "artifacts": dict(sorted(artifacts.items())),
            "sources": dict(sorted(sources.items())), "unrecorded": sorted(plan.get("unrecorded", []))}


def read_previous(path: Path) -> tuple[dict | None, int | None]:
    """The manifest of the last finished run (the rule flags its output update(), so Snakemake
    keeps it for this step) and its modification time; (None, None) when there is none."""
    try:
        previous = json.loads(Path(path).read_text(encoding="utf-8"))
        return (previous, Path(path).stat().st_mtime_ns) if isinstance(previous, dict) else (None, None)
    except (OSError, ValueError):
        return None, None


def refuse_stale(plan: dict, out: Path, hasher=sha256_file) -> None:
    """StaleError when a file no longer is what its job made, or results/ holds files no job makes.

    Every job that did not rerun since the previous manifest must find its outputs, and the
    files it read in source folders, as recorded (prefalign.provenance.staleness); files made
    by the jobs that did rerun are what this manifest records.
    """
    previous, written = read_previous(out)
    findings = staleness.check(plan, previous, written, full=True, hasher=hasher)
    if findings:
        raise StaleError(f"{out} is not written: this run's files do not add up.\n"
                         + staleness.explain(findings, (previous or {}).get("jobs", {}), f"{out} (previous run)"))


def write(manifest: dict, out: Path) -> None:
    """Write scrubbed JSON atomically: never half a manifest."""
    write_text(out, scrub(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"))


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", required=True, help="the job plan (JSON text, from rules/manifest.smk)")
    parser.add_argument("--out", type=Path, required=True, help="output: the manifest (JSON)")
    parser.add_argument("--workflow-dir", type=Path, help="the workflow's folder, for its git commit and dirty flag")


def main(args: argparse.Namespace) -> None:
    try:
        plan = json.loads(args.plan)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"plan: not valid JSON ({exc})") from None
    check_plan_paths(plan)
    hasher = Hasher()
    refuse_stale(plan, args.out, hasher)
    manifest = build(plan, args.workflow_dir, hasher)
    write(manifest, args.out)
    print(f"manifest: {len(manifest['artifacts'])} artifacts, {len(manifest['sources'])} sources, "
          f"{len(manifest['jobs'])} jobs -> {args.out}")
