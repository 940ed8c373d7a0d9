"""`prefalign <step> ...`: every workflow step, runnable without Snakemake.

Only the chosen step's module is imported, so light steps start fast and never pay for
torch or transformers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from prefalign import numerics

# Set here, before any step imports torch or NumPy (they read these once, when they load):
# the CPU's numeric code paths, pinned so that a run gives the same bytes on any x86-64 CPU
# (prefalign.numerics; the shell's own values do not count) ...
numerics.pin()
# ... and idle OpenMP threads sleep instead of spinning: with two training processes on two
# cores, spinning made each several times slower (bench/omp_wait_policy.py,
# bench/results/omp_wait_policy.json); results are unchanged.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from prefalign import __version__  # noqa: E402
from prefalign.errors import PrefalignError  # noqa: E402

# step name -> (module, one-line description)
STEPS = {
    "synth": ("prefalign.data.synthetic", "write a seeded synthetic raw preference corpus (hh-rlhf, shp or pairs format)"),
    "normalize": ("prefalign.data.normalize", "raw dataset file -> canonical records, rejects ledger, stats"),
    "split": ("prefalign.data.split", "merge normalized datasets and split train/test by prompt hash"),
    "build-base": ("prefalign.train.base_model", "train the tiny tokenizer and model, or load a pinned pretrained one"),
    "sft": ("prefalign.train.sft", "supervised fine-tuning on the chosen replies; writes a merged checkpoint"),
    "reference-logps": ("prefalign.train.reference", "the reference's log-probs of the DPO train pairs, computed once"),
    "onpolicy": ("prefalign.onpolicy.command", "on-policy DPO pairs: K answers per prompt, judged, best vs worst; mix"),
    "dpo": ("prefalign.train.dpo", "direct preference optimization against the SFT checkpoint"),
    "reward": ("prefalign.train.reward", "train a reward-model judge on the train pairs (TRL RewardTrainer)"),
    "evaluate": ("prefalign.evaluation.evaluate", "preference and generation metrics of one checkpoint on the test split"),
    "evaluate-judge": ("prefalign.evaluation.judge_accuracy", "held-out pairwise accuracy of a reward-model judge"),
    "compare": ("prefalign.evaluation.compare", "judge win rate of one evaluated model against another, with a bootstrap interval"),
    "check": ("prefalign.provenance.run_check", "compare a run's metrics with expected bounds; exit 1 when any is out"),
    "report": ("prefalign.report.render", "report.md and a self-contained report.html from the run's metrics"),
    "init": ("prefalign.config.init", "write a commented config.yaml for a model and dataset(s), preset by this machine"),
    "config": ("prefalign.config.command", "check (explain every error), show (resolved values) or record a config"),
    "ab": ("prefalign.evaluation.ab", "human A/B evaluation: export a blind SFT vs DPO sheet, import ratings -> win rate"),
    "manifest": ("prefalign.provenance.manifest", "results/manifest.json: sha256 and provenance of every artifact"),
    "verify": ("prefalign.provenance.verify", "re-hash the files a manifest lists and report mismatches (exit 1 if any)"),
    "digests": ("prefalign.provenance.published", "publish a finished run's artifact digests (expected/, `make digests`)"),
    "diff": ("prefalign.provenance.diff", "two runs (or a run and published digests) side by side; exit 1 if any differ"),
    "card": ("prefalign.publish.card", "a model card (README.md, the Hub's format) for a trained checkpoint"),
    "export": ("prefalign.publish.export", "lay out a checkpoint and its card for upload, checked against the manifest"),
    "track": ("prefalign.publish.track", "add the run's manifest sha256 to its W&B and MLflow runs"),
}


def build_parser(step: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefalign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"prefalign {__version__}")
    sub = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for name, (module_name, description) in STEPS.items():
        step_parser = sub.add_parser(name, help=description, description=description)
        if name == step:  # only the chosen step's flags are needed; this keeps imports lazy
            module = importlib.import_module(module_name)
            module.add_arguments(step_parser)
            step_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    step = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(step if step in STEPS else None)
    args = parser.parse_args(argv)
    try:
        args._module.main(args)
        sys.stdout.flush()  # inside the try: a reader that went away is seen here, not at exit
    except PrefalignError as exc:  # what the user must fix: said in words, with its own exit status
        print(f"prefalign {args.step}: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:
        return closed_pipe()
    except OSError as exc:  # a file the step was given or writes: name it, no traceback
        if exc.filename is None:
            raise
        print(f"prefalign {args.step}: file error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return FILE_ERROR_STATUS
    return 0


# A file that cannot be read or written (missing, no permission, disk full): EX_IOERR of sysexits.h.
FILE_ERROR_STATUS = 74


def closed_pipe() -> int:
    """The reader of stdout went away (`prefalign config presets | head -5`): stop quietly, as
    Unix tools do, with 128 + SIGPIPE; stdout goes to /dev/null so the exit flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
