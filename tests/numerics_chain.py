"""The chain of steps that compute with torch, on a tiny model, run once under a given environment
and an optional wrapper (QEMU as another CPU): tests/kernel/test_numerics.py and bench/cpu_numerics.py
compare the digests of its outputs across CPUs and pinning levels.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import TINY_MODEL

CHAIN = """
import sys
from prefalign.cli import main
root = sys.argv[1]
TINY = sys.argv[2].split()
def run(*args):
    code = main(list(args))
    if code:
        sys.exit(f"step {args[0]} failed: {code}")
run("build-base", "--train", f"{root}/train.jsonl", "--out", f"{root}/base", *TINY)
run("sft", "--base", f"{root}/base", "--train", f"{root}/train.jsonl", "--out", f"{root}/sft", "--metrics",
    f"{root}/sft.json", "--log-history", f"{root}/sft_log.jsonl", "--max-steps", "6", "--batch-size", "8",
    "--logging-steps", "2", "--threads", "1")
run("dpo", "--sft", f"{root}/sft", "--train", f"{root}/train.jsonl", "--out", f"{root}/dpo", "--metrics",
    f"{root}/dpo.json", "--log-history", f"{root}/dpo_log.jsonl", "--max-steps", "3", "--batch-size", "8",
    "--logging-steps", "1", "--threads", "1")
run("evaluate", "--name", "dpo", "--model", f"{root}/dpo", "--reference", f"{root}/sft", "--test",
    f"{root}/test.jsonl", "--metrics", f"{root}/eval.json", "--generations", f"{root}/generations.jsonl",
    "--pairs", f"{root}/pairs.jsonl", "--judge-prompts", "8", "--kl-prompts", "8", "--max-new-tokens", "6",
    "--bootstrap-samples", "100", "--threads", "1")
"""
OUTPUTS = ("base/model.safetensors", "base/tokenizer.json", "sft/model.safetensors", "sft_log.jsonl",
           "dpo/model.safetensors", "dpo_log.jsonl", "eval.json", "generations.jsonl", "pairs.jsonl")


def chain_digests(tiny_base: Path, folder: Path, env: dict, wrapper: tuple[str, ...] = ()) -> dict[str, str]:
    """The chain's outputs (sha256) in `folder`: the steps run in one process (through the CLI's main, so
    each is pinned as the workflow's are), under `env` and, optionally, a wrapper such as QEMU."""
    folder.mkdir(parents=True)
    for name in ("train.jsonl", "test.jsonl"):
        shutil.copy(tiny_base / name, folder / name)
    result = subprocess.run([*wrapper, sys.executable, "-c", CHAIN, str(folder), " ".join(TINY_MODEL)],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16] for name in OUTPUTS}
