"""adapter_config.json is the same bytes from one process to the next.

PEFT keeps target_modules as a set and writes it in set order, which follows Python's string
hashing, randomized per process (PYTHONHASHSEED); train_dpo sorts it first
(prefalign.training.sort_set_fields). Seen as the one artifact that differed between two runs
of the default workflow (containers/ci.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys

SAVE = """
import sys
from peft import LoraConfig
from prefalign.training import sort_set_fields
names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
config = LoraConfig(r=4, target_modules=[f"model.layers.{i}.{n}" for i in range(2) for n in names])
assert isinstance(config.target_modules, set)
sort_set_fields(config)
config.save_pretrained(sys.argv[1])
"""


def test_adapter_config_does_not_depend_on_the_hash_seed(tmp_path):
    written = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", SAVE, str(out)], check=True, env=env, capture_output=True)
        written.append((out / "adapter_config.json").read_bytes())
    assert written[0] == written[1]
