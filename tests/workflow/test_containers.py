"""Container wiring, checked without building anything (containers/ci.sh builds the cpu image,
runs the workflow in it with real Apptainer and compares the artifacts: a CI step of its own).

- the Containerfiles: base pinned by digest, hashed locks, labels, non-root user, no secret;
- the rules: every one takes its image from config, the training rules the gpu image when
  gpu.count > 0;
- containers/record_image.py (how build.sh writes the digest into the config) and the schema;
- containers/compare_runs.py, the check that decides the CI step: it must fail on a difference.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from prefalign.config.schema import check_config, load_schema
from prefalign.errors import ConfigError

sys.path.insert(0, str(REPO / "containers"))
import compare_runs  # noqa: E402
import record_image  # noqa: E402

IMAGES = {"cpu": REPO / "containers/cpu.Containerfile", "gpu": REPO / "containers/gpu.Containerfile"}
SCHEMA = load_schema(REPO / "schemas/config.schema.yaml")
DIGEST = "sha256:" + "ab" * 32


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", IMAGES)
def test_the_base_is_pinned_by_digest_and_can_be_replaced(name):
    steps = instructions(IMAGES[name])
    assert steps[0][0] == "ARG" and steps[1] == ("FROM", "${BASE_IMAGE}")
    default = steps[0][1].split("=", 1)[1]
    assert re.fullmatch(r"docker\.io/[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", default), default
    assert sum(kind == "FROM" for kind, _ in steps) == 1


@pytest.mark.parametrize("name", IMAGES)
def test_python_packages_come_from_the_hashed_lock(name):
    runs = " ".join(args for kind, args in instructions(IMAGES[name]) if kind == "RUN")
    lock = f"envs/{name}.lock.txt"
    assert (REPO / lock).is_file()
    assert f"--require-hashes -r /opt/prefalign-src/{lock}" in runs
    assert f'echo "${{LOCK_SHA256}}  /opt/prefalign-src/{lock}" | sha256sum --check --strict' in runs
    installs = re.findall(r"pip install ([^&;]*)", runs)
    for install in installs:  # anything not from the lock is pinned by version and takes no dependencies
        assert "--require-hashes" in install or ("--no-deps" in install and re.search(r"==|/opt/prefalign-src", install))


@pytest.mark.parametrize("name", IMAGES)
def test_labels_name_the_version_and_the_lock_hash(name):
    labels = " ".join(args for kind, args in instructions(IMAGES[name]) if kind == "LABEL")
    assert 'org.opencontainers.image.version="${PREFALIGN_VERSION}"' in labels
    assert 'io.prefalign.lock.sha256="${LOCK_SHA256}"' in labels
    assert f'io.prefalign.lock="envs/{name}.lock.txt"' in labels


@pytest.mark.parametrize("name", IMAGES)
def test_runs_as_a_non_root_user_with_no_secret_in_a_layer(name):
    steps = instructions(IMAGES[name])
    users = [args for kind, args in steps if kind == "USER"]
    assert users and users[-1].strip() not in ("0", "root") and users[-1].split(":")[0].isdigit()
    text = IMAGES[name].read_text()
    assert "--mount=type=secret,id=pipcert" in text
    for kind, args in steps:
        if kind in ("COPY", "ADD", "ENV", "ARG"):
            assert not re.search(r"cert|secret|token|password", args, re.I), (kind, args)


def test_every_rule_takes_its_image_from_config():
    for path in sorted((REPO / "rules").glob("*.smk")):
        blocks = re.split(r"^rule ", path.read_text(), flags=re.M)[1:]
        for block in blocks:
            name = block.split(":", 1)[0]
            if not re.search(r"^    (shell|run|script):", block, flags=re.M):
                continue  # a target rule (inputs only) runs nothing
            if name in STAGING:
                assert "localrule: True" in block and "copy_into_run(" in block, name
                continue
            match = re.search(r"^    container:\n        (.+)$", block, flags=re.M)
            assert match, f"{path.name}: rule {name} declares no container"
            assert match.group(1) in ('container_image("cpu")', "training_container()"), (name, match.group(1))


TARGETS = ("all", "check", "export")  # rules with inputs only: they run nothing, in no container
# Local jobs that copy a file from outside the run into it (a container sees the run's folder only).
STAGING = ("stage_expected", "stage_check_file")


def rule_images(tmp_path: Path, config: dict) -> dict:
    """Each rule's image as Snakemake resolves it (Snakemake's API; `_workflow` is its own object)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=REPO / "Snakefile",
                                config_settings=ConfigSettings(configfiles=[REPO / "config.yaml"], config=config),
                                workdir=tmp_path)
        return {rule.name: rule.container_img for rule in workflow._workflow.rules if rule.name not in TARGETS + STAGING}


def test_training_and_evaluation_take_the_gpu_image_when_they_run_on_gpus(tmp_path):
    registry = f"docker://ghcr.io/example/prefalign-gpu@{DIGEST}"
    cpu_run = rule_images(tmp_path / "cpu", {"containers": {"cpu": "containers/x.sif", "gpu": registry}})
    gpu_run = rule_images(tmp_path / "gpu", {"gpu": {"count": 1, "model": None},
                                             "containers": {"cpu": "containers/x.sif", "gpu": registry}})
    local = str(REPO / "containers/x.sif")  # a local image is relative to the workflow's folder
    assert set(cpu_run.values()) == {local}
    on_gpus = {"train_sft", "train_dpo", "reference_logps", "evaluate_model", "train_reward_model",
               "evaluate_reward_model", "generate_onpolicy_pairs", "train_dpo_round", "train_pair_judge"}
    assert {k for k, v in gpu_run.items() if v == registry} == on_gpus
    assert {v for k, v in gpu_run.items() if k not in on_gpus} == {local}


def test_the_apptainer_profile_uses_apptainer_with_nvidia_support():
    profile = yaml.safe_load((REPO / "profiles/apptainer/config.yaml").read_text())
    assert profile["software-deployment-method"] == "apptainer"
    assert "--nv" in profile["apptainer-args"].split()


def test_the_schema_accepts_sif_files_and_digests_only():
    pattern = SCHEMA["$defs"]["container_image"]["pattern"]
    assert pattern == record_image.IMAGE.pattern
    for good in ("containers/prefalign-cpu.sif", f"docker://ghcr.io/x/prefalign-cpu@{DIGEST}"):
        check_config({"containers": {"cpu": good}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"containers\.gpu: expected text matching"):
        check_config({"containers": {"gpu": "docker://ghcr.io/x/prefalign-gpu:latest"}}, SCHEMA)


def test_record_image_sets_the_value_and_keeps_the_comments():
    text = (REPO / "config.yaml").read_text()
    value = f"containers/prefalign-cpu-{'0' * 64}.sif"
    updated = record_image.record(text, "cpu", value)
    assert yaml.safe_load(updated)["containers"]["cpu"] == value
    assert yaml.safe_load(updated)["containers"]["gpu"] == yaml.safe_load(text)["containers"]["gpu"]
    assert updated.replace(value, "X") == text.replace(yaml.safe_load(text)["containers"]["cpu"], "X")
    assert record_image.record(updated, "cpu", value) == updated


def test_record_image_adds_a_missing_key_or_section():
    assert yaml.safe_load(record_image.record("seed: 1\n", "gpu", "a.sif")) == {"seed": 1, "containers": {"gpu": "a.sif"}}
    text = "containers:\n  cpu: a.sif  # note\n\nseed: 1\n"
    updated = record_image.record(text, "gpu", "b.sif")
    assert updated == "containers:\n  cpu: a.sif  # note\n  gpu: b.sif\n\nseed: 1\n"


def test_record_image_refuses_an_unpinned_registry_image(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("containers:\n  cpu: a.sif\n")
    result = subprocess.run([sys.executable, str(REPO / "containers/record_image.py"), str(config), "cpu",
                             "docker://ghcr.io/x/prefalign-cpu:latest"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "neither a .sif file nor an image pinned by sha256 digest" in result.stderr
    assert config.read_text() == "containers:\n  cpu: a.sif\n"


# ------------------------------------------------------------------ compare_runs.py

def fake_run(root: Path, image: Path | None, lock_sha256: str = "", jobs: int = 2) -> Path:
    (root / "results/sft").mkdir(parents=True)
    (root / "results/sft/model.bin").write_bytes(bytes(range(256)))
    (root / "results/report.md").write_text("# report\n")
    # A manifest written at another moment (each run writes its own date) by another machine.
    manifest = {"run": {"date": "2026-12-07T01:00:00+00:00" if image else "2026-12-07T00:30:00+00:00",
                        "git": {} if image else {"commit": "0" * 40}, "config": {"seed": 1}},
                "artifacts": {"results/report.md": {"sha256": hashlib.sha256(b"# report\n").hexdigest()}},
                "jobs": {"render_report": {"wall_s": 3.0 if image else 2.0}}}
    (root / "results/manifest.json").write_text(json.dumps(manifest))
    env = {"packages": {"python": "3.11.2", "torch": "2.13.0+cpu"}, "platform": "Linux"}
    if image:
        env["container"] = {"engine": "apptainer", "file": str(image.resolve()),
                            "image": {"lock_sha256": lock_sha256, "version": "0.1.0"}}
        (root / ".snakemake/log").mkdir(parents=True)
        rules = "".join(f"rule step{i}:\nActivating singularity image {image.resolve()}\n" for i in range(jobs))
        # a local copy into the run (stage_*) runs on the host by design
        (root / ".snakemake/log/x.snakemake.log").write_text(rules + "localrule stage_expected:\nrule all:\n")
    (root / "results/sft/environment.json").write_text(json.dumps(env))
    return root


@pytest.fixture
def runs(tmp_path):
    image, lock = tmp_path / "img.sif", tmp_path / "cpu.lock.txt"
    image.write_bytes(b"sif")
    lock.write_text("pins\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nversion = "0.1.0"\n')
    host = fake_run(tmp_path / "host", None)
    container = fake_run(tmp_path / "box", image, hashlib.sha256(b"pins\n").hexdigest())
    args = [str(host), str(container), "--image", str(image), "--lock", str(lock), "--pyproject", str(pyproject)]
    return host, container, args


def test_compare_runs_passes_identical_runs(runs, capsys):
    host, container, args = runs
    assert compare_runs.main(args) == 0
    assert "identical: 3 artifacts, bit for bit" in capsys.readouterr().out


def test_compare_runs_accepts_a_host_that_is_a_docker_container_but_not_apptainer(runs, capsys):
    host, container, args = runs
    path = host / "results/sft/environment.json"
    env = json.loads(path.read_text())
    path.write_text(json.dumps({**env, "container": {"engine": "docker"}}))  # /.dockerenv on the host
    assert compare_runs.main(args) == 0
    path.write_text(json.dumps({**env, "container": {"engine": "apptainer", "file": "/x.sif"}}))
    assert compare_runs.main(args) == 1
    assert "the host run ran in Apptainer" in capsys.readouterr().err


def test_compare_runs_fails_on_one_changed_byte(runs, capsys):
    host, container, args = runs
    data = bytearray((container / "results/sft/model.bin").read_bytes())
    data[100] ^= 1
    (container / "results/sft/model.bin").write_bytes(bytes(data))
    assert compare_runs.main(args) == 1
    assert "results/sft/model.bin: sha256" in capsys.readouterr().err


def test_compare_runs_fails_on_a_missing_file_or_another_environment(runs, capsys):
    host, container, args = runs
    (container / "results/report.md").unlink()
    env = json.loads((container / "results/sft/environment.json").read_text())
    env["packages"]["python"] = "3.11.7"
    (container / "results/sft/environment.json").write_text(json.dumps(env))
    assert compare_runs.main(args) == 1
    err = capsys.readouterr().err
    assert "results/report.md: only in the host run" in err
    assert "results/sft/environment.json: packages differs" in err


def test_compare_runs_fails_when_the_container_is_not_named_or_a_job_ran_outside(runs, capsys):
    host, container, args = runs
    shutil.copy(host / "results/sft/environment.json", container / "results/sft/environment.json")
    log = container / ".snakemake/log/x.snakemake.log"
    log.write_text(log.read_text().replace("rule all:", "rule extra:\nrule all:"))
    assert compare_runs.main(args) == 1
    err = capsys.readouterr().err
    assert "the container run names no container" in err
    assert "3 jobs, 2 of them ran in an image" in err


def test_every_job_in_a_container_reads_only_the_run_folder(tmp_path):
    """A containerised step sees the run's folder only (Apptainer binds the working directory):
    a file from the workflow's folder, such as the bounds the report and `check` read, is copied
    into the run first. The DAG of `all` and `check`, dry-run."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=REPO / "Snakefile",
                                config_settings=ConfigSettings(configfiles=[REPO / "config.yaml"]),
                                workdir=tmp_path)
        workflow.dag(DAGSettings(targets={"all", "check"})).execute_workflow(executor="dryrun")
        jobs = list(workflow._workflow.dag.jobs)
    outside = {job.rule.name: [f for f in job.input if Path(f).is_absolute()]
               for job in jobs if job.rule.container_img}
    assert {name: files for name, files in outside.items() if files} == {}
    staged = {job.rule.name: list(job.input) for job in jobs if job.rule.name in STAGING}
    assert staged and all(Path(f).is_absolute() for files in staged.values() for f in files)


def test_compare_runs_fails_on_a_manifest_that_records_another_artifact(runs, capsys):
    host, container, args = runs
    path = container / "results/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["artifacts"]["results/report.md"]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    assert compare_runs.main(args) == 1
    assert "results/manifest.json: sha256" in capsys.readouterr().err
