"""`prefalign init` for every format (issue 13, item 6 and "around the run"): format and fields read
from the file as the data stage reads it, hub datasets by id and commit, names that say what the
data is, steps scaled to the pairs, and a header whose commands read the file it is in."""

from __future__ import annotations

import math
import os

import pytest
import real_shapes
import yaml
from conftest import run_cli
from data_fixtures import write_rows

from prefalign.config.resolve import resolve


def init(tmp_path, *datasets, out="configs/mine.yaml", extra=()):
    """`prefalign init` in this process (the CLI's own main; the tests through a subprocess are below)."""
    from prefalign import cli

    out = tmp_path / out
    argv = ["init", "--model", "tiny", "--preset", "cpu-demo", *[a for d in datasets for a in ("--dataset", d)],
            "--out", str(out), *extra]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(argv) == 0
    finally:
        os.chdir(cwd)
    return yaml.safe_load(out.read_text()), out, None


@pytest.mark.parametrize("relative, rows, fmt, extra", [
    ("hh/train.jsonl.gz", lambda: real_shapes.hh_rlhf(30), "hh-rlhf", {}),
    ("shp/askscience/train.json", lambda: real_shapes.shp(30), "shp", {}),  # a JSON array here
    ("uf/train_prefs-00000-of-00001.parquet", lambda: real_shapes.ultrafeedback(30), "ultrafeedback", {}),
    ("oasst/messages.parquet", lambda: real_shapes.oasst1(8), "oasst1", {}),
    ("oasst/nested.jsonl", lambda: real_shapes.nested(real_shapes.oasst1(8)), "oasst1", {}),
    ("oasst/2023-04-12_oasst_ready.trees.jsonl.gz", lambda: real_shapes.trees(real_shapes.oasst1(8)), "oasst1", {}),
    ("pairs.jsonl", lambda: real_shapes.pairs(30), "pairs", {}),
    ("stack.jsonl", lambda: [{"question": "Q?", "response_j": "Good.", "response_k": "Bad."}] * 3, "pairs",
     {"prompt_field": "question", "chosen_field": "response_j", "rejected_field": "response_k"}),
    ("trl.jsonl", lambda: [{"chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}],
                            "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "B."}]}],
     "pairs", {"implicit_prompt": True}),
])
def test_the_format_and_fields_are_read_from_any_file_type(tmp_path, relative, rows, fmt, extra):
    """A native UltraFeedback row used to be set up as `pairs` (losing the tied-score check)."""
    path = write_rows(tmp_path / "data" / relative, rows())
    config, out, _ = init(tmp_path, str(path))
    (entry,) = config["datasets"].values()
    assert entry == {"format": fmt, "source": "local", "path": os.path.relpath(path, out.parent), **extra}
    resolve([out])  # valid, and its path resolves from the config's folder


@pytest.mark.parametrize("relative, name", [
    ("data/hh-rlhf/harmless-base/train.jsonl.gz", "harmless-base"),
    ("data/raw/train.json", "hh-rlhf"),  # every name generic: the format
    ("my_chats.jsonl", "my_chats"),
    ("ultrafeedback_binarized/data/train_prefs-00000-of-00001.parquet", "ultrafeedback_binarized"),
])
def test_datasets_are_named_after_what_they_are(tmp_path, relative, name):
    """A file called train.json used to give a dataset named `train`."""
    path = write_rows(tmp_path / relative, real_shapes.hh_rlhf(5))
    config, _, _ = init(tmp_path, str(path))
    assert list(config["datasets"]) == [name]


def test_two_files_of_one_name_are_numbered(tmp_path):
    a = write_rows(tmp_path / "a/helpful/train.jsonl", real_shapes.hh_rlhf(5))
    b = write_rows(tmp_path / "b/helpful/train.jsonl", real_shapes.hh_rlhf(5, seed=9))
    config, _, _ = init(tmp_path, str(a), str(b))
    assert list(config["datasets"]) == ["helpful", "helpful_2"]


def test_hub_datasets_by_id_and_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    config, out, _ = init(tmp_path, f"HuggingFaceH4/ultrafeedback_binarized@{commit}:5000",
                          f"OpenAssistant/oasst1@{commit}")
    assert config["datasets"] == {
        "ultrafeedback_binarized": {"format": "ultrafeedback", "source": "hub",
                                    "hub_id": "HuggingFaceH4/ultrafeedback_binarized", "revision": commit,
                                    "split": "train_prefs"},
        "oasst1": {"format": "oasst1", "source": "hub", "hub_id": "OpenAssistant/oasst1", "revision": commit}}
    assert config["sample"] == ["ultrafeedback_binarized:5000"]
    assert "not counted before the run" in out.read_text()
    unknown = run_cli("init", "--model", "tiny", "--dataset", f"someone/prefs@{commit}", "--out", tmp_path / "x.yaml",
                      check=False)
    assert unknown.returncode == 2 and "pass --format" in unknown.stderr
    assert run_cli("init", "--model", "tiny", "--dataset", f"someone/prefs@{commit}", "--format", "pairs", "--out",
                   tmp_path / "y.yaml").returncode == 0
    unpinned = run_cli("init", "--model", "tiny", "--dataset", "Anthropic/hh-rlhf@main", "--out", tmp_path / "z.yaml",
                       check=False)
    assert unpinned.returncode == 2 and "pinned to a commit" in unpinned.stderr


def test_steps_are_scaled_to_the_pairs_at_the_presets_batch(tmp_path):
    """A 300-pair file used to get the demo's 1,000 SFT steps (about 65 epochs)."""
    path = write_rows(tmp_path / "hh.jsonl", real_shapes.hh_rlhf(300))
    config, out, _ = init(tmp_path, str(path))
    train = round(300 * 0.9)
    assert config["sft"]["max_steps"] == math.ceil(4 * train / 16)  # tiny model: 4 epochs at batch 16
    assert config["dpo"]["max_steps"] == math.ceil(1 * train / 16)
    # eval.judge and onpolicy.judge auto train two reward models on this data, each on half the train prompts:
    # one epoch of its half, not the preset's 200 steps
    assert config["reward"]["max_steps"] == max(10, math.ceil(1 * round(train / 2) / 16))  # at least MIN_STEPS
    assert "4 epoch(s) of ~270 train pairs at 16 pairs per step" in out.read_text()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    pretrained = run_cli("init", "--model", model, "--dataset", path, "--preset", "gpu-12gb", "--out",
                         tmp_path / "gpu.yaml", cwd=tmp_path)
    assert pretrained.returncode == 0
    config = yaml.safe_load((tmp_path / "gpu.yaml").read_text())
    assert config["sft"]["max_steps"] == max(10, math.ceil(train / (2 * 4)))  # 1 epoch at batch 2 x 4 accumulation
    assert config["dpo"]["max_steps"] == max(10, math.ceil(train / (2 * 8)))
    assert config["data"]["max_tokens"] == 1024  # the preset's max_length: longer pairs are ledgered


def test_the_header_names_commands_that_read_this_file(tmp_path):
    """The header used to tell the user to check config.yaml and run a command that did not read the file."""
    path = write_rows(tmp_path / "data/hh.jsonl", real_shapes.hh_rlhf(20))
    out = tmp_path / "configs/exp1.yaml"
    result = run_cli("init", "--model", "tiny", "--dataset", path, "--out", out, cwd=tmp_path)
    header = [line for line in out.read_text().splitlines() if line.startswith("#   ")]
    assert header[0] == f"#   cd {out.parent.resolve()}" or header[0].startswith(f"#   cd {out.parent.resolve()} &&")
    assert "#   prefalign config check exp1.yaml" in header
    assert any(line.startswith("#   snakemake -s ") and "--configfile exp1.yaml --directory runs/exp1 --cores all"
               in line for line in header)
    assert "prefalign config check exp1.yaml" in result.stdout and "runs/exp1" in result.stdout
    check = run_cli("config", "check", "exp1.yaml", cwd=out.parent)
    assert "hh: hh-rlhf" in check.stdout


def test_a_git_lfs_pointer_is_named_before_anything_is_written(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 99\n")
    result = run_cli("init", "--model", "tiny", "--dataset", path, "--out", tmp_path / "c.yaml", check=False)
    assert result.returncode == 3 and "lfs_pointer" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "c.yaml").exists()


# ---------------------------------------------------------------- thin data is named, not passed (issue 23, item 6)

@pytest.mark.parametrize("wrong", ["shp", "ultrafeedback", "oasst1"])
def test_a_wrong_format_that_reads_no_pairs_exits_non_zero_and_writes_nothing(tmp_path, wrong):
    path = write_rows(tmp_path / "hh/train.jsonl.gz", real_shapes.hh_rlhf(40))
    out = tmp_path / "c.yaml"
    result = run_cli("init", "--model", "tiny", "--dataset", path, "--format", wrong, "--out", out, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"datasets.hh: 0 pairs from 40 rows of {path} as {wrong}" in result.stderr
    assert "check the format" in result.stderr and not out.exists()


def test_too_few_pairs_for_a_batch_warn_at_init_and_are_refused_by_config_check(tmp_path):
    path = write_rows(tmp_path / "data/tiny.jsonl", real_shapes.pairs(12))  # ~10 train pairs; a step takes 16
    out = tmp_path / "configs/tiny.yaml"
    result = run_cli("init", "--model", "tiny", "--dataset", path, "--out", out, cwd=tmp_path)
    warnings = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("Warning:")]
    assert any(w.startswith("Warning: sft: about 10 train pairs for the sft (12 pairs, data.test_fraction 0.1) are "
                            "fewer than one optimizer step of 16 pairs") and w.endswith("(`prefalign config check` "
                                                                                       "refuses this)")
               for w in warnings), warnings
    assert any("the tiny model is trained from scratch" in w for w in warnings)
    check = run_cli("config", "check", out.name, cwd=out.parent, check=False)
    assert check.returncode == 1 and "problems with the data" in check.stdout
    assert "1. sft: about 10 train pairs for the sft" in check.stdout and "2. dpo: about 10" in check.stdout


def test_config_check_refuses_a_dataset_that_yields_no_pairs_and_warns_of_many_epochs(tmp_path):
    write_rows(tmp_path / "raw/uf.parquet", real_shapes.ultrafeedback(40))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"uf": {"format": "shp", "source": "local",
                                                          "path": "raw/uf.parquet"}},
                                      "eval": {"comparisons": []}}))
    check = run_cli("config", "check", config, check=False, cwd=tmp_path)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"1. {config}:2: datasets.uf: 0 pairs from 40 rows of raw/uf.parquet as shp (dropped: malformed 40)" \
        in check.stdout
    config.write_text(yaml.safe_dump({"datasets": {"uf": {"format": "ultrafeedback", "source": "local",
                                                          "path": "raw/uf.parquet"}},
                                      "eval": {"comparisons": []}}))
    check = run_cli("config", "check", config, cwd=tmp_path)  # the preset's 1000 SFT steps over ~34 pairs
    assert "Warning: sft.max_steps 1000 x 16 pairs per step repeats the about 34 train pairs of the sft 471 times" \
        in check.stdout
