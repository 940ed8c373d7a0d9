"""Artifacts that must not depend on the process: Python's string-hash seed differs per process.

The whole-run check (two fresh runs, identical artifact hashes) is in tests/workflow/test_workflow.py;
this one pins a cause it found: PEFT writes target_modules in set (hash) order.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SAVE_ADAPTER = """
import sys
from pathlib import Path
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from prefalign.train.saving import save_adapter

torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=2))
model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
assert isinstance(model.peft_config["default"].target_modules, set)
save_adapter(model, Path(sys.argv[1]))
assert isinstance(model.peft_config["default"].target_modules, set)  # the live config is restored
"""


@pytest.mark.slow  # trains in two processes
def test_the_adapter_config_is_the_same_bytes_under_any_hash_seed(tmp_path):
    written = []
    for seed in ("1", "2", "3"):
        folder = tmp_path / f"seed{seed}"
        result = subprocess.run([sys.executable, "-c", SAVE_ADAPTER, str(folder)], capture_output=True, text=True,
                                env={**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        written.append((folder / "adapter_config.json").read_bytes())
    assert b'"model.layers.0.mlp.down_proj"' in written[0]
    assert written[0] == written[1] == written[2]
