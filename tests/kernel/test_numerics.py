"""The CPU's numeric code paths are pinned by prefalign itself (prefalign.numerics), not by the shell.

Unit tests of the choice and the record; then the steps that compute with torch (build-base, sft,
dpo, evaluate with generation), run through the CLI on a tiny model:
- under shell settings that would each pick other kernels (torch's AVX-512 or baseline kernels,
  MKL's AVX-512 branch, oneDNN's AVX-512 ISA): the same bytes, because prefalign overrides them;
  and with the pins off (PREFALIGN_CPU_NUMERICS=native) the same shell settings give other bytes,
  so the comparison can fail;
- under QEMU as another vendor's CPU (an Intel Haswell, an AMD EPYC-Rome: CPUID is what the
  libraries choose by): the same bytes as this machine's. CI installs qemu-user (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from numerics_chain import chain_digests

from prefalign import numerics

AVX2_CPU = {"sse4_1", "avx", "avx2", "fma", "avx512f"}


def test_the_level_follows_the_cpu_and_never_the_shells_library_settings():
    assert numerics.choose_level({}, AVX2_CPU, "x86_64") == "avx2"
    assert numerics.choose_level({"ATEN_CPU_CAPABILITY": "avx512"}, AVX2_CPU, "x86_64") == "avx2"
    assert numerics.choose_level({}, {"sse4_1", "avx"}, "x86_64") == "portable"  # no AVX2: any x86-64's kernels
    assert numerics.choose_level({}, set(), "aarch64") == "native"  # these switches are x86-64's
    assert numerics.choose_level({"PREFALIGN_CPU_NUMERICS": "native"}, AVX2_CPU, "x86_64") == "native"
    with pytest.raises(ValueError, match="PREFALIGN_CPU_NUMERICS=avx2: this CPU lacks avx2, fma"):
        numerics.choose_level({"PREFALIGN_CPU_NUMERICS": "avx2"}, {"sse4_1"}, "x86_64")
    with pytest.raises(ValueError, match="expected one of native, avx2, portable"):
        numerics.choose_level({"PREFALIGN_CPU_NUMERICS": "fast"}, AVX2_CPU, "x86_64")


def test_pin_overrides_the_shell_and_records_what_it_set(monkeypatch):
    environ = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "PATH": "/bin"}
    monkeypatch.setattr(numerics, "cpu_flags", lambda: AVX2_CPU)
    level = numerics.pin(environ)
    if level == "native":  # not an x86-64 machine
        pytest.skip("the pins are x86-64's")
    assert level == "avx2" and environ["ATEN_CPU_CAPABILITY"] == "avx2" and environ["MKL_CBWR"] == "COMPATIBLE"
    record = numerics.record(environ)
    assert record["level"] == "avx2" and record["pinned"] == numerics.PINS["avx2"]


def test_every_step_process_is_pinned_before_torch_loads(tmp_path):
    code = ("import os; os.environ['ATEN_CPU_CAPABILITY'] = 'default'; import prefalign.cli, torch, json; "
            "from prefalign import numerics; print(json.dumps(numerics.record()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    if '"level": "native"' in out:
        pytest.skip("not an x86-64 machine")
    assert '"torch_capability": "AVX2"' in out or '"torch_capability": "DEFAULT"' in out  # avx2, or portable


# ---------------------------------------------------------------- the steps, under other CPUs' choices

# What a shell may set to pick other kernels (each read by its library at load).
AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
BASELINE = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "SSE4_2"}


@pytest.mark.slow
def test_the_shells_kernel_choices_change_nothing_and_without_the_pins_they_would(tiny_base, tmp_path):
    if numerics.choose_level({}) != "avx2":
        pytest.skip("needs an x86-64 CPU with AVX2 and FMA")
    pinned = [chain_digests(tiny_base, tmp_path / name, env) for name, env in
              (("plain", {}), ("avx512", AVX512), ("baseline", BASELINE))]
    assert pinned[0] == pinned[1] == pinned[2]
    native = {"PREFALIGN_CPU_NUMERICS": "native"}
    unpinned = [chain_digests(tiny_base, tmp_path / f"native-{name}", {**native, **env})
                for name, env in (("avx512", AVX512), ("baseline", BASELINE))]
    # The same kernels' choice as pinned? Not for the weights: the shell's settings now decide them.
    assert unpinned[0]["sft/model.safetensors"] != unpinned[1]["sft/model.safetensors"]


QEMU = shutil.which("qemu-x86_64")


@pytest.fixture(scope="module")
def here(tiny_base, tmp_path_factory) -> dict[str, str]:
    """The chain's digests on this machine's own CPU."""
    return chain_digests(tiny_base, tmp_path_factory.mktemp("numerics") / "here", {})


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["Haswell", "EPYC-Rome"])
def test_another_vendors_cpu_gives_the_same_bytes(tiny_base, here, tmp_path, cpu):
    """QEMU's user mode runs this Python as the CPU named (its CPUID, its instruction set up to AVX2):
    an Intel Haswell and an AMD EPYC-Rome, against this machine's own CPU (about a minute each)."""
    if numerics.choose_level({}) != "avx2":
        pytest.skip("needs an x86-64 CPU with AVX2 and FMA")
    if QEMU is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-user is missing: .ci/run installs it")
        pytest.skip("qemu-user is not installed (apt-get install qemu-user; CI installs it)")
    assert chain_digests(tiny_base, tmp_path / cpu, {}, (QEMU, "-cpu", cpu)) == here
