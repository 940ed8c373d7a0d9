"""Check that a workflow run in containers made the same artifacts as a run on the host.

    python containers/compare_runs.py HOST_RUN CONTAINER_RUN --image containers/prefalign-cpu-<sha256>.sif

HOST_RUN and CONTAINER_RUN are Snakemake working directories of the same config. Exits 1
(listing every difference) unless:

- both have the same files under results/, and every one of them, but the environment.json
  files, has the same sha256 in both (results/manifest.json less what records the machine
  and container: see manifest_record);
- every environment.json of the container run names the container (Apptainer, the image file
  given, the lock file's sha256 and the project version from the image) and the host's names
  no Apptainer image (a host that is itself a Docker or podman container may say so), while
  the rest of the file (package versions, hardware, platform) is the same;
- the container run's Snakemake log shows every job ran in that image (but the local copies,
  stage_*, of files from outside the run, which run on the host by design).

Only the standard library: it runs with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

ENVIRONMENT = "environment.json"  # written by prefalign.runtime.environment(); names the container
MANIFEST = "results/manifest.json"  # its `jobs` table records each job's machine, container and wall time


def manifest_record(path: Path) -> dict:
    """The manifest less what records the machine, the container and the moment: the jobs table
    (each job's environment and wall time), the manifest job's own environment and container, its
    git record (the image has no git, so a container run records none), when it was written, and
    the environment.json entries (compared by compare_environments). The rest must agree: every
    artifact's sha256, rule and config slice, the sources, the config, the version."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.pop("jobs", None)
    for key in ("container", "environment", "git", "date"):
        manifest.get("run", {}).pop(key, None)
    manifest["artifacts"] = {name: entry for name, entry in manifest.get("artifacts", {}).items()
                             if Path(name).name != ENVIRONMENT}
    return manifest


def sha256(path: Path) -> str:
    if path.as_posix().endswith(MANIFEST):
        return hashlib.sha256(json.dumps(manifest_record(path), sort_keys=True).encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifacts(run: Path) -> dict[str, Path]:
    root = run / "results"
    return {str(p.relative_to(run)): p for p in sorted(root.rglob("*")) if p.is_file()}


def compare_artifacts(host: Path, container: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Problems, and (path, sha256) of every artifact compared by hash."""
    problems, hashed = [], []
    a, b = artifacts(host), artifacts(container)
    if not a:
        problems.append(f"{host}/results: no artifacts")
    for name in sorted(a.keys() - b.keys()):
        problems.append(f"{name}: only in the host run")
    for name in sorted(b.keys() - a.keys()):
        problems.append(f"{name}: only in the container run")
    for name in sorted(a.keys() & b.keys()):
        if Path(name).name == ENVIRONMENT:
            continue
        left, right = sha256(a[name]), sha256(b[name])
        if left != right:
            problems.append(f"{name}: sha256 {left} on the host, {right} in the container")
        hashed.append((name, left))
    return problems, hashed


def compare_environments(host: Path, container: Path, image: Path, lock_sha256: str, version: str) -> list[str]:
    problems = []
    names = sorted(n for n in artifacts(host) if Path(n).name == ENVIRONMENT)
    if not names:
        problems.append(f"no {ENVIRONMENT} under {host}/results")
    for name in names:
        left = json.loads((host / name).read_text(encoding="utf-8"))
        right = json.loads((container / name).read_text(encoding="utf-8"))
        ran_in = right.pop("container", None)
        # The host may itself be a Docker or podman container (CI machines often are, and
        # prefalign.runtime says so): only Apptainer, the container under test, is wrong there.
        host_in = left.pop("container", None)
        if host_in and host_in.get("engine") == "apptainer":
            problems.append(f"{name}: the host run ran in Apptainer: {host_in}")
        expected = {"engine": "apptainer", "file": str(image.resolve()),
                    "image": {"lock_sha256": lock_sha256, "version": version}}
        if not ran_in:
            problems.append(f"{name}: the container run names no container")
        else:
            got = {"engine": ran_in.get("engine"), "file": ran_in.get("file"),
                   "image": {k: ran_in.get("image", {}).get(k) for k in ("lock_sha256", "version")}}
            if got != expected:
                problems.append(f"{name}: container {got}, expected {expected}")
            print(f"{name}: container {json.dumps(ran_in)}")
        for key in sorted(left.keys() | right.keys()):
            if left.get(key) != right.get(key):
                problems.append(f"{name}: {key} differs: host {left.get(key)!r}, container {right.get(key)!r}")
    return problems


def jobs_in_image(container: Path, image: Path) -> list[str]:
    """Every job of the container run's last Snakemake log ran in `image`."""
    logs = sorted((container / ".snakemake" / "log").glob("*.snakemake.log"), key=os.path.getmtime)
    if not logs:
        return [f"{container}/.snakemake/log: no Snakemake log"]
    text = logs[-1].read_text(encoding="utf-8", errors="replace")
    # `all` runs nothing; stage_* copy a file from outside the run into it on the host (by design: the
    # container sees the run's folder only).
    jobs = len(re.findall(r"^(?:local)?rule (?!all:|stage_)\w+:$", text, flags=re.M))
    activated = re.findall(r"^Activating (?:singularity|apptainer) image (\S+)$", text, flags=re.M)
    wrong = {p for p in activated if Path(p).resolve() != image.resolve()}
    problems = [f"{logs[-1]}: a job ran in {p}, not {image}" for p in sorted(wrong)]
    if jobs == 0 or len(activated) != jobs:
        problems.append(f"{logs[-1]}: {jobs} jobs, {len(activated)} of them ran in an image")
    else:
        print(f"{logs[-1].name}: all {jobs} jobs ran in {image}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host", type=Path, help="Snakemake working directory of the host run")
    parser.add_argument("container", type=Path, help="Snakemake working directory of the container run")
    parser.add_argument("--image", type=Path, required=True, help="the SIF file the container run used")
    parser.add_argument("--lock", type=Path, default=Path("envs/cpu.lock.txt"), help="the image's lock file")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"), help="for the project version")
    args = parser.parse_args(argv)

    version = re.search(r'^version = "([^"]+)"', args.pyproject.read_text(encoding="utf-8"), flags=re.M).group(1)
    problems, hashed = compare_artifacts(args.host, args.container)
    problems += compare_environments(args.host, args.container, args.image, sha256(args.lock), version)
    problems += jobs_in_image(args.container, args.image)
    listing = "".join(f"{digest}  {name}\n" for name, digest in hashed)
    print(f"{len(hashed)} artifacts compared by sha256 (listing digest {hashlib.sha256(listing.encode()).hexdigest()})")
    if problems:
        print(f"FAILED: {len(problems)} difference(s) between {args.host} and {args.container}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"identical: {len(hashed)} artifacts, bit for bit; environment.json names the container")
    return 0


if __name__ == "__main__":
    sys.exit(main())
