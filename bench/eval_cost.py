"""What evaluation adds to the pipeline: wall and CPU seconds of each evaluation job, per case.

Cases (`--cases`, default all three):

  default   the embedded default (config.yaml): eval.judge auto picks the task verifier, so the
            evaluation is `evaluate_model` for base, SFT and DPO and `compare_models`
  trained   the default with eval.judge: trained: the reward-model judge is trained on the
            train split (`train_reward_model`) and evaluated (`evaluate_reward_model`), and it
            judges every answer
  hh        a real-data-shaped fixture: hh-rlhf transcripts whose lengths follow real hh-rlhf
            (prompt, chosen and rejected lengths drawn from log-normals around the medians of
            the published harmless-base split: about 130 tokens a transcript at 4 characters a
            token), the only dataset, so auto trains the reward-model judge; a tiny model that
            takes 1,024 tokens

Each case runs its pipeline once in a scratch directory, then reruns the evaluation jobs
--rounds times with `--forcerun`, reading Snakemake's benchmark files after each round
(benchmarks/<rule>[/<wildcards>].tsv: `s` = wall seconds, `cpu_time` = CPU seconds). With
`threads: 2` on a 2-core machine every job takes all the cores, so jobs run one after another
and the evaluation adds the sum of its jobs' wall seconds. The training jobs' times from the
same run are printed beside them as the baseline. The machine may be shared: figures are
medians over the rounds, CPU seconds are given because they barely depend on other load, and
the load average is recorded.

    python bench/eval_cost.py [--rounds 3] [--cores 2] [--cases default trained hh]

Writes bench/results/eval_cost.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EVAL_RULES = ("evaluate_model", "compare_models", "train_reward_model", "evaluate_reward_model")
TRAIN_RULES = ("build_base_model", "train_sft", "train_dpo")
WORDS = ("the a to and of you it is that for can on with your this be are or as have not what do how if but "
         "about some one more like would time make good when people help they so there any know want need "
         "could think should get use way just well also work first try day year than other really much "
         "because thing find each then water home food money book name small place long little great").split()


def benchmark(workdir: Path, rule: str) -> dict[str, dict[str, float]]:
    """job name -> {"s", "cpu_time"} from benchmarks/<rule>[/...].tsv."""
    found = {}
    paths = sorted((workdir / "benchmarks").glob(f"{rule}/*.tsv")) + sorted((workdir / "benchmarks").glob(f"{rule}.tsv"))
    for tsv in paths:
        with open(tsv, encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        name = rule if tsv.name == f"{rule}.tsv" else f"{rule}/{tsv.stem}"
        found[name] = {"s": float(row["s"]), "cpu_time": float(row["cpu_time"])}
    return found


def snakemake(workdir: Path, config: Path, cores: str, options: tuple[str, ...] = (),
              targets: tuple[str, ...] = ()) -> float:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", cores,
               "--configfile", str(config), *options, "--quiet", "all", "--", *targets]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(options + targets)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def median_by_job(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    jobs = sorted(set().union(*rounds))
    return {job: {key: round(statistics.median(r[job][key] for r in rounds if job in r), 2) for key in ("s", "cpu_time")}
            for job in jobs}


# ---------------------------------------------------------------- the cases' configs

def prose(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens (4 characters each) of lower-case words, in sentences."""
    words, length = [], 0
    while length < 4 * tokens:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    text = " ".join(words)
    return ". ".join(part.capitalize() for part in text.split(" the ") if part) + "."


def lognormal_tokens(rng: random.Random, median: float, p95: float, low: int, high: int) -> int:
    sigma = math.log(p95 / median) / 1.645
    return max(low, min(high, round(median * math.exp(rng.gauss(0.0, sigma)))))


def hh_shaped(path: Path, pairs: int, seed: int = 1) -> dict:
    """hh-rlhf rows with real hh-rlhf lengths (prompt median 60 tokens, replies 45; p95 250 and 180)."""
    rng = random.Random(seed)
    lengths = []
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(pairs):
            prompt_tokens = lognormal_tokens(rng, 60, 250, 8, 700)
            chosen_tokens, rejected_tokens = (lognormal_tokens(rng, 45, 180, 3, 400) for _ in range(2))
            turns = rng.choice([1, 1, 2, 3])
            past = "".join(f"\n\nHuman: {prose(rng, prompt_tokens // (2 * turns))}\n\nAssistant: "
                           f"{prose(rng, prompt_tokens // (2 * turns))}" for _ in range(turns - 1))
            question = prose(rng, max(4, prompt_tokens // turns))
            # A learnable preference: the chosen reply answers with the question's first words.
            chosen = " ".join(question.split()[:3]) + " " + prose(rng, chosen_tokens)
            rejected = prose(rng, rejected_tokens)
            row = {"chosen": f"{past}\n\nHuman: {question}\n\nAssistant: {chosen}",
                   "rejected": f"{past}\n\nHuman: {question}\n\nAssistant: {rejected}"}
            lengths.append(len(row["chosen"]) / 4)
            handle.write(json.dumps(row) + "\n")
    lengths.sort()
    return {"pairs": pairs, "chosen_transcript_tokens_median": lengths[len(lengths) // 2],
            "chosen_transcript_tokens_p95": lengths[int(0.95 * len(lengths))], "unit": "characters / 4"}


def case_config(case: str, workdir: Path) -> tuple[Path, dict]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    facts: dict = {}
    if case == "trained":
        config["eval"]["judge"] = "trained"
    elif case == "hh":
        facts = hh_shaped(workdir / "raw/hh.jsonl", 2000)
        config["datasets"] = {"hh": {"format": "hh-rlhf", "source": "local", "path": "raw/hh.jsonl"}}
        config["model"].update(max_position_embeddings=1024)
        for step, steps in (("sft", 300), ("dpo", 100), ("reward", 150)):
            config[step] = {"max_steps": steps, "max_length": 1024}
        config["eval"].update(judge="auto", judge_prompts=200, kl_prompts=200, max_new_tokens=48)
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, facts


def measure_case(case: str, rounds: int, cores: str, start_from: Path | None = None) -> dict:
    """`start_from`: a finished run of the same data and training to copy (the trained case starts from the
    default's run, so only the judge and what it scores are computed anew)."""
    with tempfile.TemporaryDirectory(prefix=f"prefalign-evalcost-{case}-") as scratch:
        workdir = Path(scratch) / "run"
        if start_from is not None:
            shutil.copytree(start_from, workdir, symlinks=True)
        (workdir / "raw").mkdir(parents=True, exist_ok=True)
        config, facts = case_config(case, workdir)
        full = snakemake(workdir, config, cores)
        if case == "default":
            keep = Path(tempfile.mkdtemp(prefix="prefalign-evalcost-keep-")) / "run"
            shutil.copytree(workdir, keep, symlinks=True)
            facts = {"kept_run": str(keep)}
        training = {job: v for rule in TRAIN_RULES for job, v in benchmark(workdir, rule).items()}
        targets = sorted(str(p.relative_to(workdir)) for p in workdir.glob("results/eval/**/*.json"))
        present = tuple(rule for rule in EVAL_RULES if benchmark(workdir, rule))
        per_round, walls = [], []
        for n in range(1, rounds + 1):
            walls.append(snakemake(workdir, config, cores, ("--forcerun", *present), tuple(targets)))
            per_round.append({job: v for rule in present for job, v in benchmark(workdir, rule).items()})
            print(f"[{case}] round {n}: evaluation jobs {sum(v['s'] for v in per_round[-1].values()):.1f} s wall, "
                  f"{sum(v['cpu_time'] for v in per_round[-1].values()):.1f} s CPU", flush=True)
        test_pairs = sum(1 for _ in open(workdir / "results/data/test.jsonl", encoding="utf-8"))
        judge = json.loads((workdir / "results/eval/dpo/metrics.json").read_text())["judge_choice"]
    totals = [sum(v["s"] for v in r.values()) for r in per_round]
    cpu = [sum(v["cpu_time"] for v in r.values()) for r in per_round]
    return {
        "judge": judge, "fixture": facts, "test_pairs": test_pairs, "rules": list(present),
        "eval_jobs_median": median_by_job(per_round),
        "eval_added_s_per_round": [round(t, 2) for t in totals],
        "eval_added_s_median": round(statistics.median(totals), 2),
        "eval_cpu_s_median": round(statistics.median(cpu), 2),
        "snakemake_command_s_median": round(statistics.median(walls), 2),
        "training_jobs_same_run": training,
        "training_s": round(sum(v["s"] for v in training.values()), 2),
        "first_command_s": round(full, 2),
        "first_command": "the whole pipeline" if start_from is None else "from the default case's finished run",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="evaluation reruns measured per case (default 3)")
    parser.add_argument("--cores", default="2", help="snakemake --cores (default 2, the figure's condition)")
    parser.add_argument("--cases", nargs="+", default=["default", "trained", "hh"], choices=["default", "trained", "hh"])
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/eval_cost.json", help="JSON output")
    args = parser.parse_args()

    load_before = os.getloadavg()
    cases = {}
    for case in args.cases:
        start_from = Path(cases["default"]["fixture"]["kept_run"]) if case == "trained" and "default" in cases else None
        cases[case] = measure_case(case, args.rounds, args.cores, start_from)
    if "default" in cases:
        shutil.rmtree(Path(cases["default"]["fixture"].pop("kept_run")).parent)
    summary = {
        "command": f"python bench/eval_cost.py --rounds {args.rounds} --cores {args.cores} --cases {' '.join(args.cases)}",
        "note": "shared machine: medians over rounds; CPU seconds are the steadier figure",
        "rounds": args.rounds, "cases": cases,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    for case, result in cases.items():
        print(f"\n{case}: judge {result['judge']['kind']} ({result['test_pairs']} test pairs); evaluation jobs, median of "
              f"{args.rounds}:")
        for job, v in result["eval_jobs_median"].items():
            print(f"  {job:40s} {v['s']:6.1f} s wall {v['cpu_time']:6.1f} s CPU")
        print(f"  {'added to the pipeline (sum, jobs serial)':40s} {result['eval_added_s_median']:6.1f} s wall "
              f"{result['eval_cpu_s_median']:6.1f} s CPU")
        jobs = ", ".join(f"{job} {v['s']:.1f}" for job, v in result["training_jobs_same_run"].items())
        print(f"  baseline, same run: training {result['training_s']:.1f} s wall ({jobs})")
    print(f"load average before/after: {summary['load_average_before_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
