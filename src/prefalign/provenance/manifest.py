"""Step `manifest`: sha256 and provenance of every artifact of a run.

`prefalign manifest` gets the run's job plan (every job's rule, wildcards, input and output
paths, params, log and benchmark files, container), which rules/manifest.smk builds from
the workflow's own rules with `workflow_plan`, and writes results/manifest.json:

    run        prefalign version, seed, date (UTC), git commit and dirty flag of the workflow, the
               container (image digest, see `container_info`), the manifest job's own
               software and hardware, the GPUs the jobs saw, the full config and its sha256
    jobs       per job: rule, wildcards, input files with their sha256, output paths,
               params and their sha256 (`config_sha256`: the config slice as the step
               received it), container image, wall time and peak memory (from its
               Snakemake benchmark file), and its environment.json where it wrote one
    artifacts  per file under results/: sha256, size, the job and rule that made it, the
               config_sha256 of that job, and its kind (prefalign.provenance.digests: `result`,
               expected identical on any x86-64 CPU; `machine`, a record of the machine, such as
               environment.json, never compared; `bounded`, not identical, with why)
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
from datetime import UTC, datetime
from pathlib import Path

from prefalign import __version__
from prefalign.errors import ConfigError, StaleError
from prefalign.hashing import canonical_sha256, sha256_file
from prefalign.jsonl import write_text
from prefalign.provenance import digests, staleness
from prefalign.provenance.plan import check_plan_paths
from prefalign.provenance.staleness import job_id
from prefalign.runtime import container_engine, cpu_hardware, package_versions

MANIFEST_VERSION = 1
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
                artifacts[key] = {**describe(file, hasher), "rule": job["rule"], "job": name, "config_sha256": config_sha,
                                  **digests.marks(key)}
                outputs.append(key)
        entry = {"rule": job["rule"], "wildcards": job["wildcards"], "outputs": outputs,
                 "directories": job["directories"], "config_sha256": config_sha, "container": job["container"],
                 "log": job["log"], "benchmark": job["benchmark"]}
        if job["benchmark"] and Path(job["benchmark"]).is_file():
            # Times only: whether a job ran again is Snakemake's record, not this file (provenance.reruns).
            entry.update(read_benchmark(Path(job["benchmark"])))
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
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
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


def refuse_stale(plan: dict, out: Path, hasher=sha256_file) -> None:
    """StaleError when a file no longer is what its job made, or results/ holds files no job makes.

    Every job that did not rerun since the previous manifest must find its outputs, and the
    files it read in source folders, as recorded (prefalign.provenance.staleness); files made
    by the jobs that did rerun are what this manifest records.
    """
    previous, written = staleness.read_previous(out)
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
