"""Human A/B evaluation: the blind sheet, reading ratings, the win rate and its interval.

The round trip through a real run's generations and `prefalign report` is in
tests/train/test_steps.py (test_ab_round_trip_puts_the_human_win_rate_in_the_report).
"""

from __future__ import annotations

import csv
import json

import pytest
from conftest import run_cli, write_lines

from prefalign.evaluation import ab


def generations(tmp_path, n=30, identical=5):
    sft = [{"id": f"p{i}", "prompt": f"What is {i} + 1?", "answer": f"about {i}"} for i in range(n)]
    dpo = [{"id": f"p{i}", "prompt": f"What is {i} + 1?", "answer": f"about {i}" if i < identical else str(i + 1)}
           for i in range(n)]
    test = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"What is {i} + 1?"}]} for i in range(n)]
    return (write_lines(tmp_path / "sft.jsonl", sft), write_lines(tmp_path / "dpo.jsonl", dpo),
            write_lines(tmp_path / "test.jsonl", test))


def export(tmp_path, *extra):
    sft, dpo, test = generations(tmp_path)
    out = tmp_path / "ab"
    run_cli("ab", "export", "--sft-generations", sft, "--dpo-generations", dpo, "--test", test, "--sheet-csv",
            out / "sheet.csv", "--sheet-html", out / "sheet.html", "--key", out / "key.json", *extra)
    return out


def read_sheet(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def fill(sheet_rows, key, prefer_dpo: int, ties: int = 0, rater: str | None = None):
    """Ratings: DPO preferred on the first `prefer_dpo` items, ties next, SFT on the rest."""
    sides = {entry["item"]: entry for entry in key["key"]}
    rows = []
    for i, row in enumerate(sheet_rows):
        item = int(row["item"])
        dpo_side = "A" if sides[item]["A"] == "dpo" else "B"
        sft_side = "B" if dpo_side == "A" else "A"
        choice = dpo_side if i < prefer_dpo else "tie" if i < prefer_dpo + ties else sft_side
        rows.append({**row, "preference": choice, **({"rater": rater} if rater else {})})
    return rows


def write_ratings(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_sheet_is_blind_seeded_and_leaves_out_identical_answers(tmp_path):
    out = export(tmp_path, "--items", "20")
    rows = read_sheet(out / "sheet.csv")
    key = json.loads((out / "key.json").read_text())
    assert list(rows[0]) == ab.SHEET_COLUMNS and len(rows) == 20 and key["items"] == 20
    assert not any(r["answer_a"] == r["answer_b"] for r in rows)  # 5 identical pairs left out
    assert all(r["prompt"].startswith("user: What is") for r in rows)  # the full conversation from test.jsonl
    sides = [entry["A"] for entry in key["key"]]
    assert 0 < sides.count("dpo") < 20  # random sides, recorded in the key only
    assert [e["id"] for e in key["key"]] != sorted(e["id"] for e in key["key"])  # random order
    page = (out / "sheet.html").read_text()
    assert "default-src 'none'" in page and page.count("class=item") == 20 and not any(w in page.split("<body>")[1] for w in ("sft", "dpo", "SFT", "DPO"))
    again = export(tmp_path / "again", "--items", "20")
    assert (again / "sheet.csv").read_bytes() == (out / "sheet.csv").read_bytes()
    other = export(tmp_path / "other", "--items", "20", "--seed", "7")
    assert (other / "sheet.csv").read_bytes() != (out / "sheet.csv").read_bytes()


def test_the_prompts_the_judge_found_closest_come_first():
    """Judge gaps |DPO - SFT|: p0 3.0, p1 0.5, p2 unscored, p3 0.0, p4 1.0, p5 0.5 -> p3, then p1/p5 (seeded), p4, p0, p2."""
    scores = {"p0": (0.0, 3.0), "p1": (1.0, 1.5), "p2": (None, None), "p3": (2.0, 2.0), "p4": (0.0, 1.0),
              "p5": (1.0, 0.5)}
    sft = [{"id": i, "prompt": i, "answer": f"s{i}", "score": s} for i, (s, _) in scores.items()]
    dpo = [{"id": i, "prompt": i, "answer": f"d{i}", "score": d} for i, (_, d) in scores.items()]
    items, facts = ab.sheet_items(sft, dpo, [], ab.ABSettings(items=6, seed=3))
    order = [item["id"] for item in items]
    assert order[0] == "p3" and set(order[1:3]) == {"p1", "p5"} and order[3:] == ["p4", "p0", "p2"]
    assert [item["judge_gap"] for item in items[:4]] == [0.0, 0.5, 0.5, 1.0]
    assert facts["order"].startswith("closest judge scores first")


def test_import_counts_wins_ties_and_a_bootstrap_interval(tmp_path):
    out = export(tmp_path, "--items", "20")
    key = json.loads((out / "key.json").read_text())
    ratings = write_ratings(tmp_path / "ratings.csv", fill(read_sheet(out / "sheet.csv"), key, 14, ties=2))
    run_cli("ab", "import", ratings, "--key", out / "key.json", "--out", out / "win_rate.json")
    result = json.loads((out / "win_rate.json").read_text())
    assert (result["wins"], result["ties"], result["losses"], result["ratings"]) == (14, 2, 4, 20)
    assert result["win_rate"] == pytest.approx(15 / 20)
    low, high = result["interval"]
    assert 0.5 < low < 0.75 < high < 0.95 and result["confidence"] == 0.95
    assert sum(result["chosen_side"].values()) == 20


def test_several_raters_and_blank_rows(tmp_path):
    out = export(tmp_path, "--items", "10")
    key = json.loads((out / "key.json").read_text())
    rows = read_sheet(out / "sheet.csv")
    first = write_ratings(tmp_path / "r1.csv", fill(rows, key, 10, rater="ann"))
    second_rows = fill(rows, key, 0, rater="bob")
    second_rows[-1]["preference"] = ""  # left unrated
    second = write_ratings(tmp_path / "r2.csv", second_rows)
    run_cli("ab", "import", first, second, "--key", out / "key.json", "--out", out / "win_rate.json")
    result = json.loads((out / "win_rate.json").read_text())
    assert (result["raters"], result["ratings"], result["unrated_rows"], result["items_rated"]) == (2, 19, 1, 10)
    assert result["win_rate"] == pytest.approx(10 / 19)


@pytest.mark.parametrize("change, expected", [
    (lambda r: r.update(preference="maybe"), "preference: expected A, B or tie, got 'maybe'"),
    (lambda r: r.update(item="99"), "item: expected an item of the sheet (1-5), got 99"),
    (lambda r: r.update(item="x"), "item: expected an item number of the sheet, got 'x'"),
])
def test_a_bad_rating_names_file_line_and_column(tmp_path, change, expected):
    out = export(tmp_path, "--items", "5")
    key = json.loads((out / "key.json").read_text())
    rows = fill(read_sheet(out / "sheet.csv"), key, 3)
    change(rows[2])
    ratings = write_ratings(tmp_path / "ratings.csv", rows)
    result = run_cli("ab", "import", ratings, "--key", out / "key.json", "--out", out / "w.json", check=False)
    assert result.returncode != 0 and f"{ratings}:4: {expected}" in result.stderr
    assert "Traceback" not in result.stderr and not (out / "w.json").exists()


def test_an_item_rated_twice_by_one_rater_is_refused(tmp_path):
    out = export(tmp_path, "--items", "5")
    key = json.loads((out / "key.json").read_text())
    rows = fill(read_sheet(out / "sheet.csv"), key, 3)
    ratings = write_ratings(tmp_path / "ratings.csv", rows + [rows[0]])
    result = run_cli("ab", "import", ratings, "--key", out / "key.json", "--out", out / "w.json", check=False)
    assert result.returncode != 0 and "rated twice" in result.stderr and f"{ratings}:7" in result.stderr
