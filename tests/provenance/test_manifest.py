"""prefalign manifest and prefalign verify through the CLI, on a small plan made here.

The workflow tests check the manifest of the real default run (tests/workflow/test_workflow.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import BIN

from prefalign.errors import ConfigError
from prefalign.provenance import manifest, reruns
from prefalign.provenance import plan as job_plan

TOKEN = "hf_manifestTestToken0123456789"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def run(tmp_path):
    """A finished two-job run: `make` writes a file and a folder from a local source; `use` reads them."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/raw.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "results/made/folder").mkdir(parents=True)
    (tmp_path / "results/made/table.json").write_text('{"x": 1}\n')
    (tmp_path / "results/made/folder/weights.bin").write_bytes(b"\x00\x01" * 50)
    (tmp_path / "results/made/folder/.snakemake_timestamp").write_text("")
    (tmp_path / "results/made/environment.json").write_text(json.dumps(
        {"packages": {"torch": "2.13.0"}, "hardware": {"cpu": "x", "gpu": {"name": "H100", "compute_capability": "9.0",
                                                                           "driver": "580.1"}}}))
    (tmp_path / "results/used.txt").write_text("done\n")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks/make.tsv").write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        "12.5\t0:00:12\t100.5\t200\t90\t95\t0\t1\t80\t10.0\n")
    plan = {
        "manifest": "results/manifest.json",
        "config": {"seed": 7, "make": {"steps": 3}},
        "jobs": [
            {"rule": "make", "wildcards": {}, "inputs": {"raw": ["data/raw.jsonl"]},
             "outputs": {"table": "results/made/table.json", "folder": "results/made/folder",
                         "environment": "results/made/environment.json"},
             "directories": ["results/made/folder"], "log": ["logs/make.log"], "benchmark": "benchmarks/make.tsv",
             "params": {"flags": f"--steps 3 --note {TOKEN}"}, "container": "docker://img@sha256:abc"},
            {"rule": "use", "wildcards": {"name": "x"}, "inputs": {"folder": ["results/made/folder"]},
             "outputs": {"done": "results/used.txt"}, "directories": [], "log": ["logs/use/x.log"],
             "benchmark": None, "params": {}, "container": None},
        ],
    }
    return tmp_path, plan


def write_manifest(root, plan, **env):
    environ = {"PATH": f"{BIN}:/usr/bin:/bin", "HF_TOKEN": TOKEN, **env}
    if "PYTHONPATH" in os.environ:  # a worktree's own sources, where the environment has another checkout
        environ["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([str(BIN / "prefalign"), "manifest", "--plan", json.dumps(plan), "--out",
                           "results/manifest.json", "--workflow-dir", str(root)], cwd=root, capture_output=True,
                          text=True, env=environ)


def snakemake_finished(root, job: dict) -> None:
    """What Snakemake does when a job ends (snakemake.persistence.finished): touch each output (a
    directory through its .snakemake_timestamp), then write its record with that mtime as endtime."""
    time.sleep(0.01)  # after the manifest's own mtime
    for output in job["outputs"].values():
        path = root / output
        stamp = path / ".snakemake_timestamp" if path.is_dir() else path
        stamp.touch()
        record = reruns.record_path(root, output)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"rule": job["rule"], "endtime": stamp.stat().st_mtime, "incomplete": False}))


def verify(path, cwd):
    return subprocess.run([str(BIN / "prefalign"), "verify", str(path)], cwd=cwd, capture_output=True, text=True)


def test_manifest_records_every_artifact_with_its_provenance(run):
    root, plan = run
    result = write_manifest(root, plan, PREFALIGN_IMAGE_DIGEST="sha256:" + "d" * 64)
    assert result.returncode == 0, result.stderr
    text = (root / "results/manifest.json").read_text()
    data = json.loads(text)
    artifacts = data["artifacts"]
    assert set(artifacts) == {"results/made/table.json", "results/made/folder/weights.bin",
                              "results/made/environment.json", "results/used.txt"}  # marker file left out
    weights = artifacts["results/made/folder/weights.bin"]
    assert weights == {"sha256": sha(b"\x00\x01" * 50), "size": 100, "rule": "make", "job": "make",
                       "config_sha256": manifest.canonical_sha256(plan["jobs"][0]["params"]), "kind": "result"}
    assert artifacts["results/made/environment.json"]["kind"] == "machine"  # a record of the machine, never compared
    assert "never compared" in artifacts["results/made/environment.json"]["why"]
    assert data["sources"] == {"data/raw.jsonl": {"sha256": sha(b'{"a": 1}\n'), "size": 9}}
    make, use = data["jobs"]["make"], data["jobs"]["use[name=x]"]
    assert make["inputs"] == {"data/raw.jsonl": sha(b'{"a": 1}\n')}
    assert use["inputs"] == {"results/made/folder/weights.bin": weights["sha256"]}  # the input hashes that made it
    assert make["wall_s"] == 12.5 and make["max_rss_mb"] == 100.5 and make["cpu_s"] == 10.0
    assert make["environment"]["hardware"]["gpu"]["compute_capability"] == "9.0"
    assert data["run"]["gpus"] == [{"name": "H100", "compute_capability": "9.0", "driver": "580.1"}]
    assert data["config_slices"][make["config_sha256"]]["flags"].startswith("--steps 3")
    assert data["run"]["seed"] == 7 and data["run"]["config"]["make"] == {"steps": 3}
    assert data["run"]["date"].endswith("+00:00")  # when it was written, UTC
    assert data["run"]["container"]["digest"] == "sha256:" + "d" * 64
    assert data["run"]["environment"]["packages"]["prefalign"]
    assert data["run"]["environment"]["packages"]["torch"]  # package versions of the running environment
    assert data["run"]["environment"]["hardware"]["cpu"]  # CPU model of the machine that wrote the manifest
    assert data["run"]["git"]["commit"] is None  # tmp_path is no git checkout
    assert TOKEN not in text and "<redacted $HF_TOKEN>" in text  # credentials never reach the manifest
    assert not [p for p in (root / "results").iterdir() if p.name.startswith(".manifest")]  # no temporary left


def test_git_commit_and_dirty_flag(run):
    root, plan = run
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run(git + ["init", "-q"], check=True)
    (root / ".gitignore").write_text("results/\nbenchmarks/\n")
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert write_manifest(root, plan).returncode == 0
    assert json.loads((root / "results/manifest.json").read_text())["run"]["git"] == {"commit": head, "dirty": False}
    (root / "data/raw.jsonl").write_text("changed\n")
    assert write_manifest(root, plan).returncode == 0
    assert json.loads((root / "results/manifest.json").read_text())["run"]["git"]["dirty"] is True


def test_the_manifest_step_refuses_files_changed_since_the_previous_manifest(run):
    root, plan = run
    assert write_manifest(root, plan).returncode == 0
    before = (root / "results/manifest.json").read_bytes()
    weights = root / "results/made/folder/weights.bin"
    weights.write_bytes(b"\x00\x02" * 50)  # same size, other bytes; `make` did not run again
    refused = write_manifest(root, plan)
    assert refused.returncode == 5 and "Traceback" not in refused.stderr
    assert "results/made/folder/weights.bin: differs from what make made" in refused.stderr
    assert "made from it: results/used.txt" in refused.stderr
    assert "snakemake --cores all --forcerun make" in refused.stderr
    assert (root / "results/manifest.json").read_bytes() == before  # nothing half-done: the old record stays

    # A new benchmark file does not say the job ran again (a user edits it as easily as an artifact) ...
    (root / "benchmarks/make.tsv").write_text((root / "benchmarks/make.tsv").read_text().replace("12.5", "13.1"))
    refused = write_manifest(root, plan)
    assert refused.returncode == 5 and "results/made/folder/weights.bin: differs from what make made" in refused.stderr
    # ... Snakemake's own record does: `make` ran again after the manifest, so its files are new.
    snakemake_finished(root, plan["jobs"][0])
    assert write_manifest(root, plan).returncode == 0
    assert json.loads((root / "results/manifest.json").read_text())["artifacts"]["results/made/folder/weights.bin"][
        "sha256"] == sha(b"\x00\x02" * 50)


def test_a_file_changed_after_snakemake_finished_its_job_is_refused(run):
    root, plan = run
    assert write_manifest(root, plan).returncode == 0
    snakemake_finished(root, plan["jobs"][0])  # `make` ran again ...
    time.sleep(0.01)
    (root / "results/made/table.json").write_text('{"x": 3}\n')  # ... and then its output was edited
    refused = write_manifest(root, plan)
    assert refused.returncode == 5, refused.stderr
    assert "results/made/table.json: changed after Snakemake finished make" in refused.stderr
    assert "snakemake --cores all --forcerun make" in refused.stderr


def test_a_record_of_another_rule_or_from_before_the_manifest_does_not_count(run):
    root, plan = run
    job = plan["jobs"][0]
    snakemake_finished(root, job)  # finished before the manifest below
    assert write_manifest(root, plan).returncode == 0
    written = (root / "results/manifest.json").stat().st_mtime_ns
    assert reruns.rerun_ends(job, root, written) is None
    snakemake_finished(root, {**job, "rule": "other"})
    assert reruns.rerun_ends(job, root, written) is None
    snakemake_finished(root, job)
    assert set(reruns.rerun_ends(job, root, written)) == set(job["outputs"].values())


def test_the_manifest_step_refuses_strays_under_results(run):
    root, plan = run
    (root / "results/notes.txt").write_text("mine\n")
    refused = write_manifest(root, plan)
    assert refused.returncode == 5 and "results/notes.txt" in refused.stderr
    (root / "results/notes.txt").unlink()
    assert write_manifest(root, {**plan, "unrecorded": ["results/check/expected.md"]}).returncode == 0


def test_verify_passes_then_lists_every_kind_of_mismatch(run, tmp_path_factory):
    root, plan = run
    assert write_manifest(root, plan).returncode == 0
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    ok = verify(root / "results/manifest.json", elsewhere)  # the root is found from the manifest's own path
    assert ok.returncode == 0 and "5 files checked" in ok.stdout and "0 mismatch" in ok.stdout

    (root / "results/made/table.json").write_text('{"x": 2}\n')  # same size, other bytes
    (root / "results/made/folder/weights.bin").write_bytes(b"\x00")  # truncated
    (root / "results/used.txt").unlink()
    (root / "results/made/folder/extra.bin").write_bytes(b"?")
    (root / "data/raw.jsonl").write_text('{"a": 2}\n')
    bad = verify(root / "results/manifest.json", root)
    assert bad.returncode == 1
    out = bad.stdout
    assert "MISMATCH results/made/table.json: sha256" in out
    assert "MISMATCH results/made/folder/weights.bin: size 1 != 100 recorded" in out
    assert "MISMATCH results/used.txt: missing" in out
    assert "MISMATCH results/made/folder/extra.bin: not in the manifest" in out
    assert "MISMATCH data/raw.jsonl: sha256" in out
    assert "5 mismatch(es)" in out


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"artifacts": {"manifest.json": {}}}'])
def test_verify_refuses_a_broken_manifest_clearly(tmp_path, content):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    result = verify(path, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(path) in result.stderr


@pytest.mark.parametrize("path, outside", [
    ("results/x.json", False), ("logs/a/b.log", False), ("benchmarks/x.tsv", False),
    ("/tmp/x", True), ("../results/x", True), ("results/../../x", True), ("data/x", True), ("results", True),
    ("resultsx/y", True), ("", True),
])
def test_outside_roots(path, outside):
    assert job_plan.outside_roots(path) is outside


def test_plan_paths_outside_the_trees_are_refused_naming_rule_and_key():
    plan = {"config": {"eval": {"dump_dir": "/var/tmp/dump"}, "seed": 1},
            "jobs": [{"rule": "dump_eval", "outputs": {"x": "/var/tmp/dump/x.json"}, "log": ["logs/dump.log"],
                      "benchmark": None}]}
    with pytest.raises(ConfigError, match=r"rule dump_eval would write '/var/tmp/dump/x.json' \(from config key "
                                          r"eval.dump_dir\): outside results/, logs/, benchmarks/"):
        job_plan.check_plan_paths(plan)


def test_container_digest_falls_back_to_the_image_file(tmp_path):
    image = tmp_path / "img.sif"
    image.write_bytes(b"sif bytes")
    info = manifest.container_info({"APPTAINER_CONTAINER": str(image)})
    assert info["runtime"] == "apptainer" and info["digest"] == "sha256:" + sha(b"sif bytes")
    info = manifest.container_info({"APPTAINER_CONTAINER": str(image), "PREFALIGN_IMAGE_DIGEST": "sha256:abc",
                                    "PREFALIGN_IMAGE": "prefalign-cpu:0.1.0"})
    assert info["digest"] == "sha256:abc" and info["digest_source"] == "PREFALIGN_IMAGE_DIGEST"
    assert info["image"] == "prefalign-cpu:0.1.0"


def test_scrub_replaces_credentials_only():
    environ = {"HF_TOKEN": "hf_abcdef123", "MY_API_KEY": "k-123456", "HOME": "/root", "SHORT_TOKEN": "abc"}
    text = "token hf_abcdef123 key k-123456 home /root abc"
    assert manifest.scrub(text, environ) == "token <redacted $HF_TOKEN> key <redacted $MY_API_KEY> home /root abc"


def test_cli_lists_manifest_and_verify():
    help_text = subprocess.run([sys.executable, "-m", "prefalign", "--help"], capture_output=True, text=True).stdout
    assert "manifest" in help_text and "verify" in help_text


def test_a_plan_too_long_for_the_command_line_is_refused_clearly():
    job = {"rule": "r", "outputs": {"x": "results/" + "x" * 1000}, "log": [], "benchmark": None}
    with pytest.raises(ConfigError, match=r"the job plan has 200 jobs and .* more than the 120,000"):
        job_plan.plan_argument({"jobs": [job] * 200, "config": {}, "manifest": "results/manifest.json"})
    assert json.loads(job_plan.plan_argument({"jobs": [job], "config": {}, "manifest": "m"}))["jobs"] == [job]
