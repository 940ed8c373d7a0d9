"""The training health monitor: planted NaN, planted spike and an overfitting run.

Three levels: HealthMonitor fed fabricated logs (every signal and threshold); HealthCallback in
a real transformers Trainer whose loss is planted (NaN, spike) at a known step; and the real
`prefalign sft` / `prefalign dpo` steps (a NaN planted in the base model's weights; a DPO run
that overfits a handful of pairs) through the CLI, down to metrics.json and the report.
"""

from __future__ import annotations

import json
import math
import types

import pytest
from conftest import read_jsonl, run_cli

from prefalign.report import document
from prefalign.report.sections import health_section
from prefalign.train.watch.health import HealthCallback, HealthMonitor, HealthSettings, TrainingHealthError


def feed(check: HealthMonitor, logs: list[dict]) -> list:
    found = []
    for step, entry in enumerate(logs, 1):
        found += check.observe(entry, step * 10)
    return found


# ---------------------------------------------------------------- HealthMonitor on fabricated logs

@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_with_advice(bad):
    check = HealthMonitor(HealthSettings(), "dpo", 5e-6, beta=0.1)
    (finding,) = feed(check, [{"loss": 0.69}, {"loss": 0.6}, {"loss": bad}, {"loss": 0.5}])
    assert finding.stop and finding.signal == "not_finite" and finding.step == 30
    message = check.stop_message()
    assert "at step 30" in message and "try 1e-6" in message and "dpo.beta (0.1 now)" in message
    assert check.summary()["status"] == "stopped"


def test_a_nan_gradient_norm_stops_and_stop_on_nan_false_only_warns():
    assert feed(HealthMonitor(HealthSettings(), "sft", 2e-4), [{"loss": 2.0, "grad_norm": math.nan}])[0].stop
    check = HealthMonitor(HealthSettings(stop_on_nan=False), "sft", 2e-4)
    (finding,) = feed(check, [{"loss": math.nan}])
    assert not finding.stop and check.stop is None and check.summary()["status"] == "warnings"


def test_a_spike_stops_but_ordinary_noise_and_a_falling_loss_do_not():
    falling = [{"loss": v} for v in (6.0, 5.6, 4.6, 3.6, 2.7, 2.3, 2.0, 1.7, 1.5, 1.6, 1.4, 1.5, 1.3)]
    check = HealthMonitor(HealthSettings(), "sft", 2e-3)
    assert feed(check, falling) == [] and check.summary()["status"] == "ok"
    check = HealthMonitor(HealthSettings(), "sft", 2e-3)
    (finding,) = feed(check, falling + [{"loss": 5.0}])  # > 3x the median 1.5 of the last 5
    assert finding.stop and finding.signal == "loss_spike" and finding.step == 140
    assert "jumped to 5 at step 140" in finding.message and "Lower sft.learning_rate (0.002 now)" in finding.message
    # spike_factor 0 turns the check off; a higher factor tolerates the same jump.
    assert feed(HealthMonitor(HealthSettings(spike_factor=0), "sft", 2e-3), falling + [{"loss": 5.0}]) == []
    assert feed(HealthMonitor(HealthSettings(spike_factor=4), "sft", 2e-3), falling + [{"loss": 5.0}]) == []


def test_a_small_absolute_jump_near_zero_is_noise_not_a_spike():
    # Plain sigmoid DPO late in training: 3.2x the median, but only 0.11 nats above it.
    low = [{"loss": v} for v in (0.06, 0.05, 0.04, 0.05, 0.05, 0.16)]
    assert feed(HealthMonitor(HealthSettings(), "dpo", 5e-6), low) == []
    (finding,) = feed(HealthMonitor(HealthSettings(spike_min_jump=0.1), "dpo", 5e-6), low)
    assert finding.signal == "loss_spike"


def test_the_spike_check_waits_for_two_logged_losses():
    # The first logged loss is one batch at step 1; a second that is 3x higher is not yet a spike.
    assert feed(HealthMonitor(HealthSettings(), "sft", 2e-3), [{"loss": 0.1}, {"loss": 0.5}]) == []


def overfitting(accuracies):
    return [{"loss": 0.5, "rewards/accuracies": a, "rewards/chosen": 0.2, "rewards/rejected": -0.2}
            for a in accuracies]


def test_accuracy_above_the_bound_is_a_warning_after_the_first_steps():
    check = HealthMonitor(HealthSettings(accuracy_after_steps=30), "dpo", 5e-6, beta=0.1)
    found = feed(check, overfitting([0.9, 0.95, 1.0, 1.0, 1.0, 1.0]))  # steps 10..60
    (finding,) = found
    assert finding.signal == "accuracy_high" and not finding.stop and finding.step == 30
    summary = check.summary()
    assert summary["status"] == "warnings" and summary["logs_checked"] == 6
    (warning,) = summary["warnings"]
    assert (warning["first_step"], warning["last_step"], warning["times"]) == (30, 60, 4)
    assert "suggests overfitting" in warning["message"] and warning["threshold"] == 0.8
    assert check.stop is None  # a warning never stops training


def test_accuracy_stuck_near_chance_and_drift_beyond_kl_max_are_warnings():
    check = HealthMonitor(HealthSettings(accuracy_after_steps=0), "dpo", 5e-7, beta=0.1)
    (finding,) = feed(check, overfitting([0.5, 0.52, 0.5]))
    assert finding.signal == "accuracy_low" and "too little learning" in finding.message
    check = HealthMonitor(HealthSettings(accuracy_after_steps=0, kl_max=10), "dpo", 5e-6, beta=0.1)
    found = feed(check, [{"loss": 0.3, "rewards/accuracies": 0.7, "rewards/chosen": 0.5, "rewards/rejected": -1.5}])
    (finding,) = found  # |-1.5| / 0.1 = 15 nats > 10
    assert finding.signal == "kl_high" and finding.value == pytest.approx(15.0)


def test_healthy_accuracy_is_quiet_and_the_monitor_can_be_turned_off():
    check = HealthMonitor(HealthSettings(accuracy_after_steps=0), "dpo", 5e-6, beta=0.1)
    assert feed(check, overfitting([0.6, 0.65, 0.7, 0.68])) == [] and check.summary()["status"] == "ok"
    off = HealthMonitor(HealthSettings(monitor=False), "dpo", 5e-6, beta=0.1)
    assert feed(off, [{"loss": math.nan}]) == [] and off.summary()["status"] == "off"


@pytest.mark.parametrize("values, key", [
    ({"spike_factor": 1.0}, "spike_factor"), ({"accuracy_low": 0.9}, "accuracy_low"),
    ({"accuracy_high": 1.5}, "accuracy_high"), ({"kl_max": -1}, "kl_max")])
def test_bad_thresholds_are_refused_by_name(values, key):
    with pytest.raises(Exception) as info:
        HealthSettings(**values)
    assert key in str(info.value)


# ---------------------------------------------------------------- HealthCallback in a real Trainer

def planted_trainer(tmp_path, plant_step: int, factor: float, check: HealthMonitor):
    """A real transformers Trainer on a small regression whose loss is multiplied by `factor`
    at optimizer step `plant_step` (NaN: a NaN loss), with the health callback."""
    import torch
    from transformers import Trainer, TrainingArguments

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            return {"loss": ((self.linear(x).squeeze(-1) - labels) ** 2).mean()}

    class Planted(Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            return loss * factor if self.state.global_step + 1 == plant_step else loss

    torch.manual_seed(0)
    x = torch.randn(2048, 4)
    rows = [{"x": x[i], "labels": 0.5 * x[i].sum()} for i in range(2048)]  # batches of 64: little noise
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=30, per_device_train_batch_size=64, learning_rate=1e-2,
                             logging_steps=1, logging_nan_inf_filter=False, report_to="none", use_cpu=True,
                             save_strategy="no", disable_tqdm=True, seed=0)
    return Planted(model=Regression(), args=args, train_dataset=rows, callbacks=[HealthCallback(check)])


@pytest.mark.parametrize("factor, signal", [(math.nan, "not_finite"), (50.0, "loss_spike")])
def test_the_callback_stops_a_real_trainer_at_the_planted_step(tmp_path, capsys, factor, signal):
    check = HealthMonitor(HealthSettings(), "sft", 1e-2)
    trainer = planted_trainer(tmp_path, 12, factor, check)
    with pytest.raises(TrainingHealthError) as info:
        trainer.train()
    assert trainer.state.global_step == 12  # stopped at once, not at max_steps 30
    assert check.stop.signal == signal and check.stop.step == 12
    assert "training stopped by the health monitor" in str(info.value) and "Lower sft.learning_rate" in str(info.value)
    assert "sft health STOP: " in capsys.readouterr().out


def test_the_callback_lets_a_healthy_real_run_finish(tmp_path, capsys):
    check = HealthMonitor(HealthSettings(), "sft", 1e-2)
    trainer = planted_trainer(tmp_path, 0, 1.0, check)
    trainer.train()
    assert trainer.state.global_step == 30 and check.summary()["status"] == "ok" and check.logs_checked == 30
    assert "sft health: ok (30 logged steps checked)" in capsys.readouterr().out


# ---------------------------------------------------------------- the real steps through the CLI



@pytest.mark.slow  # real training steps
def test_sft_with_a_nan_planted_in_the_weights_stops_with_a_clear_message(tiny_base, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny_base / "base", poisoned)
    weights = load_file(poisoned / "model.safetensors")
    name = next(k for k in weights if k.endswith("norm.weight"))
    weights[name] = torch.full_like(weights[name], math.nan)
    save_file(weights, poisoned / "model.safetensors", metadata={"format": "pt"})
    result = run_cli("sft", "--base", poisoned, "--train", tiny_base / "train.jsonl", "--out", tmp_path / "sft",
                     "--metrics", tmp_path / "metrics.json", "--log-history", tmp_path / "log.jsonl",
                     "--max-steps", "20", "--batch-size", "8", "--logging-steps", "5", "--threads", "1", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sft: training stopped by the health monitor: the loss is nan (not a number) at step 1" in out
    assert "Lower sft.learning_rate (0.002 now)" in out and "Traceback" not in out
    assert not (tmp_path / "sft").exists() and not (tmp_path / "metrics.json").exists()


@pytest.mark.slow  # real training steps
def test_an_overfitting_dpo_run_is_flagged_in_log_metrics_and_report(tiny_base, tmp_path):
    """SFT briefly, then DPO on 16 pairs at a high learning rate: training accuracy goes to 1."""
    few = tmp_path / "few.jsonl"
    few.write_text("".join(line + "\n" for line in (tiny_base / "train.jsonl").read_text().splitlines()[:16]))
    run_cli("sft", "--base", tiny_base / "base", "--train", tiny_base / "train.jsonl", "--out", tmp_path / "sft",
            "--metrics", tmp_path / "sft.json", "--log-history", tmp_path / "sft.jsonl", "--max-steps", "20",
            "--batch-size", "8", "--logging-steps", "5", "--threads", "1")
    result = run_cli("dpo", "--sft", tmp_path / "sft", "--train", few, "--out", tmp_path / "dpo",
                     "--metrics", tmp_path / "dpo.json", "--log-history", tmp_path / "dpo.jsonl",
                     "--max-steps", "30", "--batch-size", "8", "--learning-rate", "0.01", "--logging-steps", "2",
                     "--loss-type", "sigmoid", "--accuracy-after-steps", "10", "--threads", "1")
    assert "dpo health warning: preference accuracy" in result.stdout  # as it happens, in the step's log
    assert "dpo health warning: accuracy_high" in result.stdout  # and the summary at the end
    metrics = json.loads((tmp_path / "dpo.json").read_text())
    health = metrics["health"]
    assert health["status"] == "warnings" and health["thresholds"]["accuracy_high"] == 0.8
    warning = next(w for w in health["warnings"] if w["signal"] == "accuracy_high")
    assert warning["first_step"] >= 10 and warning["last_value"] > 0.8
    logged = [r["rewards/accuracies"] for r in read_jsonl(tmp_path / "dpo.jsonl") if "rewards/accuracies" in r]
    assert max(logged) > 0.8  # the warning reflects what TRL logged
    sft = json.loads((tmp_path / "sft.json").read_text())
    assert sft["health"]["status"] == "ok"
    training = {"sft": sft, "dpo": metrics}
    md = document.markdown("t", [health_section(training, {"dpo": {"metrics": {"implicit_reward_accuracy": 0.6}}})])
    assert "Health warnings" in md and "DPO: accuracy_high" in md
    assert "preference accuracy above the overfitting bound" in md and "Overfitting check" in md


# ---------------------------------------------------------------- TensorBoard, W&B, progress

@pytest.mark.slow  # real training steps
def test_tensorboard_events_are_written_and_change_no_result(tiny_base, tmp_path):
    """The same SFT run with and without TensorBoard: event files, and byte-identical results."""
    def sft(name, *extra):
        out = tmp_path / name
        result = run_cli("sft", "--base", tiny_base / "base", "--train", tiny_base / "train.jsonl",
                         "--out", out / "model", "--metrics", out / "metrics.json", "--log-history",
                         out / "log.jsonl", "--max-steps", "20", "--batch-size", "8", "--logging-steps", "5",
                         "--threads", "1", *extra)
        return out, result.stdout

    with_tb, log = sft("tb", "--tensorboard-dir", tmp_path / "events", "--tensorboard")
    without, _ = sft("plain", "--tensorboard-dir", tmp_path / "none", "--no-tensorboard")
    events = list((tmp_path / "events").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0 and not list((tmp_path / "none").iterdir())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(tmp_path / "events")).Reload().Tags()["scalars"]
    assert "train/loss" in scalars
    for name in ("model/model.safetensors", "log.jsonl", "metrics.json"):
        assert (with_tb / name).read_bytes() == (without / name).read_bytes(), name
    assert "sft: step 20/20 (100%)" in log  # progress lines in a log file (stderr is not a terminal)


def test_wandb_without_the_package_is_refused_by_name(tmp_path):
    from prefalign.train.watch import tracking

    if tracking.installed("wandb"):
        pytest.skip("wandb is installed here")
    with pytest.raises(Exception) as info:
        tracking.report_to(tracking.TrackingSettings(wandb=True), None, "sft")
    assert "wandb: expected the wandb package to be installed" in str(info.value)


def test_a_resumed_run_replays_the_logs_before_its_checkpoint():
    # Resuming restores the trainer state's log history: the summary must be the uninterrupted run's.
    logs = overfitting([0.9, 0.95, 0.97, 0.98])
    history = [{**entry, "step": 10 * (i + 1)} for i, entry in enumerate(logs)]
    whole = HealthMonitor(HealthSettings(accuracy_after_steps=0), "dpo", 5e-6, beta=0.1)
    for entry in history:
        whole.observe(entry, entry["step"])
    resumed = HealthMonitor(HealthSettings(accuracy_after_steps=0), "dpo", 5e-6, beta=0.1)
    callback = HealthCallback(resumed)
    state = types.SimpleNamespace(log_history=history[:2], global_step=20, is_local_process_zero=True)
    callback.on_train_begin(None, state, None)
    for entry in history[2:]:
        callback.on_log(None, types.SimpleNamespace(**{**vars(state), "global_step": entry["step"]}),
                        types.SimpleNamespace(should_training_stop=False), logs=entry)
    assert resumed.summary() == whole.summary() and resumed.summary()["warnings"]
