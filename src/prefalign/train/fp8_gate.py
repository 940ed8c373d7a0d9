"""When FP8 pays: the measured per-step gain over bf16 against the measured compile cost (pure).

FP8 training (Unsloth, torchao row-wise FP8 weights) compiles and autotunes its kernels
before the first step. It pays only when the run is long enough that the time saved per step
repays that compile: steps x gain per step > compile cost. `precision: auto` asks this
(prefalign.train.backends.resolve) and says the figures in `resolved.why`.

The figures are measurements of prefalign's own DPO step on an H200 (bench/dpo_throughput.py:
1.104 B Llama, LoRA r16, 16 pairs x 2 x 512 tokens = 16,384 tokens per step):

    date        bf16 step  fp8 step  gain/step  fp8 first step  bf16 first step  compile extra
    2026-11-21  0.3246 s   0.2706 s  +0.0540 s  120.6 s         19.6 s           101.0 s
    2026-11-29  0.3451 s   0.3580 s  -0.0129 s  301 s           (19.6 s)         281 s

(bench/results/dpo_throughput_h200.json; the 2026-11-29 figures are issue 17's: 47,478 and
45,762 tokens/s.) Gain and compile cost below are the means of those runs. The gain per step
is scaled by the run's tokens per step (pairs x 2 x max_length) against the 16,384 measured.
The compile cache now persists between runs (prefalign.train.compile_cache), but a warm FP8
start has not been timed yet, so the cold cost is what the gate counts.
"""

from __future__ import annotations

FP8_GAIN_S_PER_STEP = (0.0540 - 0.0129) / 2  # seconds saved per step at MEASURED_TOKENS_PER_STEP
FP8_COMPILE_COLD_S = (101.0 + 281.0) / 2  # extra seconds before the first FP8 step, cold cache
MEASURED_TOKENS_PER_STEP = 16 * 2 * 512


def fp8_pays(max_steps: int, tokens_per_step: int) -> tuple[bool, str]:
    """(does FP8 repay its compile in this run, the reason in words with the figures)."""
    gain = FP8_GAIN_S_PER_STEP * tokens_per_step / MEASURED_TOKENS_PER_STEP
    compile_s = FP8_COMPILE_COLD_S
    saved = max_steps * gain
    if gain <= 0:
        return False, f"fp8 measured no faster than bf16 per step ({gain:+.4f} s)"
    verdict = "repays" if saved > compile_s else "does not repay"
    return saved > compile_s, (f"{max_steps} steps x {gain:.4f} s measured gain per step = {saved:.0f} s "
                               f"{verdict} the {compile_s:.0f} s cold FP8 compile")
