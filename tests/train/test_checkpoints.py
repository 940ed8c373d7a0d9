"""Unit tests of prefalign.train.checkpoints: records, the checks before a resume, the settings rule.

The real kill -9 / resume cycles with Snakemake are in tests/workflow/test_fault_tolerance.py.
"""

from __future__ import annotations

import json

import pytest

from prefalign.errors import ConfigError
from prefalign.train import checkpoints
from prefalign.train.dpo import DPOSettings
from prefalign.train.sft import SFTSettings

FP = "f" * 64


def make_checkpoint(root, step, fingerprint=FP, record=True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "optimizer.pt").write_bytes(b"optimizer state" * 100)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if record:
        checkpoints.write_record(folder, step, fingerprint, {"total_loss": 1.5, "train_tokens": 99})
    return folder


def test_a_complete_checkpoint_passes(tmp_path):
    folder = make_checkpoint(tmp_path, 20)
    assert checkpoints.unusable_reason(folder, FP) is None
    record = json.loads((folder / checkpoints.RECORD).read_text())
    assert set(record["files"]) == {"model.safetensors", "optimizer.pt", "trainer_state.json"}


# Each corruption, and what the report must say.
CORRUPTIONS = {
    "truncated": (lambda f: f.joinpath("model.safetensors").write_bytes(f.joinpath("model.safetensors").read_bytes()[:100]),
                  "corrupt: model.safetensors has 100 bytes"),
    "bit flip": (lambda f: f.joinpath("optimizer.pt").write_bytes(b"Optimizer state" + b"optimizer state" * 99),
                 "corrupt: optimizer.pt sha256"),
    "missing file": (lambda f: f.joinpath("optimizer.pt").unlink(), "corrupt: optimizer.pt is missing"),
    "extra file": (lambda f: f.joinpath("pytorch_model.bin").write_bytes(b"x"), "corrupt: unexpected file pytorch_model.bin"),
    "no record": (lambda f: f.joinpath(checkpoints.RECORD).unlink(), "incomplete: no prefalign_checkpoint.json"),
    "garbled record": (lambda f: f.joinpath(checkpoints.RECORD).write_text("{not json"), "corrupt: prefalign_checkpoint.json is unreadable"),
    "record of another step": (lambda f: f.joinpath(checkpoints.RECORD).write_text(
        f.joinpath(checkpoints.RECORD).read_text().replace('"step": 40', '"step": 20')), "corrupt: prefalign_checkpoint.json is for step 20"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_every_corruption_is_detected_and_named(tmp_path, kind):
    damage, expected = CORRUPTIONS[kind]
    folder = make_checkpoint(tmp_path, 40)
    damage(folder)
    assert expected in checkpoints.unusable_reason(folder, FP)


def test_a_checkpoint_of_another_run_is_stale(tmp_path):
    folder = make_checkpoint(tmp_path, 20, fingerprint="0" * 64)
    assert checkpoints.unusable_reason(folder, FP).startswith("stale:")


def test_resume_point_falls_back_to_the_previous_good_checkpoint(tmp_path, capsys):
    make_checkpoint(tmp_path, 20)
    newest = make_checkpoint(tmp_path, 40)
    (newest / "model.safetensors").write_bytes(b"\0" * 10)
    incomplete = make_checkpoint(tmp_path, 60, record=False)
    run = checkpoints.Checkpoints(tmp_path, enabled=True, run_fingerprint=FP)
    assert run.resume_point() == str(tmp_path / "checkpoint-20")
    assert run.resumed_counters == {"total_loss": 1.5, "train_tokens": 99}
    err = capsys.readouterr().err
    assert "checkpoint-60: incomplete" in err and "checkpoint-40: corrupt: model.safetensors has 10 bytes" in err
    assert "resuming from checkpoint-20 (step 20), verified by sha256" in err
    assert not newest.exists() and not incomplete.exists()  # bad ones are deleted, so the trainer cannot pick them


def test_only_the_main_process_of_a_ddp_run_deletes_bad_checkpoints(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, 20)
    newest = make_checkpoint(tmp_path, 40)
    (newest / "model.safetensors").write_bytes(b"\0" * 10)
    monkeypatch.setenv("RANK", "1")
    assert checkpoints.Checkpoints(tmp_path, True, FP).resume_point() == str(tmp_path / "checkpoint-20")
    assert newest.exists()  # rank 1 skips it; rank 0 deletes it
    monkeypatch.setenv("RANK", "0")
    assert checkpoints.Checkpoints(tmp_path, True, FP).resume_point() == str(tmp_path / "checkpoint-20")
    assert not newest.exists()


def test_a_checkpoint_that_vanishes_while_checked_is_corrupt(tmp_path, monkeypatch):
    folder = make_checkpoint(tmp_path, 20)

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(checkpoints, "sha256_file", gone)
    assert checkpoints.unusable_reason(folder, FP).startswith("corrupt: unreadable")


def test_no_good_checkpoint_means_step_zero(tmp_path, capsys):
    make_checkpoint(tmp_path, 20, fingerprint="0" * 64)
    run = checkpoints.Checkpoints(tmp_path, enabled=True, run_fingerprint=FP)
    assert run.resume_point() is None
    assert "training from step 0" in capsys.readouterr().err
    assert checkpoints.candidates(tmp_path) == []


def test_fingerprint_follows_settings_and_inputs_but_not_checkpoint_steps(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    base = SFTSettings(max_steps=100, logging_steps=10, checkpoint_steps=20).to_dict()
    first = checkpoints.fingerprint(base, [data])
    assert checkpoints.fingerprint({**base, "checkpoint_steps": 50}, [data]) == first
    assert checkpoints.fingerprint({**base, "learning_rate": 1e-4}, [data]) != first
    data.write_text("{}\n{}\n")
    assert checkpoints.fingerprint(base, [data]) != first


@pytest.mark.parametrize("steps, ok", [(0, True), (20, True), (100, True), (25, False), (-10, False)])
def test_checkpoint_steps_must_land_on_logging_steps(steps, ok):
    if ok:
        DPOSettings(logging_steps=10, checkpoint_steps=steps)
    else:
        with pytest.raises(ConfigError, match="checkpoint_steps: expected 0 or a multiple of logging_steps"):
            DPOSettings(logging_steps=10, checkpoint_steps=steps)


def test_workspace_without_a_folder_is_scratch_and_off(tmp_path):
    settings = SFTSettings(checkpoint_steps=100)
    with checkpoints.workspace(None, settings, [], prefix="t-") as run:
        assert not run.enabled and run.folder.is_dir() and run.resume_point() is None
    assert not run.folder.exists()
    with checkpoints.workspace(tmp_path / "ck", SFTSettings(checkpoint_steps=0), [], prefix="t-") as run:
        assert not run.enabled and not (tmp_path / "ck").exists()
    with checkpoints.workspace(tmp_path / "ck", settings, [], prefix="t-") as run:
        assert run.enabled and run.folder == tmp_path / "ck" and len(run.run_fingerprint) == 64


def test_clear_removes_the_folder(tmp_path):
    make_checkpoint(tmp_path / "ck", 20)
    checkpoints.clear(tmp_path / "ck")
    checkpoints.clear(tmp_path / "ck")  # a second call is harmless
    checkpoints.clear(None)
    assert not (tmp_path / "ck").exists()
