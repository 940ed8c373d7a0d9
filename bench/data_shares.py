"""What each data-stage default keeps and drops, per format, on rows in the published shapes.

For each of the five formats, generates rows in that dataset's published row shape
(tests/real_shapes.py, `shape="published"`: hh-rlhf with the real pairs' lengths from
../shared/data/hh_rlhf_lengths.json, the other formats with the distributions written there,
which are assumptions), runs the normalize and split steps with the schema's default data
settings (the one resolution of a config that sets none), and reports the share of rows each
ledger reason drops; then the share that other values of max_chars and min_score_ratio would
drop, from the kept records' lengths and ratios, to show where the defaults sit.

    python bench/data_shares.py [--rows 20000]

Writes bench/results/data_shares.json. These are figures on shaped data, not on the datasets.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

import real_shapes  # noqa: E402

from prefalign.config.resolve import resolve_mapping  # noqa: E402
from prefalign.data.filters import FilterSettings, text  # noqa: E402
from prefalign.data.normalize import NormalizeSettings, normalize  # noqa: E402
from prefalign.data.split import SplitSettings, split  # noqa: E402
from prefalign.jsonl import read_jsonl, write_jsonl  # noqa: E402

MAX_CHARS = [2000, 4000, 8000, 16000]
MIN_RATIOS = [1.0, 1.5, 2.0, 3.0]


def default_settings(raw: Path, fmt: str) -> tuple[NormalizeSettings, FilterSettings, SplitSettings]:
    config = {"datasets": {fmt: {"format": fmt, "source": "local", "path": str(raw)}}, "eval": {"comparisons": []}}
    settings = resolve_mapping(config).settings
    return settings[f"normalize:{fmt}"], settings["filters"], settings["split"]


def share(count: int, total: int) -> float:
    return round(count / total, 5) if total else 0.0


def measure(fmt: str, n: int, folder: Path) -> dict:
    rows = real_shapes.FORMATS[fmt](n if fmt != "oasst1" else max(1, n // 5), shape="published")
    raw = folder / f"{fmt}.jsonl"
    write_jsonl(raw, rows)
    normalize_settings, filters, split_settings = default_settings(raw, fmt)
    started = time.perf_counter()
    stats = normalize(raw, normalize_settings, filters, folder / "n.jsonl", folder / "r.jsonl")
    mix = split([folder / "n.jsonl"], split_settings, folder / "train.jsonl", folder / "test.jsonl",
                folder / "mix_rejects.jsonl")
    seconds = time.perf_counter() - started
    units = stats["in"]
    # What other values would drop, among the pairs the other filters keep (max_chars and the
    # ratio filter switched off, everything else at its default).
    open_filters = FilterSettings(**{**filters.to_dict(), "max_chars": 0, "min_score_ratio": 0})
    stats_open = normalize(raw, normalize_settings, open_filters, folder / "n_open.jsonl", folder / "r_open.jsonl")
    records = read_jsonl(folder / "n_open.jsonl")
    sizes = [len(text(r["prompt"])) + max(len(text(r["chosen"])), len(text(r["rejected"]))) for r in records]
    ratios = [r["meta"].get("score_ratio") for r in records]
    stages = {}
    for stage in [*stats["stages"], *mix["stages"]]:  # each reason as a share of what its stage received
        if stage["dropped"]:
            stages[stage["stage"]] = {"unit": stage["unit"], "in": stage["in"],
                                      "dropped_share": {k: share(v, stage["in"]) for k, v in
                                                        stage["dropped_by_reason"].items()}}
    return {
        "format": fmt,
        "raw_rows": stats["rows"],
        "messages": stats.get("messages"),
        "units": units,
        "pairs_made": stats["stages"][1]["out"],
        "stages": stages,
        "normalize": {"kept": stats["kept"],
                      "kept_share_of_pairs_made": share(stats["kept"], stats["stages"][1]["out"]),
                      "dropped_by_reason": stats["dropped_by_reason"]},
        "split": {"train": mix["train"], "test": mix["test"], "dropped_by_reason": mix["dropped_by_reason"]},
        "mix_kept_of_pairs_made": share(mix["train"] + mix["test"], stats["stages"][1]["out"]),
        "max_chars_would_drop": {str(limit): share(sum(s > limit for s in sizes), len(sizes)) for limit in MAX_CHARS},
        "min_score_ratio_would_drop": ({str(r): share(sum(x is not None and x < r for x in ratios), len(ratios))
                                        for r in MIN_RATIOS} if fmt == "shp" else None),
        "pairs_before_max_chars_and_ratio": stats_open["kept"],
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="raw rows per format (oasst1: trees = rows / 5)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/data_shares.json")
    args = parser.parse_args()
    results = []
    for fmt in real_shapes.FORMATS:
        with tempfile.TemporaryDirectory(prefix=f"shares-{fmt}-") as scratch:
            result = measure(fmt, args.rows, Path(scratch))
        results.append(result)
        print(json.dumps(result))
    out = {"command": f"python bench/data_shares.py --rows {args.rows}",
           "date": time.strftime("%Y-%m-%d"), "machine": platform.node(), "python": platform.python_version(),
           "note": "rows generated in the published shapes (tests/real_shapes.py); hh-rlhf lengths resampled from "
                   "2,312 real harmless-base test pairs, every other distribution and defect rate an assumption",
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
