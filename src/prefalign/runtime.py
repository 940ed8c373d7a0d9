"""The machine a step runs on: seeds and threads, the GPU, the process's rank, the container,
and a record of the software and hardware for metrics and the manifest.

One home for each fact: `Machine.detect()` (GPU and Unsloth), `world_size`/`local_rank`/
`is_main_process` (DDP under `accelerate launch`), `container_engine` (Apptainer, podman,
Docker). torch is imported only where a GPU is asked about, so light steps stay light.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import sys
from dataclasses import dataclass

from prefalign import numerics

PACKAGES = (
    "prefalign", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "tokenizers",
    "bitsandbytes", "unsloth", "unsloth_zoo", "torchao", "snakemake", "numpy",
)
IMAGE_INFO = "/etc/prefalign/image.json"  # written by containers/*.Containerfile


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
    gpu_determinism()  # GPU only; see its section below


# ---------------------------------------------------------------- processes (DDP)

def world_size() -> int:
    """Processes of this run: `accelerate launch --num_processes N` sets WORLD_SIZE."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True in a single process and in rank 0 of a DDP run: the one that writes shared files."""
    return os.environ.get("RANK", "0") == "0"


# ---------------------------------------------------------------- the GPU

@dataclass(frozen=True)
class Machine:
    """The facts about this machine that decide backend, precision, preset and device."""

    cuda: bool
    gpu_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    gpu_count: int = 0  # GPUs visible to this process
    driver: str | None = None
    unsloth_installed: bool = False
    memory_gib: float | None = None
    cuda_version: str | None = None

    @classmethod
    def detect(cls) -> "Machine":
        installed = importlib.util.find_spec("unsloth") is not None
        try:
            import torch
        except ImportError:
            return cls(cuda=False, unsloth_installed=installed)
        if not torch.cuda.is_available():
            return cls(cuda=False, unsloth_installed=installed)
        props = torch.cuda.get_device_properties(0)
        return cls(True, props.name, (props.major, props.minor), torch.cuda.device_count(), nvidia_driver(),
                   installed, props.total_memory / 2**30, torch.version.cuda)

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def describe(self) -> str:
        return "no CUDA GPU" if not self.cuda else f"{self.gpu_name}, {self.memory_gib:.0f} GiB"


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


# ---------------------------------------------------------------- GPU determinism (CUDA only)
# Separate from the CPU settings above on purpose: on a machine without CUDA nothing here runs,
# so CPU artifacts are untouched. What holds across GPU reruns with these settings, and what
# only within a bound, is measured in bench/gpu_reruns.sh (docs/gpu.md).

GPU_DETERMINISM_VARIABLE = "PREFALIGN_GPU_DETERMINISTIC"  # "0" turns the settings off (to measure their cost)
CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's documented setting for reproducible results (one fixed workspace)


def gpu_determinism_requested(environ=os.environ) -> bool:
    return environ.get(GPU_DETERMINISM_VARIABLE, "1") != "0"


def gpu_determinism_environment(environ=os.environ) -> None:
    """Set CUBLAS_WORKSPACE_CONFIG (unless set) when determinism is requested.

    cuBLAS reads it when it creates a handle, i.e. at the first matrix product on the GPU, so
    this runs before CUDA work: the training steps call it before Unsloth's import (which
    touches the GPU), every step again from setup(). A user's own value is kept.
    """
    if gpu_determinism_requested(environ):
        environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def gpu_determinism() -> dict | None:
    """Turn on the deterministic GPU settings torch has; returns gpu_determinism_state(), None without CUDA.

    - torch.use_deterministic_algorithms(True, warn_only=True): torch's deterministic kernels
      where it has them (index_add, scatter, cumsum, ...); an op with none warns ("does not have
      a deterministic implementation") instead of stopping a run. Kernels outside torch (Triton
      kernels of TRL and Unsloth, torch.compile output) are not covered by this switch.
    - CUBLAS_WORKSPACE_CONFIG=:4096:8: cuBLAS picks the same reduction order every call.
    - cuDNN: deterministic algorithms, no benchmark-driven algorithm choice.
    Sampling is seeded by the steps themselves (torch.manual_seed seeds the CUDA generators too).
    PREFALIGN_GPU_DETERMINISTIC=0 leaves torch's defaults (recorded as such).
    """
    import torch

    if not torch.cuda.is_available():
        return None
    if gpu_determinism_requested():
        gpu_determinism_environment()
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return gpu_determinism_state()


def gpu_determinism_state() -> dict | None:
    """What is in force (for environment.json), None without CUDA or torch."""
    if "torch" not in sys.modules:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return {
        "requested": gpu_determinism_requested(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


# ---------------------------------------------------------------- the container

def container_engine(environ=os.environ) -> tuple[str | None, str | None]:
    """(engine, image file): apptainer (with the image it runs), podman, docker, or (None, None) on the host."""
    image_file = environ.get("APPTAINER_CONTAINER") or environ.get("SINGULARITY_CONTAINER")
    if image_file:
        return "apptainer", image_file
    if os.path.exists("/run/.containerenv"):
        return "podman", None
    if os.path.exists("/.dockerenv"):
        return "docker", None
    return None, None


def container() -> dict | None:
    """The container image this step runs in (for environment.json), or None on the host.

    Apptainer names the image file it runs (for the SIFs made by containers/build.sh the name
    carries the file's sha256); prefalign's images also describe themselves in IMAGE_INFO
    (version, git revision, lock file and its sha256, base image).
    """
    engine, image_file = container_engine()
    info: dict = {}
    if engine == "apptainer":
        info = {"engine": engine, "file": image_file}
    elif engine:
        info = {"engine": engine}
    try:
        with open(IMAGE_INFO, encoding="utf-8") as handle:
            info["image"] = json.load(handle)
    except (OSError, ValueError):
        pass
    return info or None


# ---------------------------------------------------------------- the record

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


# The CPU features that decide the libraries' kernels (prefalign.numerics), in the hardware record.
NUMERIC_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                 "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_hardware() -> dict:
    flags = numerics.cpu_flags()
    return {"machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "cpu_flags": [flag for flag in NUMERIC_FLAGS if flag in flags]}


def hardware() -> dict:
    """CPU model and, where CUDA is present, GPU name, count, compute capability, memory and driver."""
    info = cpu_hardware()
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        machine = Machine.detect()
        if machine.cuda:
            info["gpu"] = {
                "name": machine.gpu_name,
                "count": machine.gpu_count,
                "compute_capability": f"{machine.compute_capability[0]}.{machine.compute_capability[1]}",
                "memory_gib": round(machine.memory_gib, 1),
                "cuda": machine.cuda_version,
                "driver": machine.driver,
            }
    return info


def environment() -> dict:
    env = {"packages": package_versions(), "hardware": hardware(), "platform": platform.platform(),
           "cpu_numerics": numerics.record()}
    determinism = gpu_determinism_state()
    if determinism is not None:
        env["gpu_determinism"] = determinism
    image = container()
    if image:
        env["container"] = image
    return env
