"""`python -m prefalign` with a record, per process, of what each DPO optimizer step trained on.

    accelerate launch <the workflow's flags> tests/train/ddp_probe.py RECORD_DIR dpo --sft ...
    python tests/train/ddp_probe.py RECORD_DIR dpo --sft ...

Runs prefalign's own CLI unchanged; before it starts, DPO's trainer class is subclassed and
`dpo_trainer.micro_batch` wrapped, only to look. Each process writes RECORD_DIR/rank<RANK>.json:

    rank, world_size, backend     RANK and WORLD_SIZE, torch.distributed's backend (null: none)
    steps                         per optimizer step: `pairs` (a fingerprint per pair: sha1 of its
                                  chosen and rejected tokens), `planned` (the micro-batches the
                                  step's cut made here) and `ran` (the micro-batches that ran, after
                                  the processes agreed on their count), as lists of fingerprints
    written                       files under RECORD_DIR's parent this process opened for writing,
                                  renamed or created (Python's audit events: open, os.rename,
                                  os.replace, os.mkdir), relative to that parent

Also how tests/train/test_ddp_cpu.py and bench/ddp_cpu_spread.py start it (`run_dpo`): the launch
line is the workflow's own (rules/common.smk `launcher()`, run here for gpu.count N), with this
script in place of `-m prefalign`. prefalign itself keeps no such record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PROBE = Path(__file__).resolve()
REPO = PROBE.parents[2]
BIN = Path(sys.executable).parent
# Every process started here: this checkout's prefalign, whatever the venv has installed, and the CPU even
# where GPUs are visible (the Trainer then joins the processes over gloo; on GPUs see bench/dpo_multi_gpu_plan.md).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
       "CUDA_VISIBLE_DEVICES": ""}

# The DPO run of the test and the bench: the default config's DPO (all weights, sigmoid + 3 x NLL, beta 0.3,
# lr 1e-3) in fp32 on the TRL backend, packed at 200 tokens per micro-batch (4 pairs of the tiny_base data
# make 1 to 3 micro-batches), 4 optimizer steps of 8 pairs, each logged; a checkpoint every 2 steps.
DPO_FLAGS = ["--backend", "trl", "--precision", "fp32", "--no-use-lora", "--max-length", "128", "--batching",
             "packed", "--max-batch-tokens", "200", "--threads", "1", "--max-steps", "4", "--logging-steps", "1",
             "--checkpoint-steps", "2", "--learning-rate", "1e-3", "--warmup-ratio", "0", "--lr-scheduler",
             "constant", "--beta", "0.3", "--loss-type", "sigmoid", "sft", "--loss-weights", "1.0", "3.0"]
STEP_PAIRS = 8  # pairs per optimizer step, all processes together
REFERENCE_FLAGS = DPO_FLAGS[:DPO_FLAGS.index("--max-steps")]  # the dpo keys reference-logps takes


def launch_line(processes: int) -> list[str]:
    """rules/common.smk `launcher()` for config gpu.count `processes`, as argv (the workflow's function, run here)."""
    source = (REPO / "rules/common.smk").read_text(encoding="utf-8")
    match = re.search(r"^def launcher\(\):\n(?:(?:    .*)?\n)+", source, re.MULTILINE)
    assert match, "rules/common.smk: no `def launcher():`"
    namespace = {"config": {"gpu": {"count": processes}}}
    exec(match.group(0), namespace)  # noqa: S102 (the project's own file)
    return shlex.split(namespace["launcher"]())


def probe_command(processes: int, record_dir: Path) -> list[str]:
    """The launch line with this script (and its record folder) in place of `prefalign` / `-m prefalign`."""
    line = launch_line(processes)
    if line == ["prefalign"]:
        return [sys.executable, str(PROBE), str(record_dir)]
    assert line[0] == "accelerate" and line[-2:] == ["-m", "prefalign"], line
    return [str(BIN / "accelerate"), *line[1:-2], str(PROBE), str(record_dir)]


def reference_logps(base: Path, train: Path, out: Path) -> None:
    """`prefalign reference-logps` as the workflow derives it: batch = one process's pairs per step."""
    per_process = STEP_PAIRS // 2
    command = [str(BIN / "prefalign"), "reference-logps", "--sft", str(base), "--train", str(train), "--out", str(out),
               *REFERENCE_FLAGS, "--batch-size", str(per_process)]
    subprocess.run(command, check=True, capture_output=True, env=ENV)


def run_dpo(run: Path, processes: int, base: Path, train: Path, reference: Path, seed: int) -> dict:
    """`prefalign dpo` under the probe in `run` (its cwd), with the workflow's output flags, STEP_PAIRS per step.

    Returns {"returncode", "output" (stdout + stderr), "records" (rank order), "log" (the logged steps)}."""
    run.mkdir(parents=True)
    per_process = STEP_PAIRS // processes
    command = [*probe_command(processes, run / "record"), "dpo", "--sft", str(base), "--train", str(train),
               "--out", "out/model", "--metrics", "out/metrics.json", "--log-history", "out/log_history.jsonl",
               "--environment", "out/environment.json", "--checkpoint-dir", "checkpoints", "--tensorboard-dir",
               "tensorboard", "--reference-logps", str(reference), *DPO_FLAGS, "--seed", str(seed),
               "--batch-size", str(per_process // 2), "--gradient-accumulation-steps", "2"]
    result = subprocess.run(command, cwd=run, capture_output=True, text=True, env=ENV, check=False)
    records = [json.loads(path.read_text()) for path in sorted((run / "record").glob("rank*.json"))]
    history = run / "out/log_history.jsonl"
    log = [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else []
    return {"returncode": result.returncode, "output": result.stdout + result.stderr, "records": records,
            "log": [entry for entry in log if "loss" in entry]}


def fingerprints(inputs) -> list[str]:
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    pairs = ids.shape[0] // 2
    return [hashlib.sha1(json.dumps([ids[i][mask[i].bool()].tolist(), ids[pairs + i][mask[pairs + i].bool()].tolist()])
                         .encode()).hexdigest()[:16] for i in range(pairs)]


def install(record: dict) -> None:
    from prefalign.train import dpo_trainer

    make_class, micro_batch = dpo_trainer.trainer_class, dpo_trainer.micro_batch

    def recorded_micro_batch(inputs, pairs):
        step = record["steps"][-1] if record["steps"] else None
        if step is not None and step.get("_inputs") is inputs:
            step["ran"].append([step["pairs"][i] for i in pairs])
        return micro_batch(inputs, pairs)

    def recorded_class():
        class Recorded(make_class()):
            def training_step(self, model, inputs, num_items_in_batch=None):
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    record["backend"] = dist.get_backend()
                names = fingerprints(inputs)
                planned = self.micro_batches(inputs) if self.prefalign_batching.mode != "padded" else [
                    list(range(len(names)))]
                record["steps"].append({"pairs": names, "planned": [[names[i] for i in g] for g in planned],
                                        "ran": [], "_inputs": inputs})
                try:
                    return super().training_step(model, inputs, num_items_in_batch)
                finally:
                    record["steps"][-1].pop("_inputs")

        return Recorded

    dpo_trainer.trainer_class, dpo_trainer.micro_batch = recorded_class, recorded_micro_batch


def watch_writes(root: Path, written: list[str]) -> None:
    def inside(path) -> str | None:
        try:
            relative = Path(os.fsdecode(path)).resolve().relative_to(root)
        except (TypeError, ValueError):
            return None
        return str(relative)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS)
            targets = [path] if writing and not isinstance(path, int) else []
        elif event in ("os.rename", "os.replace"):
            targets = [args[1]]
        elif event == "os.mkdir":
            targets = [args[0]]
        else:
            return
        for target in targets:
            relative = inside(target)
            if relative is not None:
                written.append(relative)

    sys.addaudithook(hook)


def main() -> None:
    record_dir = Path(sys.argv.pop(1)).resolve()
    record_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    record = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")), "backend": None, "steps": [],
              "written": []}
    install(record)
    watch_writes(record_dir.parent, record["written"])
    code = 1
    try:
        from prefalign.cli import main as prefalign_main

        code = prefalign_main()
    finally:
        record["exit"] = code
        ours = [w for w in record["written"] if not w.startswith(record_dir.name + os.sep)]
        text = json.dumps({**record, "written": sorted(set(ours))}, indent=1)
        (record_dir / f"rank{rank}.json").write_text(text, encoding="utf-8")
    sys.exit(code)


if __name__ == "__main__":
    main()
