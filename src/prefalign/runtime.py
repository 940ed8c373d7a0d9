"""What every training and evaluation step sets up the same way: threads, seeds, device,
and a description of the software and hardware it ran on (for metrics and the manifest)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys

PACKAGES = (
    "prefalign", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "tokenizers",
    "bitsandbytes", "unsloth", "unsloth_zoo", "torchao", "snakemake", "numpy",
)


def setup(seed: int, threads: int) -> None:
    """Seed every generator and pin the intra-op thread count.

    The thread count is part of the result on CPU (it changes how sums are split), so it
    comes from the config, never from the machine's core count.
    """
    import numpy as np
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """CPU model and, where CUDA is present, GPU name, compute capability and driver."""
    info = {"machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    if "torch" in sys.modules or _has_torch():
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = {
                "name": props.name,
                "count": torch.cuda.device_count(),
                "compute_capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
                "cuda": torch.version.cuda,
                "driver": nvidia_driver(),
            }
    return info


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as handle:
            first = handle.readline()
    except OSError:
        return None
    for token in first.split():
        if token[:1].isdigit() and "." in token:
            return token
    return None


def environment() -> dict:
    return {"packages": package_versions(), "hardware": hardware(), "platform": platform.platform()}
