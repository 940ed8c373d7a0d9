"""profiles/slurm and the checks of the SLURM end-to-end test, without a cluster.

The end-to-end test itself (a real SLURM, the whole workflow) is tests/slurm/run.sh, a CI step
of its own; here: what the profile asks for each rule (a Snakemake dry run, which needs no
cluster), and that the end-to-end checks fail on the mistakes they exist to catch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest
from conftest import BIN, REPO

sys.path.insert(0, str(REPO / "tests" / "slurm"))
import check_slurm_run as check  # noqa: E402

# A real record of this cluster (`scontrol show job --details --oneliner`, SLURM 22.05.8).
TRAIN_SFT = (
    "JobId=7 JobName=RUN UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) "
    "QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:0 DerivedExitCode=0:0 RunTime=00:00:00 TimeLimit=12:00:00 TimeMin=N/A Partition=gpu "
    "AllocNode:Sid=localhost:9711 NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=2 "
    "TRES=cpu=2,mem=32000M,node=1,billing=2 Socks/Node=* JOB_GRES=gpu:fake:1   Nodes=vm CPU_IDs=0-1 Mem=32000 "
    "GRES= MinCPUsNode=2 MinMemoryNode=32000M MinTmpDiskNode=0 Features=(null) WorkDir=/tmp/w "
    "Comment=rule_train_sft  StdErr=/tmp/w/1.log StdIn=/dev/null StdOut=/tmp/w/1.log Power= "
    "TresPerJob=gres:gpu:fake:1"
)
# The reference pass: GPU-tagged like training, its own time limit (profiles/slurm: 240 min).
REFERENCE = TRAIN_SFT.replace("JobId=7", "JobId=10").replace("rule_train_sft", "rule_reference_logps").replace(
    "TimeLimit=12:00:00", "TimeLimit=04:00:00")
SYNTH = (
    "JobId=3 JobName=RUN JobState=COMPLETED ExitCode=0:0 TimeLimit=00:30:00 Partition=cpu CPUs/Task=1 "
    "JOB_GRES=(null) Nodes=vm CPU_IDs=0 Mem=2000 GRES= MinMemoryNode=2000M "
    "Comment=rule_generate_synthetic_raw_wildcards_synth_hh"
)


def dry_run(env_extra: dict[str, str], tmp_path, gpu_overlay: str = check.GPU_OVERLAY) -> str:
    """Snakemake's output of a dry run with profiles/slurm and a GPU overlay (default: the fake GPU)."""
    overlay = tmp_path / "gpu.yaml"
    overlay.write_text(gpu_overlay)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFALIGN_SLURM_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", **env_extra)
    result = subprocess.run(
        [str(BIN / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
         str(REPO / "config.yaml"), str(overlay), "--profile", str(REPO / "profiles" / "slurm")],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def rule_resources(output: str) -> dict[str, str]:
    """Resources per rule from the job blocks of Snakemake's output."""
    blocks = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", output, flags=re.M)
    assert blocks, output[-3000:]
    return {rule: resources for rule, resources in blocks}


def dry_run_resources(env_extra: dict[str, str], tmp_path) -> dict[str, str]:
    """Resources per rule of a dry run with profiles/slurm and the fake-GPU overlay."""
    return rule_resources(dry_run(env_extra, tmp_path))


def test_profile_sends_training_to_the_gpu_partition_with_gpus_memory_and_time(tmp_path):
    resources = dry_run_resources({"PREFALIGN_SLURM_PARTITION": "cpu", "PREFALIGN_SLURM_GPU_PARTITION": "gpu",
                                   "PREFALIGN_SLURM_ACCOUNT": "my_project"}, tmp_path)
    for rule in ("train_sft", "train_dpo"):
        for item in ("mem_mb=32000", "runtime=720", "nodes=1", "slurm_partition=gpu", "slurm_account=my_project",
                     "gpu=1", "gpu_model=fake"):
            assert item in resources[rule].split(", "), (rule, resources[rule])
    for item in ("mem_mb=32000", "runtime=240", "nodes=1", "slurm_partition=gpu", "gpu=1", "gpu_model=fake"):
        assert item in resources["reference_logps"].split(", "), resources["reference_logps"]
    for rule in ("generate_synthetic_raw", "normalize_dataset", "split_dataset", "build_base_model",
                 "evaluate_model", "render_report"):
        items = resources[rule].split(", ")
        assert "slurm_partition=cpu" in items and "slurm_account=my_project" in items, (rule, items)
        assert not any(item.startswith("gpu") for item in items), (rule, items)
    assert "mem_mb=16000" in resources["evaluate_model"] and "runtime=30" in resources["render_report"]


def test_several_gpus_are_one_request_on_one_node_and_an_accelerate_launch(tmp_path):
    output = dry_run({}, tmp_path, "gpu:\n  count: 2\n  model: h200\n")
    resources = rule_resources(output)
    for rule in ("train_sft", "train_dpo"):
        items = resources[rule].split(", ")
        assert {"gpu=2", "gpu_model=h200", "nodes=1"} <= set(items), (rule, items)
        assert re.search(rf"accelerate launch --num_processes 2 .*-m prefalign {rule.removeprefix('train_')} ",
                         output), output[-3000:]


def test_profile_without_variables_sets_no_partition_or_account(tmp_path):
    resources = dry_run_resources({}, tmp_path)
    assert not any("slurm_partition" in r or "slurm_account" in r for r in resources.values()), resources


def test_gpu_partition_falls_back_to_the_partition(tmp_path):
    resources = dry_run_resources({"PREFALIGN_SLURM_PARTITION": "batch"}, tmp_path)
    assert "slurm_partition=batch" in resources["train_dpo"].split(", ")


def test_profile_rules_exist_in_the_workflow():
    _, per_rule = check.profile_resources({})
    rules = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
    assert set(per_rule) <= rules, set(per_rule) - rules


def test_resources_are_evaluated_for_a_first_attempt():
    defaults, per_rule = check.profile_resources({"PREFALIGN_SLURM_PARTITION": "cpu"})
    want = check.expected_resources("train_sft", defaults, per_rule)
    assert (want["mem_mb"], want["runtime"], want["slurm_partition"]) == (32000, 720, "cpu")


# ---------------------------------------------------------------- the end-to-end checks


def test_artifact_comparison_names_every_difference_but_ignores_environment_records(tmp_path):
    for run, weights in (("a", b"1"), ("b", b"2")):
        (tmp_path / run / "results/sft").mkdir(parents=True)
        (tmp_path / run / "results/sft/model.bin").write_bytes(weights)
        (tmp_path / run / "results/sft/environment.json").write_text(run)
        (tmp_path / run / "results/sft/metrics.json").write_text("{}")
    (tmp_path / "b/results/extra.txt").write_text("x")
    a, b = check.hash_results(tmp_path / "a"), check.hash_results(tmp_path / "b")
    assert "results/sft/environment.json" not in a
    assert check.compare_artifacts(a, b) == ["artifact only in the SLURM run: results/extra.txt",
                                             "artifact differs: results/sft/model.bin"]
    assert check.compare_artifacts(a, a) == []
    assert check.compare_artifacts({}, {}) == ["the local run made no artifacts under results/"]


def test_the_configs_may_differ_in_their_gpu_section_only(tmp_path):
    """The SLURM run adds `gpu: {count: 1, model: fake}` to the local run's default: the resolved config is
    compared without that section, and a card citing the resolved config's sha256 by that comparison."""
    import hashlib

    def run(name, gpu, seed):
        resolved = f"# the resolved config\ngpu:\n  count: {gpu}  # preset\nseed: {seed}\n"
        folder = tmp_path / name
        (folder / "results/config").mkdir(parents=True)
        (folder / "results/cards/sft").mkdir(parents=True)
        (folder / "results/config/resolved.yaml").write_text(resolved)
        digest = hashlib.sha256(resolved.encode()).hexdigest()
        (folder / "results/cards/sft/README.md").write_text(f"config sha256 `{digest}`\n")
        (folder / "results/manifest.json").write_text(name)  # a record of the run: not compared
        return check.hash_results(folder)

    local, slurm, other = run("local", 0, 1234), run("slurm", 1, 1234), run("other", 1, 99)
    assert set(local) == {"results/config/resolved.yaml", "results/cards/sft/README.md"}
    assert check.compare_artifacts(local, slurm) == []
    assert check.compare_artifacts(local, other) == ["artifact differs: results/cards/sft/README.md",
                                                     "artifact differs: results/config/resolved.yaml"]


def test_scontrol_records_and_units():
    (record,) = check.parse_scontrol(TRAIN_SFT)
    assert check.job_rule(record) == "train_sft"
    assert (record["TresPerJob"], record["JOB_GRES"], record["Mem"]) == ("gres:gpu:fake:1", "gpu:fake:1", "32000")
    assert check.job_rule(check.parse_scontrol(SYNTH)[0]) == "generate_synthetic_raw"
    assert [check.minutes(t) for t in ("00:30:00", "12:00:00", "1-00:00:00", "05:00")] == [30, 720, 1440, 5]
    assert [check.megabytes(m) for m in ("32000M", "64G", "512K")] == [32000, 65536, 0]


def job_check(*lines: str, jobs=None, submitted=None):
    defaults, per_rule = check.profile_resources(check.PARTITIONS)
    records = [r for line in lines for r in check.parse_scontrol(line)]
    jobs = jobs or Counter(check.job_rule(r) for r in records)
    submitted = submitted or {r["JobId"] for r in records}
    threads = {"train_sft": 2, "train_dpo": 2, "reference_logps": 2, "generate_onpolicy_pairs": 2}
    return check.check_jobs(records, jobs, submitted, threads, defaults, per_rule)


# The on-policy sampling job (rules/onpolicy.smk): one GPU, 16 GB, 240 minutes in profiles/slurm.
ONPOLICY = (TRAIN_SFT.replace("JobId=7", "JobId=9")
            .replace("rule_train_sft", "rule_generate_onpolicy_pairs_wildcards_1")
            .replace("MinMemoryNode=32000M", "MinMemoryNode=16000M")
            .replace("TimeLimit=12:00:00", "TimeLimit=04:00:00"))


def test_job_checks_pass_on_the_requests_the_profile_makes():
    assert job_check(TRAIN_SFT, SYNTH, jobs=Counter(train_sft=1, generate_synthetic_raw=1)) == [
        "no SLURM job for the GPU-tagged rules ['generate_onpolicy_pairs', 'reference_logps', 'train_dpo']"]
    dpo = TRAIN_SFT.replace("JobId=7", "JobId=8").replace("rule_train_sft", "rule_train_dpo")
    assert job_check(TRAIN_SFT, dpo, REFERENCE, ONPOLICY, SYNTH) == []


@pytest.mark.parametrize("broken, message", [
    (TRAIN_SFT.replace(" TresPerJob=gres:gpu:fake:1", ""), "requested TresPerJob=(none), expected gres:gpu:fake:1"),
    (TRAIN_SFT.replace("TresPerJob=gres:gpu:fake:1", "TresPerJob=gres:gpu:1"), "expected gres:gpu:fake:1"),
    (TRAIN_SFT.replace("JOB_GRES=gpu:fake:1", "JOB_GRES=(null)"), "allocated JOB_GRES=(null)"),
    (TRAIN_SFT.replace("Partition=gpu", "Partition=cpu"), "partition cpu, expected gpu"),
    (TRAIN_SFT.replace("MinMemoryNode=32000M", "MinMemoryNode=2000M"), "memory 2000M, expected 32000 MB"),
    (TRAIN_SFT.replace("TimeLimit=12:00:00", "TimeLimit=00:30:00"), "time limit 00:30:00, expected 720 min"),
    (TRAIN_SFT.replace("CPUs/Task=2", "CPUs/Task=1"), "1 CPUs per task, expected 2"),
    (TRAIN_SFT.replace("JobState=COMPLETED", "JobState=FAILED"), "state FAILED"),
    (SYNTH.replace("JOB_GRES=(null)", "JOB_GRES=gpu:fake:1"), "a job without GPU tag asked for or got a GPU"),
])
def test_job_checks_fail_on_a_wrong_request(broken, message):
    dpo = TRAIN_SFT.replace("JobId=7", "JobId=8").replace("rule_train_sft", "rule_train_dpo")
    records = [broken if broken.split()[0] == line.split()[0] else line for line in (TRAIN_SFT, dpo, REFERENCE, SYNTH)]
    failures = job_check(*records)
    assert any(message in f for f in failures), failures


def test_job_checks_compare_with_the_job_table_and_the_submission_log():
    dpo = TRAIN_SFT.replace("JobId=7", "JobId=8").replace("rule_train_sft", "rule_train_dpo")
    failures = job_check(TRAIN_SFT, dpo, SYNTH, jobs=Counter(train_sft=1, train_dpo=1, generate_synthetic_raw=2),
                         submitted={"3", "7", "8", "9"})
    assert any("!= Snakemake's job table" in f for f in failures)
    assert any("!= the plugin's submissions" in f for f in failures)


def test_snakemake_log_parsing():
    log = ("SLURM run ID: 0b1c\nJob stats:\njob                       count\n----------------------  -------\n"
           "all                          1\ntrain_sft                    1\ntotal                        2\n\n"
           "[Sat Nov 21 12:31:36 2026]\nrule train_sft:\n    jobid: 10\n    threads: 2\n    resources: gpu=1\n"
           "Job 10 has been submitted with SLURM jobid 7 (log: x).\n"
           "[Sat Nov 21 12:31:37 2026]\nlocalrule all:\n    jobid: 0\n")
    assert check.slurm_run_id(log) == "0b1c"
    assert check.job_table(log) == Counter(all=1, train_sft=1)
    assert check.submitted_job_ids(log) == {"7"}
    assert check.rule_threads(log) == {"train_sft": 2, "all": 1}
    assert check.gpu_tagged_rules(log) == {"train_sft"}
    with pytest.raises(ValueError, match="slurm executor"):
        check.slurm_run_id("no id here")


def test_only_the_target_and_the_staging_copies_may_stay_off_the_cluster():
    log = ("localrule stage_expected:\n    output: results/config/expected.yaml\n"
           "localrule train_sft:\n    output: results/sft/model\n"
           "rule train_dpo:\n    output: results/dpo/model\n")
    # train_sft run locally stays expected on SLURM, so its missing job is a failure of the check
    assert check.local_rules(log) == {"all", "stage_expected"}
