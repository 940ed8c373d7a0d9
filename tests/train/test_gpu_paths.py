"""The code around the GPU training paths, on the CPU: what runs on a GPU is in bench/ (results in bench/results/).

- Unsloth's bf16 full fine-tune needs its forward under bf16 autocast; TRL's fused LM head
  replaces the forward, so prefalign puts the autocast back (prefalign.train.unsloth_backend):
  the decision, and the mechanism on a float32 activation meeting bfloat16 weights.
- Full-model DPO with a live reference loads the reference itself, in the policy's dtype, and
  starts at ln 2 like the cached reference, which it matches.
- A run whose backend or precision `auto` chose and that fails before its first step names the
  setting to change.
- GPU determinism is GPU-only: on the CPU nothing changes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from conftest import run_cli

from prefalign.errors import ConfigError, TrainingError
from prefalign.runtime import Machine
from prefalign.train.backends import Resolved, TrainSettings, first_step_advice, resolve

H100 = Machine(True, "NVIDIA H100 80GB HBM3", (9, 0), 1, "580.159.04", unsloth_installed=True)


# ---------------------------------------------------------------- auto on a GPU

@pytest.mark.parametrize("use_lora", [False, True])
def test_auto_takes_unsloth_for_full_and_lora_dpo_on_a_cuda_gpu(use_lora):
    from prefalign.train.dpo import DPOSettings

    resolved = resolve(DPOSettings(use_lora=use_lora), H100)
    assert (resolved.backend, resolved.precision) == ("unsloth", "bf16")
    assert "backend auto: CUDA GPU and Unsloth present" in resolved.why


@pytest.mark.parametrize("settings, precision, advice", [
    (TrainSettings(), "bf16", ["dpo.backend: trl (--backend trl)"]),
    (TrainSettings(use_lora=True, precision="auto"), "fp8",
     ["dpo.backend: trl (--backend trl)", "dpo.precision: bf16 (--precision bf16)"]),
    (TrainSettings(backend="unsloth"), "bf16", None),  # the user chose Unsloth: the error is theirs to read
    (TrainSettings(backend="unsloth", use_lora=True), "fp8", ["dpo.precision: bf16"]),
    (TrainSettings(backend="trl"), "bf16", None),  # nothing auto chose failed
])
def test_a_first_step_failure_names_the_setting_auto_chose(settings, precision, advice):
    backend = "trl" if settings.backend == "trl" else "unsloth"
    resolved = Resolved(backend, precision, "cuda", "NVIDIA H100 80GB HBM3", "9.0", 1, why="backend auto: ...")
    text = first_step_advice("dpo", settings, resolved)
    if advice is None:
        assert text is None
    else:
        assert all(a in text for a in advice) and "auto" in text


class FakeTrainer:
    """Stands in for a TRL trainer: train() runs `steps` steps (calling the callbacks), then raises `error`."""

    def __init__(self, steps: int, error: Exception):
        self.steps, self.error, self.callbacks = steps, error, []

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def train(self, resume_from_checkpoint=None):
        for _ in range(self.steps):
            for callback in self.callbacks:
                callback.on_step_end(None, None, None)
        raise self.error


def test_a_library_failure_before_the_first_step_becomes_advice(capsys):
    from prefalign.train.step import train_or_advise

    resolved = Resolved("unsloth", "bf16", "cuda", "NVIDIA H100 80GB HBM3", "9.0", 1, why="backend auto: CUDA GPU")
    error = RuntimeError("expected mat1 and mat2 to have the same dtype, but got: float != c10::BFloat16")
    with pytest.raises(TrainingError, match=r"mat1 and mat2 .*: the first training step failed .*"
                                            r"Set dpo\.backend: trl \(--backend trl\)") as caught:
        train_or_advise(FakeTrainer(0, error), None, "dpo", TrainSettings(), resolved)
    assert caught.value.__cause__ is error
    assert "RuntimeError: expected mat1" in capsys.readouterr().err  # the traceback stays in the log
    with pytest.raises(RuntimeError, match="mat1"):  # after a completed step it is not the first step
        train_or_advise(FakeTrainer(1, error), None, "dpo", TrainSettings(), resolved)
    with pytest.raises(RuntimeError, match="mat1"):  # the user chose Unsloth
        train_or_advise(FakeTrainer(0, error), None, "dpo", TrainSettings(backend="unsloth"), resolved)
    with pytest.raises(ConfigError):  # prefalign's own errors pass unchanged
        train_or_advise(FakeTrainer(0, ConfigError("x")), None, "dpo", TrainSettings(), resolved)


# ---------------------------------------------------------------- Unsloth's bf16 autocast

def test_autocast_is_for_unsloth_bf16_full_fine_tuning_only():
    import torch

    from prefalign.train.unsloth_backend import autocast_dtype

    class Plain(torch.nn.Module):
        pass

    class Marked(torch.nn.Module):  # what unsloth_zoo's _wrap_forward_in_bf16_autocast leaves on a model
        _unsloth_autocast_dtype = torch.float16

    marked = Marked()
    marked._unsloth_bf16_autocast_wrapped = True
    assert autocast_dtype(marked, "trl", True, "fp32") == torch.float16  # the mark decides, with its dtype
    assert autocast_dtype(Plain(), "unsloth", False, "bf16") == torch.bfloat16
    for backend, lora, precision in [("unsloth", True, "bf16"), ("unsloth", False, "fp32"), ("trl", False, "bf16"),
                                     ("unsloth", True, "fp8")]:
        assert autocast_dtype(Plain(), backend, lora, precision) is None


def test_with_autocast_lets_a_float32_norm_output_meet_bfloat16_weights():
    """The failure of issue 22 in miniature: a float32 activation into a bf16 Linear."""
    import torch
    import torch.nn.functional as F

    from prefalign.train.unsloth_backend import with_autocast

    weight = torch.randn(8, 4).to(torch.bfloat16)

    def forward(x):
        return F.linear(x, weight)

    forward.prefalign_packed = True  # a mark of the wrapper below it survives
    x = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="dtype"):
        forward(x)
    wrapped = with_autocast(forward, torch.bfloat16)
    out = wrapped(x)
    assert out.dtype == torch.bfloat16 and out.shape == (3, 8)
    assert wrapped.prefalign_packed and wrapped.prefalign_autocast
    assert with_autocast(wrapped, torch.bfloat16) is wrapped  # once only


# ---------------------------------------------------------------- full-model DPO's reference

def dpo_settings(**kw):
    from prefalign.train.dpo import DPOSettings

    values = dict(backend="trl", precision="fp32", use_lora=False, batch_size=4, max_steps=2, logging_steps=1,
                  learning_rate=1e-3, warmup_ratio=0.0, lr_scheduler="constant", loss_type=["sigmoid"], seed=0,
                  threads=1, max_length=96, checkpoint_steps=0)
    return DPOSettings(**{**values, **kw})


def test_full_model_dpo_with_a_live_reference_matches_the_cached_one(tiny_base, tmp_path):
    from prefalign.train.dpo import DPO

    run_cli("reference-logps", "--sft", tiny_base / "base", "--train", tiny_base / "train.jsonl", "--out",
            tmp_path / "ref.json", "--backend", "trl", "--precision", "fp32", "--no-use-lora", "--max-length", "96",
            "--batch-size", "4", "--threads", "1")
    live, _ = DPO.train(tiny_base / "base", tiny_base / "train.jsonl", None, dpo_settings())
    cached, _ = DPO.train(tiny_base / "base", tiny_base / "train.jsonl", None, dpo_settings(),
                          inputs={"reference_logps": tmp_path / "ref.json"})
    assert live["train"]["reference"] == "in training (no --reference-logps); live reference model in fp32"
    assert cached["train"]["reference"].startswith("read from")
    for run in (live, cached):
        assert run["train"]["first_loss"] == pytest.approx(math.log(2), abs=1e-6)  # policy = reference at step 1
    assert cached["train"]["train_loss"] == pytest.approx(live["train"]["train_loss"], abs=1e-5)


def test_the_live_reference_is_the_policys_checkpoint_in_the_policys_dtype(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM

    from prefalign.train.backends import load_reference

    policy = AutoModelForCausalLM.from_pretrained(tiny_base / "base")
    reference = load_reference(policy, Resolved("trl", "fp32", "cpu"))
    assert not reference.training and not any(p.requires_grad for p in reference.parameters())
    assert {p.dtype for p in reference.parameters()} == {torch.float32}
    for (name, a), (_, b) in zip(policy.named_parameters(), reference.named_parameters()):
        assert torch.equal(a, b), name
    bf16 = load_reference(policy, Resolved("unsloth", "bf16", "cuda"))
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    policy.config._name_or_path = "Qwen/Qwen2.5-0.5B"  # not a folder: say which setting avoids the reload
    with pytest.raises(ConfigError, match="dpo.precompute_ref_log_probs: expected true"):
        load_reference(policy, Resolved("trl", "fp32", "cpu"))


# ---------------------------------------------------------------- GPU determinism

def test_gpu_determinism_changes_nothing_without_cuda():
    import torch

    from prefalign import runtime

    if torch.cuda.is_available():
        pytest.skip("a CPU test")
    before = torch.are_deterministic_algorithms_enabled()
    assert runtime.gpu_determinism() is None and runtime.gpu_determinism_state() is None
    assert torch.are_deterministic_algorithms_enabled() == before
    assert "gpu_determinism" not in runtime.environment()


def test_the_cublas_workspace_is_set_unless_the_user_set_it_or_turned_determinism_off():
    from prefalign import runtime

    env: dict = {}
    runtime.gpu_determinism_environment(env)
    assert env == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    env = {"CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    runtime.gpu_determinism_environment(env)
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    env = {runtime.GPU_DETERMINISM_VARIABLE: "0"}
    runtime.gpu_determinism_environment(env)
    assert "CUBLAS_WORKSPACE_CONFIG" not in env and not runtime.gpu_determinism_requested(env)
    assert runtime.gpu_determinism_requested(os.environ | {runtime.GPU_DETERMINISM_VARIABLE: "1"})


def test_the_gpu_demo_config_takes_unsloth_for_dpo_and_its_own_bounds():
    import yaml

    repo = Path(__file__).resolve().parents[2]
    demo = yaml.safe_load((repo / "configs/gpu-demo.yaml").read_text())
    assert "backend" not in demo.get("dpo", {})  # auto: Unsloth on a GPU, full-model DPO included
    assert demo["check"]["expected"] == "expected/gpu-demo.yaml"
