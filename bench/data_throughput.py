"""The data stage against a hand-written `datasets` script, side by side on the same input.

Generates a seeded hh-rlhf-shaped raw file (default 200,000 pairs: one to four human turns,
replies of a few to hundreds of words, and planted defects: ~2% exact duplicates, ~2% near
duplicates, a few prompt mismatches, empty and identical replies), then, `--repeats` times
and alternating, runs

  prefalign   `prefalign normalize` + `prefalign split` (the real CLI, default settings,
              split with --threads 2): filters, exact and near dedup, split, decontamination;
  baseline    the script a competent user writes: `datasets.load_dataset`, one batched
              `.map` that parses, filters and computes each row's keys once, a set over the key
              column for exact duplicates, rensa's RMinHashDeduplicator (its README usage) for
              near duplicates, a prompt-hash split, the same n-gram decontamination, `.to_json`.

Each run is a fresh subprocess; wall time and peak RSS (ru_maxrss from wait4) are measured
per process. Prints medians and ratios and writes bench/results/data_throughput.json, with the
ledger reconciliation and the recall of planted duplicates of the last prefalign run.

    python bench/data_throughput.py [--records 200000] [--repeats 3]

Figures are from a shared 2-core machine unless said otherwise: compare ratios of runs made
side by side, not absolute times across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# ---------------------------------------------------------------- the input


def vocabulary(rng: np.random.Generator, size: int = 30000) -> np.ndarray:
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "en", "dor", "pa", "qu", "zi", "bel", "mon",
                          "ar", "is", "to", "an", "the"])
    words = {"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(size)}
    return np.array(sorted(words))


class Prose:
    """Zipf-distributed words from a pseudo vocabulary, drawn in large numpy batches."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.vocab = vocabulary(rng)
        weights = 1.0 / np.arange(1, len(self.vocab) + 1)
        self.p = weights / weights.sum()
        self.buffer: list[str] = []
        self.next = 0

    def words(self, n: int) -> list[str]:
        if self.next + n > len(self.buffer):
            self.buffer = self.vocab[self.rng.choice(len(self.vocab), size=max(n, 1_000_000), p=self.p)].tolist()
            self.next = 0
        self.next += n
        return self.buffer[self.next - n:self.next]

    def sentence(self, low: int, high: int) -> str:
        n = int(np.exp(self.rng.uniform(np.log(low), np.log(high + 1))))
        words = self.words(max(n, 1))
        words[0] = words[0].capitalize()
        return " ".join(words) + self.rng.choice([".", "?", "!"])


def transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in turns)


def near_copy(rng: np.random.Generator, prose: Prose, turns_c, turns_r):
    """An edited copy: case and punctuation changed; in a reply of n >= 30 words, max(1, n // 50)
    words replaced (word 3-gram Jaccard of that reply stays >= 0.8)."""
    turns_c, turns_r = [list(t) for t in turns_c], [list(t) for t in turns_r]
    target = turns_c if rng.random() < 0.5 else turns_r
    words = target[-1][1].split()
    if len(words) >= 30:
        for i in rng.choice(len(words), size=max(1, len(words) // 50), replace=False):
            words[i] = prose.words(1)[0]
    target[-1][1] = " ".join(words)
    question = turns_c[-1][0]
    edited = question.upper() if rng.random() < 0.5 else question.rstrip(".?!") + " ??"
    turns_c[-1][0] = turns_r[-1][0] = edited
    return turns_c, turns_r


def generate(path: Path, n: int, seed: int = 1) -> dict:
    """Write n raw hh-rlhf rows to `path`; return the planted defects (by 1-based line)."""
    rng = np.random.default_rng(seed)
    prose = Prose(rng)
    planted = {"exact": {}, "near": {}, "prompt_mismatch": [], "empty": [], "identical": []}
    eligible: list[int] = []  # lines with long enough replies to be copied as near duplicates
    rows: list[tuple] = []
    with open(path, "w", encoding="utf-8") as handle:
        for line in range(1, n + 1):
            roll = rng.random()
            if roll < 0.02 and rows:
                source = int(rng.integers(1, len(rows) + 1))
                turns_c, turns_r = rows[source - 1]
                planted["exact"][line] = source
            elif roll < 0.04 and eligible:
                source = eligible[int(rng.integers(len(eligible)))]
                turns_c, turns_r = near_copy(rng, prose, *rows[source - 1])
                planted["near"][line] = source
            else:
                history = [(prose.sentence(4, 40), prose.sentence(3, 120))
                           for _ in range(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))]
                question = prose.sentence(4, 40)
                turns_c = history + [(question, prose.sentence(3, 300))]
                turns_r = history + [(question, prose.sentence(3, 300))]
                if roll < 0.045:
                    turns_r = history + [(prose.sentence(4, 40), turns_r[-1][1])]
                    planted["prompt_mismatch"].append(line)
                elif roll < 0.05:
                    turns_c = history + [(question, "")]
                    planted["empty"].append(line)
                elif roll < 0.055:
                    turns_r = turns_c
                    planted["identical"].append(line)
                elif len(turns_c[-1][1].split()) >= 30 and len(turns_r[-1][1].split()) >= 30:
                    eligible.append(line)
            rows.append((turns_c, turns_r))
            handle.write(json.dumps({"chosen": transcript(turns_c), "rejected": transcript(turns_r)}) + "\n")
    return planted


# ---------------------------------------------------------------- running and measuring


def measure(command: list[str], env: dict | None = None) -> dict:
    """Run a command; wall seconds and peak RSS (MiB) of that process, from wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output.decode(errors='replace')[-4000:]}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "output": output.decode(errors="replace")}


def run_prefalign(raw: Path, out: Path) -> dict:
    prefalign = str(BIN / "prefalign")
    normalize = measure([prefalign, "normalize", "--input", str(raw), "--name", "hh", "--records",
                         str(out / "hh/normalized.jsonl"), "--rejects", str(out / "hh/rejects.jsonl"),
                         "--stats", str(out / "hh/stats.json")])
    split = measure([prefalign, "split", "--inputs", str(out / "hh/normalized.jsonl"), "--train",
                     str(out / "train.jsonl"), "--test", str(out / "test.jsonl"), "--rejects",
                     str(out / "rejects.jsonl"), "--stats", str(out / "stats.json"), "--threads", "2"])
    return {"wall_s": normalize["wall_s"] + split["wall_s"], "cpu_s": normalize["cpu_s"] + split["cpu_s"],
            "peak_rss_mib": max(normalize["peak_rss_mib"], split["peak_rss_mib"]),
            "steps": {"normalize": {k: v for k, v in normalize.items() if k != "output"},
                      "split": {k: v for k, v in split.items() if k != "output"}}}


def run_baseline(raw: Path, out: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_CACHE": str(out / "hf-cache"), "HF_HUB_OFFLINE": "1",
           "RAYON_NUM_THREADS": "2"}
    result = measure([sys.executable, str(Path(__file__).with_name("data_throughput_baseline.py")), str(raw), str(out)],
                     env)
    counts = json.loads(result.pop("output").strip().splitlines()[-1])
    return {**result, "counts": counts}


def reconcile(out: Path, planted: dict) -> dict:
    """Ledger checks and planted-duplicate recall of a prefalign run's outputs."""
    def lines(path):
        with open(path, "rb") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    normalize_stats = json.loads((out / "hh/stats.json").read_text())
    split_stats = json.loads((out / "stats.json").read_text())
    first_ledger, second_ledger = lines(out / "hh/rejects.jsonl"), lines(out / "rejects.jsonl")
    kept = sum(1 for _ in open(out / "train.jsonl", "rb")) + sum(1 for _ in open(out / "test.jsonl", "rb"))
    line_of = lambda record_id: int(record_id.rsplit("/", 1)[1])  # noqa: E731 - hh/train/000123 -> 123
    reason = {line_of(e["id"]): e["reason"] for e in first_ledger + second_ledger}
    near = planted["near"]
    # A planted near duplicate can only be found when it and its original both reach the split.
    reached = {k: v for k, v in near.items() if reason.get(k) not in {"too_long", "empty", "identical"}
               and reason.get(v) in (None, "contaminated")}
    found_near = sum(reason.get(k) in ("near_duplicate", "duplicate") for k in reached)
    # An exact copy of a row that an earlier filter drops is dropped for that same reason first.
    early = {"prompt_mismatch", "empty", "identical", "too_long"}
    exact = {k: v for k, v in planted["exact"].items() if reason.get(v) not in early}
    found_exact = sum(reason.get(k) == "duplicate" for k in exact)
    return {
        "rows": normalize_stats["rows"],
        "normalize": {"in": normalize_stats["in"], "kept": normalize_stats["kept"],
                      "dropped": normalize_stats["dropped"], "ledger_lines": len(first_ledger),
                      "dropped_by_reason": normalize_stats["dropped_by_reason"]},
        "split": {"in": split_stats["in"], "kept": kept, "dropped": split_stats["dropped"],
                  "ledger_lines": len(second_ledger), "dropped_by_reason": split_stats["dropped_by_reason"],
                  "train": split_stats["train"], "test": split_stats["test"]},
        "reconciles": (normalize_stats["rows"] == normalize_stats["kept"] + len(first_ledger)
                       and split_stats["in"] == normalize_stats["kept"] == kept + len(second_ledger)),
        "planted_exact": len(planted["exact"]), "planted_exact_of_rows_reaching_dedup": len(exact),
        "planted_exact_found": found_exact,
        "planted_near": len(near), "planted_near_reaching_split": len(reached), "planted_near_found": found_near,
        "near_recall": found_near / len(reached) if reached else None,
        "planted_defects_ledgered": {k: sum(reason.get(line) == k for line in planted[k])
                                     for k in ("prompt_mismatch", "empty", "identical")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="raw pairs to generate (default 200000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/data_throughput.json", help="JSON output")
    parser.add_argument("--note", default="shared 2-core machine, other jobs running", help="where it ran")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prefalign-data-bench-") as scratch:
        scratch = Path(scratch)
        raw = scratch / "raw.jsonl"
        start = time.perf_counter()
        planted = generate(raw, args.records)
        print(f"generated {args.records:,} pairs ({raw.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        runs = {"prefalign": [], "baseline": []}
        for repeat in range(args.repeats):
            for side, runner in (("prefalign", run_prefalign), ("baseline", run_baseline)):
                out = scratch / f"{side}-{repeat}"
                result = runner(raw, out)
                runs[side].append(result)
                print(f"{side:9s} run {repeat + 1}: {result['wall_s']:6.1f} s wall, {result['cpu_s']:6.1f} s cpu, "
                      f"{args.records / result['wall_s']:8,.0f} pairs/s, peak RSS {result['peak_rss_mib']:6.0f} MiB",
                      flush=True)
                if side == "prefalign" and repeat == args.repeats - 1:
                    ledger = reconcile(out, planted)
        summary = {}
        for side, results in runs.items():
            wall = statistics.median(r["wall_s"] for r in results)
            summary[side] = {"wall_s_median": round(wall, 2),
                             "pairs_per_s_median": round(args.records / wall),
                             "cpu_s_median": round(statistics.median(r["cpu_s"] for r in results), 2),
                             "peak_rss_mib_median": round(statistics.median(r["peak_rss_mib"] for r in results)),
                             "wall_s_runs": [round(r["wall_s"], 2) for r in results]}
        summary["prefalign"]["steps_wall_s_median"] = {
            step: round(statistics.median(r["steps"][step]["wall_s"] for r in runs["prefalign"]), 2)
            for step in ("normalize", "split")}
        summary["baseline"]["counts"] = runs["baseline"][-1]["counts"]
        speedup = summary["baseline"]["wall_s_median"] / summary["prefalign"]["wall_s_median"]
        memory = summary["baseline"]["peak_rss_mib_median"] / summary["prefalign"]["peak_rss_mib_median"]

    report = {
        "what": "hh-rlhf-shaped pairs through normalize + filters + exact and near dedup + split + decontamination: "
                "prefalign CLI vs a hand-written datasets script (bench/data_throughput_baseline.py), same input",
        "records": args.records, "repeats": args.repeats, "note": args.note,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        **summary, "speedup_wall": round(speedup, 2), "memory_ratio_baseline_over_prefalign": round(memory, 2),
        "ledger": ledger,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmedians over {args.repeats} runs ({args.note}):")
    for side in ("prefalign", "baseline"):
        s = summary[side]
        print(f"  {side:9s} {s['wall_s_median']:6.1f} s  {s['pairs_per_s_median']:8,} pairs/s  "
              f"peak RSS {s['peak_rss_mib_median']:5} MiB")
    print(f"  prefalign is {speedup:.2f}x faster and uses {memory:.2f}x less peak memory")
    print(f"  ledger reconciles: {ledger['reconciles']}; planted near duplicates found: {ledger['planted_near_found']}"
          f"/{ledger['planted_near_reaching_split']} (recall {ledger['near_recall']:.3f}); exact: "
          f"{ledger['planted_exact_found']}/{ledger['planted_exact_of_rows_reaching_dedup']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
