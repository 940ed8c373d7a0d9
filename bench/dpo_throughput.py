"""DPO training throughput of prefalign's own DPO step, per backend and precision, side by side.

Setups (one subprocess each, so Unsloth's import-time patches never touch the TRL baseline):
  trl-bf16      TRL + PEFT LoRA, bf16, standard activation checkpointing (TRL's default)
  unsloth-bf16  Unsloth LoRA, bf16, Unsloth's activation checkpointing (offloaded)
  unsloth-bf16-std  the same with standard checkpointing (recompute only), for comparison
  unsloth-4bit  Unsloth QLoRA (NF4), bf16 compute
  unsloth-fp8   Unsloth LoRA on row-wise FP8 weights
Each runs `prefalign.train.dpo.DPO.train` (the workflow's step, not a copy) on a random-init Llama
(shape `1.1b`: hidden 2048, MLP 8192, 16 layers, 32/8 heads, vocab 32000, untied: 1.104 B
parameters), every sequence exactly `--seq` tokens, LoRA r16 on all projections,
batch 16, `--warmup` untimed steps then `--steps` timed ones. Tokens/s counts chosen and
rejected sequences (batch x 2 x seq per step) over the median step time. MFU = 8 N tokens/s
over the bf16 matmul peak measured in the same run (8192^3 products). Peak memory is
torch.cuda.max_memory_allocated during training. The loss at step 1 must be ln 2 (policy =
reference).

    python bench/dpo_throughput.py --out bench/results/dpo_throughput.json        # on a GPU
    python bench/dpo_throughput.py --shape tiny --setups trl-fp32 --steps 3 ...   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SETUPS = {
    "trl-bf16": dict(backend="trl", precision="bf16", gradient_checkpointing="standard"),
    "unsloth-bf16": dict(backend="unsloth", precision="bf16", gradient_checkpointing="unsloth"),
    "unsloth-bf16-std": dict(backend="unsloth", precision="bf16", gradient_checkpointing="standard"),
    "unsloth-4bit": dict(backend="unsloth", precision="4bit", gradient_checkpointing="unsloth"),
    "unsloth-fp8": dict(backend="unsloth", precision="fp8", gradient_checkpointing="unsloth"),
    "trl-fp32": dict(backend="trl", precision="fp32", gradient_checkpointing="none"),  # CPU smoke test
}
SHAPES = {
    "1.1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=32000),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
}
SPECIALS = ["<|pad|>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")


def build_model(folder: Path, shape: str, seq: int) -> int:
    """A word-level tokenizer with a chat template and a random-init Llama, saved; returns N."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab_size = SHAPES[shape]["vocab_size"]
    words = SPECIALS + [f"w{i}" for i in range(vocab_size - len(SPECIALS))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=max(1024, seq), tie_word_embeddings=False,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def build_data(path: Path, records: int, seq: int, vocab_size: int) -> None:
    """Preference records whose prompt + reply render to exactly `seq` tokens."""
    import random

    rng = random.Random(0)
    prompt_words, reply_words = (seq - 5) // 2, seq - 5 - (seq - 5) // 2  # 5 template tokens

    def text(n):
        return " ".join(f"w{rng.randrange(1, vocab_size - len(SPECIALS))}" for _ in range(n))

    with open(path, "w", encoding="utf-8") as handle:
        for i in range(records):
            record = {"id": f"bench/{i}", "source": "bench", "prompt": [{"role": "user", "content": text(prompt_words)}],
                      "chosen": [{"role": "assistant", "content": text(reply_words)}],
                      "rejected": [{"role": "assistant", "content": text(reply_words)}], "meta": {}}
            handle.write(json.dumps(record) + "\n")


def matmul_peak_tflops(size: int = 8192, repeats: int = 10) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * size**3 / statistics.median(times) / 1e12


def worker(args) -> None:
    """One setup in this process: train with prefalign's DPO step, time the steps."""
    from prefalign.train.common import pin_single_gpu

    pin_single_gpu()  # as the step does, before anything initializes CUDA
    if SETUPS[args.worker]["backend"] == "unsloth":
        from prefalign.train import unsloth as unsloth_backend

        unsloth_backend.activate(dpo=True)  # before transformers, as the step itself does
    from transformers import TrainerCallback

    from prefalign.train.dpo import DPO, DPOSettings

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], None

        def _sync(self):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def on_step_begin(self, *a, **k):
            self._sync()
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self._sync()
            self.times.append(time.perf_counter() - self.start)

    settings = DPOSettings(**SETUPS[args.worker], max_steps=args.warmup + args.steps, batch_size=args.batch,
                           max_length=args.seq, use_lora=True, lora_r=16, lora_alpha=16, learning_rate=5e-6,
                           warmup_ratio=0.0, lr_scheduler="constant", loss_type=["sigmoid"], logging_steps=1,
                           beta=0.1, seed=0, threads=max(1, min(8, os.cpu_count() or 1)))
    timer = StepTimer()
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    metrics, history = DPO.train(args.workdir / "model", args.workdir / "train.jsonl", None, settings,
                                 callbacks=[timer])
    from prefalign.runtime import is_main_process, world_size

    if not is_main_process():
        return
    timed = timer.times[args.warmup:]
    step_s = statistics.median(timed)
    tokens_per_step = args.batch * 2 * args.seq * world_size()  # every process takes its own batch
    result = {
        "setup": args.worker,
        "gpus": world_size(),
        "resolved": metrics["resolved"],
        "steps_timed": len(timed),
        "step_s_median": step_s,
        "step_s_all": timer.times,
        "tokens_per_s": tokens_per_step / step_s,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "loss_step1": history[0].get("loss") if history else None,
        "losses": [e["loss"] for e in history if "loss" in e],
    }
    args.result.write_text(json.dumps(result, indent=2))


def versions() -> dict:
    from prefalign.runtime import environment

    return environment()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default="trl-bf16,unsloth-bf16,unsloth-4bit,unsloth-fp8",
                        help="comma-separated setups: " + ", ".join(SETUPS))
    parser.add_argument("--shape", default="1.1b", choices=list(SHAPES), help="model shape (default 1.1b)")
    parser.add_argument("--seq", type=int, default=512, help="tokens per sequence (default 512)")
    parser.add_argument("--batch", type=int, default=16, help="pairs per step (default 16)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (default 5)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--gpus", default="1",
                        help="comma-separated GPU counts per setup; >1 runs the step under `accelerate launch` (DDP)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/dpo_throughput.json", help="JSON output")
    parser.add_argument("--worker", choices=list(SETUPS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    setups = args.setups.split(",")
    with tempfile.TemporaryDirectory(prefix="prefalign-dpo-bench-") as scratch:
        workdir = Path(scratch)
        n_params = build_model(workdir / "model", args.shape, args.seq)
        build_data(workdir / "train.jsonl", (args.warmup + args.steps) * args.batch, args.seq,
                   SHAPES[args.shape]["vocab_size"])
        peak = matmul_peak_tflops()
        print(f"model: {n_params / 1e9:.3f} B parameters; bf16 matmul peak: {peak} TFLOP/s", flush=True)
        results = {}
        for setup in setups:
            for gpus in [int(g) for g in args.gpus.split(",")]:
                key = setup if gpus == 1 else f"{setup}-x{gpus}"
                result_path = workdir / f"{key}.json"
                worker_args = [__file__, "--worker", setup, "--workdir", str(workdir), "--result", str(result_path),
                               "--seq", str(args.seq), "--batch", str(args.batch), "--warmup", str(args.warmup),
                               "--steps", str(args.steps)]
                launch = [sys.executable] if gpus == 1 else [
                    sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus),
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
                start = time.perf_counter()
                proc = subprocess.run(launch + worker_args, capture_output=True, text=True)
                if proc.returncode != 0 or not result_path.exists():
                    results[key] = {"setup": setup, "gpus": gpus, "error": proc.stderr[-3000:]}
                    print(f"{key}: FAILED\n{proc.stderr[-3000:]}", flush=True)
                    continue
                result = json.loads(result_path.read_text())
                result["wall_s"] = time.perf_counter() - start
                if peak:
                    result["mfu"] = 8 * n_params * result["tokens_per_s"] / (peak * 1e12 * gpus)
                results[key] = result
                print(f"{key}: {result['tokens_per_s']:,.0f} tokens/s, peak {result['peak_gib']} GiB, "
                      f"step-1 loss {result['loss_step1']}", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"partial": True, "results": results}, indent=2))

    baseline = results.get("trl-bf16", {}).get("tokens_per_s")
    base_mem = results.get("trl-bf16", {}).get("peak_gib")
    for key, result in results.items():
        single = results.get(result.get("setup"), {}).get("tokens_per_s")
        if result.get("gpus", 1) > 1 and "tokens_per_s" in result and single:
            result["scaling_vs_1_gpu"] = result["tokens_per_s"] / single
        if "tokens_per_s" in result and baseline:
            result["speed_vs_trl_bf16"] = result["tokens_per_s"] / baseline
        if result.get("peak_gib") and base_mem:
            result["memory_vs_trl_bf16"] = result["peak_gib"] / base_mem
        if result.get("loss_step1") is not None:
            result["step1_loss_minus_ln2"] = result["loss_step1"] - math.log(2)
    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/dpo_throughput.py", *sys.argv[1:]]),
        "shape": args.shape, "parameters": n_params, "seq": args.seq, "batch": args.batch,
        "warmup_steps": args.warmup, "timed_steps": args.steps, "bf16_matmul_peak_tflops": peak,
        "environment": versions(), "host": platform.node(), "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'setup':20s} {'tokens/s':>10s} {'x TRL':>6s} {'x 1GPU':>7s} {'peak GiB':>9s} {'x mem':>6s} "
          f"{'MFU':>6s} {'step1-ln2':>10s}")
    nan = float("nan")
    for key, r in results.items():
        if "error" in r:
            print(f"{key:20s} failed")
            continue
        print(f"{key:20s} {r['tokens_per_s']:10,.0f} {r.get('speed_vs_trl_bf16', nan):6.2f} "
              f"{r.get('scaling_vs_1_gpu', nan):7.2f} {r['peak_gib'] or nan:9.2f} {r.get('memory_vs_trl_bf16', nan):6.2f} "
              f"{r.get('mfu', nan):6.1%} {r.get('step1_loss_minus_ln2', nan):10.2e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
