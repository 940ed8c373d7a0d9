"""Backend and precision resolution, on every kind of machine, without one.

`resolve` is a pure function of the settings and a `Machine` description, so the GPU
branches are covered here on the CPU; the GPU runs themselves are in bench/ (results under
bench/results/).
"""

import pytest

from prefalign.errors import ConfigError
from prefalign.runtime import Machine
from prefalign.train.backends import TrainSettings, resolve, trainer_kwargs

CPU = Machine(cuda=False)
CPU_WITH_UNSLOTH = Machine(cuda=False, unsloth_installed=True)
H100 = Machine(True, "NVIDIA H100 80GB HBM3", (9, 0), 1, "580.159.04", unsloth_installed=True)
A100 = Machine(True, "NVIDIA A100-SXM4-80GB", (8, 0), 1, "580.159.04", unsloth_installed=True)
H100_CPU_ENV = Machine(True, "NVIDIA H100 80GB HBM3", (9, 0), 1, "580.159.04", unsloth_installed=False)


def lora(**kw):
    return TrainSettings(use_lora=True, **kw)


@pytest.mark.parametrize(
    "settings, machine, backend, precision, device",
    [
        (TrainSettings(), CPU, "trl", "fp32", "cpu"),
        (TrainSettings(), CPU_WITH_UNSLOTH, "trl", "fp32", "cpu"),  # Unsloth needs a GPU
        (lora(), H100, "unsloth", "bf16", "cuda"),  # 1000 steps cannot repay FP8's cold compile
        (lora(max_steps=100_000), H100, "unsloth", "bf16", "cuda"),  # no: one measurement had FP8 slower (fp8_gate)
        (TrainSettings(), H100, "unsloth", "bf16", "cuda"),  # full fine-tuning cannot be fp8
        (lora(), A100, "unsloth", "bf16", "cuda"),  # compute capability 8.0 < 9.0
        (lora(), H100_CPU_ENV, "trl", "bf16", "cuda"),  # fp8 needs Unsloth
        (lora(backend="trl"), H100, "trl", "bf16", "cuda"),
        (lora(precision="4bit"), A100, "unsloth", "4bit", "cuda"),
        (lora(precision="4bit", backend="trl"), H100, "trl", "4bit", "cuda"),
        (lora(precision="fp32", backend="trl"), H100, "trl", "fp32", "cuda"),
        (lora(precision="fp8", backend="unsloth"), H100, "unsloth", "fp8", "cuda"),
    ],
)
def test_resolution(settings, machine, backend, precision, device):
    resolved = resolve(settings, machine)
    assert (resolved.backend, resolved.precision, resolved.device) == (backend, precision, device)
    if device == "cuda":
        assert resolved.gpu_name == machine.gpu_name and resolved.driver == machine.driver
        assert resolved.compute_capability == f"{machine.compute_capability[0]}.{machine.compute_capability[1]}"
    if settings.backend == "auto" or settings.precision == "auto":
        assert resolved.why  # the reason is recorded with the run


@pytest.mark.parametrize(
    "settings, machine, message",
    [
        (TrainSettings(backend="unsloth"), CPU_WITH_UNSLOTH, "backend: expected trl or auto on a machine without a CUDA GPU"),
        (TrainSettings(backend="unsloth"), H100_CPU_ENV, "backend: expected trl or auto: unsloth is not installed"),
        (TrainSettings(precision="bf16"), CPU, "precision: expected fp32 or auto on a machine without a CUDA GPU"),
        (lora(precision="fp8"), CPU, "precision: expected fp32 or auto on a machine without a CUDA GPU"),
        (lora(precision="fp8"), A100, "fp8 needs compute capability >= 9.0, NVIDIA A100-SXM4-80GB has 8.0"),
        (lora(precision="fp8", backend="trl"), H100, "fp8 training runs through Unsloth"),
        (TrainSettings(precision="fp8"), H100, "use_lora: expected true with precision fp8"),
        (TrainSettings(precision="4bit", backend="trl"), H100, "use_lora: expected true with precision 4bit"),
        (lora(precision="4bit"), CPU, "precision: expected fp32 or auto"),
        (lora(gradient_checkpointing="unsloth", backend="trl"), H100, "gradient_checkpointing: expected none or standard"),
    ],
)
def test_impossible_settings_are_refused_before_loading(settings, machine, message):
    with pytest.raises(ConfigError, match=message):
        resolve(settings, machine)


def test_precision_auto_keeps_bf16_while_a_measurement_shows_fp8_no_faster():
    """The gate takes the smallest measured gain (prefalign.train.fp8_gate): one run had FP8 slower."""
    from prefalign.train import fp8_gate

    resolved = resolve(lora(max_steps=10**7, batch_size=16, max_length=512), H100)
    assert resolved.precision == "bf16"
    assert "fp8 measured no faster than bf16 per step on 2026-11-29" in resolved.why
    # An explicit fp8 is kept whatever the length; and auto never takes fp8 where it cannot run.
    assert resolve(lora(precision="fp8", max_steps=1), H100).precision == "fp8"
    assert resolve(lora(max_steps=10**7), A100).precision == "bf16"
    assert fp8_gate.gain_and_compile() == (pytest.approx(-0.0129), 101.0, "cold")


def test_with_only_gains_measured_fp8_pays_when_the_run_repays_its_compile():
    from prefalign.train import fp8_gate

    gains = (("a", 0.30, 0.25, 200.0, "cold"), ("b", 0.30, 0.26, 120.0, "warm"), ("c", 0.31, 0.27, 90.0, "cold"))
    smallest, compile_s, which = fp8_gate.gain_and_compile(gains)
    assert (smallest, compile_s, which) == (pytest.approx(0.04), 120.0, "warm-cache")  # the warm start is counted
    tokens = fp8_gate.MEASURED_TOKENS_PER_STEP
    threshold = compile_s / smallest
    assert fp8_gate.fp8_pays(int(threshold) - 1, tokens, gains)[0] is False
    pays, why = fp8_gate.fp8_pays(int(threshold) + 1, tokens, gains)
    assert pays and "repays the 120 s warm-cache FP8 compile" in why
    # Twice the tokens per step: twice the gain per step, half the steps.
    assert fp8_gate.fp8_pays(int(threshold / 2) + 2, 2 * tokens, gains)[0] is True


def test_the_compile_cache_is_one_stable_folder_and_user_settings_win(monkeypatch, tmp_path):
    from prefalign.train import compile_cache

    for variable in (*compile_cache.VARIABLES, "PREFALIGN_COMPILE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.folder() == tmp_path / "home/.cache/prefalign/compile"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.folder() == tmp_path / "xdg/prefalign/compile"
    monkeypatch.setenv("PREFALIGN_COMPILE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-of-my-own"))
    assert compile_cache.use() == tmp_path / "mine"
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine/inductor")
    assert os.environ["UNSLOTH_COMPILE_LOCATION"] == str(tmp_path / "mine/unsloth_compiled_cache")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "triton-of-my-own")
    assert (tmp_path / "mine/inductor").stat().st_mode & 0o077 == 0  # owner only: Unsloth refuses shared caches


def test_bad_setting_values():
    with pytest.raises(ConfigError, match="backend: expected one of auto, trl, unsloth"):
        TrainSettings(backend="deepspeed")
    with pytest.raises(ConfigError, match="precision: expected one of"):
        TrainSettings(precision="fp16")
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        TrainSettings(gradient_checkpointing="yes")


def test_trainer_kwargs_follow_the_installed_trl():
    """TRL 1.16 says activation_checkpointing, TRL 1.15 (gpu environment) gradient_checkpointing."""
    import dataclasses

    @dataclasses.dataclass
    class OldConfig:  # the field names of TRL 1.15's BaseConfig that matter here
        gradient_checkpointing: bool = True
        output_dir: str = ""

    settings = TrainSettings(gradient_checkpointing="standard")
    resolved = resolve(lora(backend="trl"), H100)
    old = trainer_kwargs(settings, resolved, "out", OldConfig)
    assert old["gradient_checkpointing"] is True and "activation_checkpointing" not in old
    from trl import DPOConfig

    new = trainer_kwargs(settings, resolved, "out", DPOConfig)
    assert new["activation_checkpointing"] is True and new["bf16"] is True and new["use_cpu"] is False


def test_pin_single_gpu_respects_the_scheduler(monkeypatch):
    from prefalign.train.backends import pin_single_gpu

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    pin_single_gpu()
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    pin_single_gpu()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("WORLD_SIZE", "2")
    pin_single_gpu()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # accelerate launch assigns the GPUs


def test_unsloth_is_never_imported_on_the_cpu_path():
    import subprocess
    import sys

    code = ("import sys; from prefalign.train.backends import TrainSettings, resolve; resolve(TrainSettings()); "
            "import prefalign.train.dpo, prefalign.train.sft; assert 'unsloth' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
