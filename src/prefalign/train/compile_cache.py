"""One stable folder for what torch.compile, Triton and Unsloth compile, so a second run starts warm.

Left alone, Inductor and Triton cache under /tmp (gone with the machine or container) and
Unsloth writes its generated sources into `unsloth_compiled_cache/` of the working directory.
A cold FP8 start compiles and autotunes for minutes (2 to 5 on an H100/H200), and with
max-autotune the kernels chosen depend on timings taken during that compile, so two cold runs
can settle on different kernels and different speeds. With one persistent folder the second
run loads the first run's compiled graphs and autotuning choices.

The folder: $PREFALIGN_COMPILE_CACHE, else $XDG_CACHE_HOME/prefalign/compile, else
~/.cache/prefalign/compile. Variables the user already set (TORCHINDUCTOR_CACHE_DIR,
TRITON_CACHE_DIR, UNSLOTH_COMPILE_LOCATION, UNSLOTH_MEGA_CACHE_DIR) are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

VARIABLES = {  # variable -> subfolder
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
    "TRITON_CACHE_DIR": "triton",
    "UNSLOTH_COMPILE_LOCATION": "unsloth_compiled_cache",
    "UNSLOTH_MEGA_CACHE_DIR": "unsloth_mega_cache",
}


def folder() -> Path:
    if os.environ.get("PREFALIGN_COMPILE_CACHE"):
        return Path(os.environ["PREFALIGN_COMPILE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "prefalign" / "compile"


def use() -> Path:
    """Point the compile caches at folder() (owner-only: Unsloth refuses a shared cache); return it."""
    root = folder()
    for variable, sub in VARIABLES.items():
        if not os.environ.get(variable):
            path = root / sub
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.environ[variable] = str(path)
    return root
