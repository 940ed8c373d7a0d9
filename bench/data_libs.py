"""The measurements behind the data stage's library choices, side by side in one run.

  JSON     json vs orjson: parse and write the raw lines of hh-rlhf-shaped pairs.
  MinHash  datasketch vs rensa: 128-slot sketches of each pair's word set, then LSH
           (insert every pair, look up the flagged ones), threshold 0.8.

CPU seconds (time.process_time, less disturbed than wall time on a shared machine; rensa
runs with RAYON_NUM_THREADS=1 so both count one core), medians of --repeats. datasketch is
not a dependency of prefalign: install it to compare (pip install datasketch==2.0.0), or the
MinHash rows say it is missing. Writes bench/results/data_libs.json.

    python bench/data_libs.py [--records 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
import rensa  # noqa: E402
from data_throughput import generate  # noqa: E402

from prefalign.data.dedup import lsh_bands, words  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cpu(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return statistics.median(times)


def sketch_rensa(tokens):
    lsh = rensa.RMinHashLSH(0.8, 128, lsh_bands(128, 0.8)[0])
    flagged = 0
    for start in range(0, len(tokens), 1024):
        chunk = tokens[start:start + 1024]
        flags = lsh.insert_matrix_and_query_duplicate_flags(
            rensa.RMinHash.digest_matrix_from_token_sets(chunk, 128, 0), start)
        hits = [chunk[k] for k, f in enumerate(flags) if f]
        for query in rensa.RMinHash.from_token_sets(hits, 128, 0) if hits else []:
            flagged += len(lsh.query(query)) > 1
    return flagged


def sketch_datasketch(tokens):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    flagged = 0
    for i, sketch in enumerate(MinHash.bulk([[t.encode() for t in doc] for doc in tokens], num_perm=128)):
        flagged += bool(lsh.query(sketch))
        lsh.insert(i, sketch)
    return flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/data_libs.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.jsonl"
        generate(raw, args.records)
        lines = raw.read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    results = {
        "json_parse_s": cpu(lambda: [json.loads(line) for line in lines], args.repeats),
        "orjson_parse_s": cpu(lambda: [orjson.loads(line) for line in lines], args.repeats),
        "json_write_s": cpu(lambda: [json.dumps(r, ensure_ascii=False).encode() for r in rows], args.repeats),
        "orjson_write_s": cpu(lambda: [orjson.dumps(r) for r in rows], args.repeats),
    }
    tokens = [words(r["chosen"] + "\n" + r["rejected"]) for r in rows]
    results["rensa_minhash_lsh_s"] = cpu(lambda: sketch_rensa(tokens), args.repeats)
    try:
        import datasketch  # noqa: F401

        results["datasketch_minhash_lsh_s"] = cpu(lambda: sketch_datasketch(tokens), args.repeats)
    except ImportError:
        results["datasketch_minhash_lsh_s"] = None
    report = {"what": f"CPU seconds for {args.records:,} hh-rlhf-shaped pairs (medians of {args.repeats})",
              "records": args.records, **{k: round(v, 3) if v is not None else None for k, v in results.items()},
              "orjson_parse_speedup": round(results["json_parse_s"] / results["orjson_parse_s"], 2),
              "orjson_write_speedup": round(results["json_write_s"] / results["orjson_write_s"], 2)}
    if results["datasketch_minhash_lsh_s"]:
        report["rensa_speedup_over_datasketch"] = round(
            results["datasketch_minhash_lsh_s"] / results["rensa_minhash_lsh_s"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:32s} {value}")


if __name__ == "__main__":
    main()
