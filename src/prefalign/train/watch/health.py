"""The training health monitor: a TRL/transformers callback that reads every logged step.

Signals (thresholds are the config's `health` section, the steps' flags of the same names):

- stop: a NaN or infinite loss or gradient norm; a loss more than `spike_factor` times the
  median of the previous `spike_window` logged losses and above it by at least `spike_min_jump`
  (from the third logged loss on). Training stops at once (the trainer
  ends its loop, so TensorBoard keeps the events up to the stop) and the step fails with
  TrainingHealthError: what happened, at which step, and the advice (lower the learning rate,
  for DPO towards 1e-6, or beta).
- warning (DPO): preference accuracy (TRL's `rewards/accuracies`, mean of the last 3 logged
  values) above `accuracy_high` (overfitting) or at most `accuracy_low` (too little learning)
  once `accuracy_after_steps` steps have run; drift from the reference above `kl_max` nats.
  Warnings go to the log as they first occur, into metrics.json (`health`) and the report.

The drift is a proxy for the KL divergence, computed from what TRL's DPO trainer logs:
rewards/chosen = beta * mean log(pi/pi_ref) of the chosen replies of the batch (likewise
rejected), so max(|rewards/chosen|, |rewards/rejected|) / beta is the mean log-ratio per
reply in nats. It is measured on the dataset's replies, not on samples of the policy (the
evaluation's KL is); a large value still means the policy moved far from its reference.

`HealthMonitor` is pure (fed log dicts, returns findings; unit-tested with fabricated logs);
`HealthCallback` feeds it from a Trainer. Assumes logging_nan_inf_filter=False (training.trainer_kwargs),
or transformers would hide NaN losses from the log.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from prefalign.errors import TrainingError
from prefalign.settings import Settings, expect
from prefalign.train.watch.events import Callback

ACCURACY_WINDOW = 3  # logged accuracies averaged by the accuracy checks
MIN_SPIKE_HISTORY = 2  # logged losses before the spike check starts (one is a single noisy batch)


@dataclass
class HealthSettings(Settings):
    SECTION = "health"
    monitor: bool = field(default=True, metadata={"help": "watch training at every logging step (false: no checks)"})
    stop_on_nan: bool = field(default=True, metadata={"help": "stop on a NaN or infinite loss or gradient norm"})
    spike_factor: float = field(
        default=3.0, metadata={"help": "stop when a logged loss exceeds this multiple of the median of the previous "
                                       "spike_window logged losses (0: off)"})
    spike_window: int = field(default=5, metadata={"help": "logged losses the spike check compares with"})
    spike_min_jump: float = field(
        default=0.5, metadata={"help": "a spike must also exceed that median by this much (nats), so that a loss "
                                       "near zero (plain DPO late in training) is not stopped for ordinary noise"})
    accuracy_high: float = field(default=0.8, metadata={"help": "dpo: warn above this preference accuracy (0-1)"})
    accuracy_low: float = field(default=0.55, metadata={"help": "dpo: warn at or below this preference accuracy (0-1)"})
    accuracy_after_steps: int = field(default=50, metadata={"help": "dpo: steps before the accuracy checks start"})
    kl_max: float = field(default=50.0, metadata={"help": "dpo: warn when the drift from the reference exceeds "
                                                          "this (nats per reply; 0: off)"})

    def __post_init__(self):
        expect(self.spike_factor == 0 or self.spike_factor > 1, "spike_factor", "0 (off) or a number > 1",
              self.spike_factor)
        expect(self.spike_min_jump >= 0, "spike_min_jump", "a number >= 0", self.spike_min_jump)
        expect(isinstance(self.spike_window, int) and self.spike_window >= 1, "spike_window", "an integer >= 1",
              self.spike_window)
        for key in ("accuracy_high", "accuracy_low"):
            expect(0.0 <= getattr(self, key) <= 1.0, key, "a number in [0, 1]", getattr(self, key))
        expect(self.accuracy_low < self.accuracy_high, "accuracy_low", f"below accuracy_high ({self.accuracy_high})",
              self.accuracy_low)
        expect(self.accuracy_after_steps >= 0, "accuracy_after_steps", "an integer >= 0", self.accuracy_after_steps)
        expect(self.kl_max >= 0, "kl_max", "a number >= 0", self.kl_max)


class TrainingHealthError(TrainingError):
    """Training diverged (NaN/inf or a loss spike): the settings, usually the learning rate, must change."""


@dataclass
class Finding:
    signal: str  # not_finite, loss_spike, accuracy_high, accuracy_low, kl_high
    stop: bool
    step: int
    value: float
    threshold: float
    message: str


@dataclass
class _Seen:
    """A warning signal across the run: when it first and last fired, how often, its values."""

    finding: Finding
    last_step: int
    times: int = 1
    last_value: float = 0.0
    extreme: float = 0.0


class HealthMonitor:
    """Reads logged metrics in order; returns what they show. One per training run.

    `step`: "sft" or "dpo" (names the keys in the advice); `learning_rate` and `beta` (DPO)
    are quoted in the advice; beta also turns rewards into log-ratios for the drift.
    """

    def __init__(self, settings: HealthSettings, step: str, learning_rate: float, beta: float | None = None):
        self.settings, self.step, self.learning_rate, self.beta = settings, step, learning_rate, beta
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.logs_checked = 0
        self.stop: Finding | None = None
        self.warnings: dict[str, _Seen] = {}

    # ------------------------------------------------------------ reading the logs

    def observe(self, logs: dict, step: int) -> list[Finding]:
        """Check one logged entry (TRL's names) at optimizer step `step`; return new findings.

        A stop finding is returned once and kept in `self.stop`; a warning is returned the
        first time its signal fires and counted afterwards.
        """
        if not self.settings.monitor or self.stop is not None or "loss" not in logs:
            return []
        self.logs_checked += 1
        found = [f for f in (self._not_finite(logs, step), self._spike(logs, step)) if f is not None]
        if self.beta is not None:
            found += [f for f in (self._accuracy(logs, step), self._drift(logs, step)) if f is not None]
        new = []
        for finding in found:
            if finding.stop:
                if self.stop is None:
                    self.stop = finding
                    new.append(finding)
            elif finding.signal in self.warnings:
                seen = self.warnings[finding.signal]
                seen.last_step, seen.times, seen.last_value = step, seen.times + 1, finding.value
                seen.extreme = max(seen.extreme, finding.value) if finding.signal != "accuracy_low" else min(
                    seen.extreme, finding.value)
            else:
                self.warnings[finding.signal] = _Seen(finding, step, 1, finding.value, finding.value)
                new.append(finding)
        return new

    def _not_finite(self, logs: dict, step: int) -> Finding | None:
        for key in ("loss", "grad_norm"):
            value = logs.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                what = "not a number" if math.isnan(value) else "infinite"
                message = (f"the {'loss' if key == 'loss' else 'gradient norm'} is {value} ({what}) at step {step}: "
                           f"the updates diverged. {self._divergence_advice()}")
                return Finding("not_finite", self.settings.stop_on_nan, step, value, math.nan, message)
        return None

    def _spike(self, logs: dict, step: int) -> Finding | None:
        loss = logs["loss"]
        if not isinstance(loss, (int, float)) or not math.isfinite(loss):
            return None
        window, factor = self.settings.spike_window, self.settings.spike_factor
        recent = self.losses[-window:]
        self.losses.append(float(loss))
        if factor == 0 or len(recent) < min(MIN_SPIKE_HISTORY, window):
            return None
        reference = statistics.median(recent)
        if reference > 0 and loss > factor * reference and loss - reference > self.settings.spike_min_jump:
            message = (f"the loss jumped to {loss:.4g} at step {step}, {loss / reference:.1f}x the median "
                       f"{reference:.4g} of the previous {window} logged losses (health.spike_factor {factor:g}). "
                       f"{self._divergence_advice()}")
            return Finding("loss_spike", True, step, float(loss), factor * reference, message)
        return None

    def _accuracy(self, logs: dict, step: int) -> Finding | None:
        value = logs.get("rewards/accuracies")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        self.accuracies.append(float(value))
        if step < self.settings.accuracy_after_steps:
            return None
        recent = self.accuracies[-ACCURACY_WINDOW:]
        mean = sum(recent) / len(recent)
        high, low = self.settings.accuracy_high, self.settings.accuracy_low
        if mean > high:
            return Finding("accuracy_high", False, step, mean, high, (
                f"preference accuracy {mean:.2f} on the training batches at step {step} is above {high:g}: this "
                "suggests overfitting (a healthy run climbs to 0.6-0.7). Compare the held-out accuracy in the report; "
                f"consider fewer steps, a lower {self.step}.learning_rate ({self.learning_rate:g} now) or a higher "
                f"beta ({self.beta:g} now)."))
        if mean <= low:
            return Finding("accuracy_low", False, step, mean, low, (
                f"preference accuracy {mean:.2f} at step {step} is still at or below {low:g}: too little learning "
                f"(chance is 0.5). Consider a higher {self.step}.learning_rate ({self.learning_rate:g} now; DPO on "
                "pretrained models works at 5e-7 to 5e-6), more steps, or check that chosen and rejected differ."))
        return None

    def _drift(self, logs: dict, step: int) -> Finding | None:
        rewards = [logs.get(k) for k in ("rewards/chosen", "rewards/rejected")]
        rewards = [r for r in rewards if isinstance(r, (int, float)) and math.isfinite(r)]
        if not rewards or self.settings.kl_max == 0:
            return None
        drift = max(abs(r) for r in rewards) / self.beta
        if drift > self.settings.kl_max:
            return Finding("kl_high", False, step, drift, self.settings.kl_max, (
                f"the policy drifted {drift:.1f} nats per reply from the reference at step {step} (more than "
                f"health.kl_max {self.settings.kl_max:g}): it moved far from SFT. Consider a higher beta "
                f"({self.beta:g} now) or a lower {self.step}.learning_rate ({self.learning_rate:g} now)."))
        return None

    def _divergence_advice(self) -> str:
        if self.beta is not None:
            return (f"Lower {self.step}.learning_rate ({self.learning_rate:g} now; DPO usually trains at 5e-7 to 5e-6, "
                    f"try 1e-6) or {self.step}.beta ({self.beta:g} now), then rerun.")
        return (f"Lower {self.step}.learning_rate ({self.learning_rate:g} now), e.g. by 10x (LoRA SFT of a pretrained "
                "model usually trains at about 2e-4), then rerun.")

    # ------------------------------------------------------------ results

    def stop_message(self) -> str:
        assert self.stop is not None
        return (f"{self.step}: training stopped by the health monitor: {self.stop.message} "
                "(thresholds: the config's health section)")

    def summary(self) -> dict:
        """The `health` section of metrics.json: thresholds, what was checked and every warning."""
        warnings = [{
            "signal": seen.finding.signal, "first_step": seen.finding.step, "last_step": seen.last_step,
            "times": seen.times, "first_value": seen.finding.value, "last_value": seen.last_value,
            "extreme_value": seen.extreme, "threshold": seen.finding.threshold, "message": seen.finding.message,
        } for seen in self.warnings.values()]
        status = "off" if not self.settings.monitor else "stopped" if self.stop else "warnings" if warnings else "ok"
        return {"status": status, "logs_checked": self.logs_checked, "thresholds": self.settings.to_dict(),
                "warnings": warnings}

    def summary_lines(self) -> list[str]:
        if not self.settings.monitor:
            return [f"{self.step} health: monitor off"]
        if not self.warnings:
            return [f"{self.step} health: ok ({self.logs_checked} logged steps checked)"]
        return [f"{self.step} health warning: {s.finding.signal} at steps {s.finding.step}-{s.last_step} "
                f"({s.times} of {self.logs_checked} logged steps; last value {s.last_value:.4g}): {s.finding.message}"
                for s in self.warnings.values()]


class HealthCallback(Callback):
    """Feeds a HealthMonitor every log of a Trainer; stops training on a stop signal.

    On a stop it sets `should_training_stop` (the trainer ends its loop and closes its loggers,
    so TensorBoard keeps the events up to the stop) and raises TrainingHealthError from
    on_train_end, so the step fails without saving a model.
    """

    def __init__(self, health: HealthMonitor):
        self.health = health

    def on_train_begin(self, args, state, control, **kwargs):
        # Resumed from a checkpoint: the trainer state holds the logs before it. Replaying them
        # makes the summary (and metrics.json) that of an uninterrupted run; their messages were
        # printed by the interrupted run already.
        if self.health.logs_checked == 0:
            for logs in state.log_history:
                self.health.observe(logs, logs.get("step", state.global_step))

    def on_log(self, args, state, control, logs=None, **kwargs):
        for finding in self.health.observe(logs or {}, state.global_step):
            if state.is_local_process_zero:
                kind = "STOP" if finding.stop else "warning"
                print(f"{self.health.step} health {kind}: {finding.message}", flush=True)
        if self.health.stop is not None:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self.health.stop is not None:
            raise TrainingHealthError(self.health.stop_message())
        if state.is_local_process_zero:
            for line in self.health.summary_lines():
                print(line, flush=True)
