"""When FP8 pays: the measured per-step gain over bf16 against the measured compile cost (pure).

FP8 training (Unsloth, torchao row-wise FP8 weights) compiles and autotunes its kernels
before the first step. It pays only when the run is long enough that the time saved per step
repays that compile: steps x gain per step > compile cost. `precision: auto` asks this
(prefalign.train.backends.resolve) and says the figures in `resolved.why`.

The figures are measurements of prefalign's own DPO step (bench/dpo_throughput.py: 1.104 B Llama,
LoRA r16, 16 pairs x 2 x 512 tokens = 16,384 tokens per step), steady-state step times after the
compile (MEASUREMENTS). The gate takes the *smallest* measured gain, not a mean: the runs
disagree in sign (FP8 1.89x faster on 2026-11-21, slower than bf16 on 2026-11-29), and a mean of
a gain and a loss is not a gain. While any measurement shows FP8 no faster, `auto` keeps bf16.
The compile cost counted is the cheapest measured start with a warm compile cache
(prefalign.train.compile_cache) where one was timed, else the cold one (none warm yet).

    date        bf16 step  fp8 step  gain/step  fp8 first step  bf16 first step  compile extra  cache
    2026-11-21  0.3246 s   0.2706 s  +0.0540 s  120.6 s         19.6 s           101.0 s        cold
    2026-11-29  0.3451 s   0.3580 s  -0.0129 s  301 s           (19.6 s)         281 s          cold

(bench/results/dpo_throughput_h200.json; the 2026-11-29 figures are issue 17's: 47,478 and
45,762 tokens/s.) The gain per step is scaled by the run's tokens per step (pairs x 2 x
max_length) against the 16,384 measured.
"""

from __future__ import annotations

MEASURED_TOKENS_PER_STEP = 16 * 2 * 512
# (date, bf16 seconds per step, fp8 seconds per step, extra seconds before the first fp8 step, compile cache)
MEASUREMENTS = (
    ("2026-11-21", 0.3246, 0.2706, 101.0, "cold"),
    ("2026-11-29", 0.3451, 0.3580, 281.0, "cold"),
)


def gain_and_compile(measurements=MEASUREMENTS) -> tuple[float, float, str]:
    """(smallest measured gain per step, compile seconds counted, which compile) at MEASURED_TOKENS_PER_STEP."""
    gain = min(bf16 - fp8 for _, bf16, fp8, _, _ in measurements)
    warm = [extra for *_, extra, cache in measurements if cache == "warm"]
    if warm:
        return gain, min(warm), "warm-cache"
    return gain, min(extra for *_, extra, _ in measurements), "cold"


def fp8_pays(max_steps: int, tokens_per_step: int, measurements=MEASUREMENTS) -> tuple[bool, str]:
    """(does FP8 repay its compile in this run, the reason in words with the figures)."""
    smallest, compile_s, which = gain_and_compile(measurements)
    gain = smallest * tokens_per_step / MEASURED_TOKENS_PER_STEP
    if gain <= 0:
        worst = min(measurements, key=lambda m: m[1] - m[2])
        return False, (f"fp8 measured no faster than bf16 per step on {worst[0]} ({smallest:+.4f} s at "
                       f"{MEASURED_TOKENS_PER_STEP} tokens per step; the gate takes the smallest measured gain)")
    saved = max_steps * gain
    verdict = "repays" if saved > compile_s else "does not repay"
    return saved > compile_s, (f"{max_steps} steps x {gain:.4f} s smallest measured gain per step = {saved:.0f} s "
                               f"{verdict} the {compile_s:.0f} s {which} FP8 compile")
