"""End to end on a real SLURM cluster: the default workflow submitted through
snakemake-executor-plugin-slurm with profiles/slurm gives the same artifacts as a local run.

The SLURM run uses the embedded default plus `gpu: {count: 1, model: fake}`, so the training
rules are GPU-tagged (resources gpu=1, gpu_model=fake) while they still train on the CPU. The
local run is the embedded default itself: in CI, the test session's shared run (`--local-run`,
tests/conftest.py default_run); without it, this script makes one. The check then reads every
submitted job back from SLURM (`scontrol show job`) and requires:

- every file under results/ byte-identical to the local run's, except the run's records:
  results/*/environment.json (the environment of the step that wrote it) and
  results/manifest.json (each job's machine and wall time; its artifacts are compared here one
  by one). The two configs differ only in their `gpu` section, which tags jobs for the scheduler
  and changes no computed value: results/config/resolved.yaml is compared without that
  section, and the model cards, which cite the resolved config's sha256, with that one digest
  replaced by the resolved config's own comparison;
- one SLURM job per job of the SLURM run's own job table (minus the target rule `all`), each
  COMPLETED with exit code 0, and the same job ids as the plugin's submission log;
- the GPU-tagged rules requested `--gpus=fake:1` (SLURM's TresPerJob=gres:gpu:fake:1), were
  given the fake GPU (JOB_GRES) and ran in the GPU partition; every other job asked for no GPU
  and ran in the CPU partition (PREFALIGN_SLURM_GPU_PARTITION / PREFALIGN_SLURM_PARTITION);
- memory and time limits equal to the profile's values for a first attempt, CPUs per task equal
  to the rule's threads.

Usage (with the cluster of tests/slurm/cluster.sh up; tests/slurm/run.sh does all of it):

    python tests/slurm/check_slurm_run.py WORK_DIR [--local-run DIR]

Exits 0 when everything holds, 1 with one line per failure otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
import yte

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROFILE = REPO / "profiles" / "slurm"
GPU_OVERLAY = "gpu:\n  count: 1\n  model: fake\n"
GPU_REQUEST = "gres:gpu:fake:1"  # how SLURM 22.05 records `--gpus=fake:1` (TresPerJob)
# rules/sft.smk, rules/dpo.smk: resources **gpu_resources(); rules/onpolicy.smk: the sampling job asks for one GPU.
GPU_RULES = {"train_sft", "train_dpo", "reference_logps", "generate_onpolicy_pairs"}
PARTITIONS = {"PREFALIGN_SLURM_PARTITION": "cpu", "PREFALIGN_SLURM_GPU_PARTITION": "gpu"}


# ---------------------------------------------------------------- artifacts


MANIFEST = Path("results/manifest.json")
RESOLVED = Path("results/config/resolved.yaml")


def resolved_without_gpu(path: Path) -> bytes:
    """The resolved config's values without the `gpu` section (the scheduler's tags), canonical JSON."""
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    values.pop("gpu", None)
    return json.dumps(values, sort_keys=True).encode("utf-8")


def hash_results(workdir: Path) -> dict[str, str]:
    """sha256 of every file under workdir/results, by relative path, without the run's records
    (environment.json files, the manifest); the resolved config without its gpu section, and the
    model cards with the resolved config's sha256 replaced by that comparison's."""
    resolved_file = workdir / RESOLVED
    resolved_digest = hashlib.sha256(resolved_file.read_bytes()).hexdigest() if resolved_file.is_file() else None
    hashes = {}
    for path in sorted((workdir / "results").rglob("*")):
        relative = path.relative_to(workdir)
        if not path.is_file() or is_environment_record(relative) or relative == MANIFEST:
            continue
        data = path.read_bytes()
        if relative == RESOLVED:
            data = resolved_without_gpu(path)
        elif relative.parts[:2] == ("results", "cards") and resolved_digest:
            comparable = hashlib.sha256(resolved_without_gpu(resolved_file)).hexdigest()
            data = data.replace(resolved_digest.encode(), comparable.encode())
        hashes[relative.as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def is_environment_record(relative: Path) -> bool:
    parts = relative.parts
    return len(parts) == 3 and parts[0] == "results" and parts[2] == "environment.json"


def compare_artifacts(local: dict[str, str], slurm: dict[str, str]) -> list[str]:
    failures = [f"artifact only in the local run: {p}" for p in sorted(local.keys() - slurm.keys())]
    failures += [f"artifact only in the SLURM run: {p}" for p in sorted(slurm.keys() - local.keys())]
    failures += [f"artifact differs: {p}" for p in sorted(local.keys() & slurm.keys()) if local[p] != slurm[p]]
    if not local:
        failures.append("the local run made no artifacts under results/")
    return failures


# ---------------------------------------------------------------- Snakemake's log


def job_table(log: str) -> Counter:
    """Jobs per rule from the 'Job stats' table Snakemake prints before it starts."""
    table = log.split("Job stats:", 1)[-1].split("\n\n", 1)[0]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"})


def local_rules(log: str) -> set[str]:
    """The rules Snakemake ran on the submitting host (`localrule NAME:`), `all` always among them."""
    found = set(re.findall(r"^localrule (\w+):$", log, flags=re.M)) | {"all"}
    return {rule for rule in found if rule == "all" or rule.startswith("stage_")}


def slurm_run_id(log: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", log)
    if not match:
        raise ValueError("no 'SLURM run ID' in Snakemake's log: was the slurm executor used?")
    return match.group(1)


def submitted_job_ids(log: str) -> set[str]:
    return set(re.findall(r"has been submitted with SLURM jobid (\d+)", log))


def rule_threads(log: str) -> dict[str, int]:
    """Threads per rule from the job blocks Snakemake logs (a block without 'threads:' has 1)."""
    threads = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        match = re.match(r"(?:local)?rule (\w+):\n", block)
        if match:
            found = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
            threads[match.group(1)] = int(found.group(1)) if found else 1
    return threads


def gpu_tagged_rules(log: str) -> set[str]:
    """Rules whose jobs Snakemake logged with a gpu resource."""
    return set(re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: .*\bgpu=\d", log, flags=re.M))


# ---------------------------------------------------------------- SLURM's records


def parse_scontrol(text: str) -> list[dict[str, str]]:
    """Records of `scontrol show job --details --oneliner`: one line per job, KEY=VALUE tokens."""
    records = []
    for line in text.splitlines():
        if not line.startswith("JobId="):
            continue
        record = {}
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep and key not in record:  # --details repeats Nodes=/CPU_IDs=/Mem= per node
                record[key] = value
        records.append(record)
    return records


def job_rule(record: dict[str, str]) -> str:
    """The rule of a job: the plugin's comment is rule_<rule> or rule_<rule>_wildcards_<values>."""
    match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", record.get("Comment", ""))
    return match.group(1) if match else "?"


def megabytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", value).groups()
    return round(float(number) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[unit])


def minutes(value: str) -> int:
    """SLURM's time limit ([D-]HH:MM:SS, MM:SS) in minutes."""
    days, _, clock = value.rpartition("-")
    fields = [int(f) for f in clock.split(":")]
    while len(fields) < 3:
        fields.insert(0, 0)
    hours, mins, secs = fields
    return int(days or 0) * 1440 + hours * 60 + mins + round(secs / 60)


# ---------------------------------------------------------------- the profile's expectations


def profile_resources(environ: dict[str, str]) -> tuple[dict, dict[str, dict]]:
    """default-resources and set-resources of profiles/slurm as Snakemake reads them under environ."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        with open(PROFILE / "config.yaml") as stream:
            profile = yte.process_yaml(stream, require_use_yte=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return profile.get("default-resources", {}), profile.get("set-resources", {})


def first_attempt(value) -> int | str:
    """A resource value from the profile, evaluated as Snakemake does for attempt 1."""
    if isinstance(value, str):
        try:
            return eval(value, {"attempt": 1})  # the profile's expressions, e.g. "32000 * attempt"
        except NameError:
            return value
    return value


def expected_resources(rule: str, defaults: dict, per_rule: dict[str, dict]) -> dict:
    resources = {**defaults, **per_rule.get(rule, {})}
    return {key: first_attempt(value) for key, value in resources.items()}


# ---------------------------------------------------------------- checks


def check_jobs(records, expected_jobs: Counter, submitted: set[str], threads: dict[str, int], defaults: dict,
               per_rule: dict[str, dict]) -> list[str]:
    """Failures of the SLURM job records against the workflow, the profile and the GPU tags."""
    failures = []
    by_rule = Counter(job_rule(r) for r in records)
    if by_rule != expected_jobs:
        failures.append(f"jobs per rule in SLURM {dict(by_rule)} != Snakemake's job table {dict(expected_jobs)}")
    seen = {r["JobId"] for r in records}
    if seen != submitted:
        failures.append(f"SLURM job ids {sorted(seen)} != the plugin's submissions {sorted(submitted)}")
    if not GPU_RULES <= set(by_rule):
        failures.append(f"no SLURM job for the GPU-tagged rules {sorted(GPU_RULES - set(by_rule))}")
    for record in records:
        rule = job_rule(record)
        job = f"job {record['JobId']} ({rule})"
        want = expected_resources(rule, defaults, per_rule)
        if (record.get("JobState"), record.get("ExitCode")) != ("COMPLETED", "0:0"):
            failures.append(f"{job}: state {record.get('JobState')}, exit code {record.get('ExitCode')}")
        tres_per_job = record.get("TresPerJob", "")
        job_gres = record.get("JOB_GRES", "(null)")
        if rule in GPU_RULES:
            if tres_per_job != GPU_REQUEST:
                failures.append(f"{job}: requested TresPerJob={tres_per_job or '(none)'}, expected {GPU_REQUEST} "
                                "(sbatch --gpus=fake:1)")
            if not job_gres.startswith("gpu:fake:1"):
                failures.append(f"{job}: allocated JOB_GRES={job_gres}, expected gpu:fake:1")
        elif "gpu" in tres_per_job or "gpu" in job_gres:
            failures.append(f"{job}: a job without GPU tag asked for or got a GPU ({tres_per_job}, {job_gres})")
        if record.get("Partition") != want.get("slurm_partition"):
            failures.append(f"{job}: partition {record.get('Partition')}, expected {want.get('slurm_partition')}")
        if megabytes(record.get("MinMemoryNode", "0")) != want.get("mem_mb"):
            failures.append(f"{job}: memory {record.get('MinMemoryNode')}, expected {want.get('mem_mb')} MB")
        if minutes(record.get("TimeLimit", "0")) != want.get("runtime"):
            failures.append(f"{job}: time limit {record.get('TimeLimit')}, expected {want.get('runtime')} min")
        if int(record.get("CPUs/Task", "0")) != threads.get(rule, 1):
            failures.append(f"{job}: {record.get('CPUs/Task')} CPUs per task, expected {threads.get(rule, 1)}")
    return failures


# ---------------------------------------------------------------- runs


def start_snakemake(workdir: Path, configs: list[Path], *args: str, env: dict[str, str]) -> dict:
    """Start Snakemake in workdir; its stdout and stderr go to workdir/snakemake.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
               *map(str, configs), *args]
    log = open(workdir / "snakemake.log", "w")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    return {"process": process, "log": log, "workdir": workdir, "start": time.monotonic(), "args": args}


def finish_snakemake(run: dict) -> str:
    """Wait for a run; its log, or exit with the log's end when Snakemake failed."""
    returncode = run["process"].wait()
    run["log"].close()
    text = (run["workdir"] / "snakemake.log").read_text()
    print(f"check_slurm_run: snakemake {' '.join(run['args'])}: exit {returncode}, "
          f"{time.monotonic() - run['start']:.0f} s wall", flush=True)
    if returncode != 0:
        sys.exit(f"check_slurm_run: Snakemake failed in {run['workdir']}; the end of its log:\n{text[-6000:]}")
    return text


def stop_snakemake(runs: list[dict]) -> None:
    """Stop runs still going (on a failure or SIGTERM); Snakemake cancels its SLURM jobs itself."""
    for run in runs:
        if run["process"].poll() is None:
            run["process"].terminate()
            try:
                run["process"].wait(timeout=60)
            except subprocess.TimeoutExpired:
                run["process"].kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="an empty or new directory for both runs")
    parser.add_argument("--local-run", type=Path,
                        help="a finished local run of the embedded default to compare with (CI: the test session's "
                             "shared run) instead of making one")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    overlay = work / "gpu-fake.yaml"
    overlay.write_text(GPU_OVERLAY)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFALIGN_SLURM_")}
    # No PYTHONHASHSEED here on purpose: the two runs must agree under different hash seeds
    # (training.save_adapter writes adapter_config.json's LoRA target modules sorted).
    env.pop("PYTHONHASHSEED", None)
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", HF_HUB_OFFLINE="1", **PARTITIONS)

    # Without a local run given, both at once: the SLURM run spends minutes waiting (job start-up,
    # status polls every 1 s growing to tens of seconds) that the local run's training fills.
    runs = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        runs.append(start_snakemake(work / "slurm", [REPO / "config.yaml", overlay], "--profile", str(PROFILE),
                                    # the first status check after 1 s instead of 40 s: this cluster is idle
                                    "--slurm-init-seconds-before-status-checks", "1", env=env))
        local = args.local_run.resolve() if args.local_run else work / "local"
        if not args.local_run:
            runs.append(start_snakemake(local, [REPO / "config.yaml"], "--cores", "all", env=env))
            finish_snakemake(runs[-1])
        slurm_log = finish_snakemake(runs[0])
    finally:
        stop_snakemake(runs)

    local_artifacts = hash_results(local)
    failures = compare_artifacts(local_artifacts, hash_results(work / "slurm"))
    run_id = slurm_run_id(slurm_log)
    scontrol = subprocess.run(["scontrol", "show", "job", "--details", "--oneliner"], capture_output=True,
                              text=True, check=True).stdout
    (work / "scontrol-show-job.txt").write_text(scontrol)
    records = [r for r in parse_scontrol(scontrol) if r.get("JobName") == run_id]
    defaults, per_rule = profile_resources(env)
    expected_jobs = job_table(slurm_log)
    # Rules Snakemake runs on the submitting host (logged as `localrule`): the target and the copies of
    # files from outside the run (stage_*); only those may stay off the cluster.
    for rule in local_rules(slurm_log):
        expected_jobs.pop(rule, None)
    failures += check_jobs(records, expected_jobs, submitted_job_ids(slurm_log), rule_threads(slurm_log),
                           defaults, per_rule)
    if gpu_tagged_rules(slurm_log) != GPU_RULES:
        failures.append(f"GPU-tagged rules in Snakemake's log {sorted(gpu_tagged_rules(slurm_log))}, "
                        f"expected {sorted(GPU_RULES)}")

    gpu_jobs = [f"{r['JobId']} {job_rule(r)} TresPerJob={r.get('TresPerJob')} JOB_GRES={r.get('JOB_GRES')} "
                f"Partition={r.get('Partition')}" for r in records if job_rule(r) in GPU_RULES]
    print(f"check_slurm_run: {len(records)} SLURM jobs of run {run_id}; GPU jobs:\n  " + "\n  ".join(gpu_jobs))
    if failures:
        print("check_slurm_run: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"check_slurm_run: passed: {len(local_artifacts)} artifacts identical, {len(records)} jobs as "
          "requested")
    return 0


if __name__ == "__main__":
    sys.exit(main())
