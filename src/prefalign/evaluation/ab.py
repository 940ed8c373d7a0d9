"""`prefalign ab export | import`: a blind human A/B comparison of SFT and DPO answers.

export: SFT's and DPO's greedy answers to the same held-out prompts (the evaluate step's
generations.jsonl, full conversations from test.jsonl), the prompts whose two answers the
judge scored closest first (where human raters add most to what the judge already says;
equal gaps, and prompts the judge did not score, in a seeded random order), each pair with a
seeded random side (A or B), as a sheet for raters: sheet.csv (fill the `preference`
column with A, B or tie) and sheet.html (a static page that loads nothing; its button saves
the filled ratings as a CSV). The key (item -> which model is A) and the order go to key.json,
which raters must not see.

import: ratings CSV(s) with columns `item` and `preference` (optionally `rater`; other
columns are ignored, blank preferences are unrated) -> the human win rate of DPO over SFT:
(DPO preferred + half the ties) / rated, with a 95% percentile bootstrap interval that
resamples items (all ratings of an item together, so several raters are not counted as
independent evidence), and how often each side was chosen (position bias).

Raises RecordError naming file, line and column for a rating it cannot read (an unknown item,
a preference other than A/B/tie, an item rated twice by one rater).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import RecordError
from prefalign.evaluation import intervals
from prefalign.hashing import sha256_file
from prefalign.jsonl import read_jsonl, write_json
from prefalign.settings import Settings, expect, seed_field

BOOTSTRAP_SAMPLES = 10_000
SHEET_COLUMNS = ["item", "prompt", "answer_a", "answer_b", "preference", "comment"]
PREFERENCES = {"a": "A", "b": "B", "tie": "tie"}


@dataclass
class ABSettings(Settings):
    SECTION = "ab"
    items: int = field(default=50, metadata={"help": "held-out prompts in the sheet (at most)"})
    skip_identical: bool = field(default=True, metadata={"help": "leave out prompts both models answered alike"})
    seed: int = seed_field("the item order and the A/B sides")

    def __post_init__(self):
        expect(isinstance(self.items, int) and self.items >= 1, "items", "an integer >= 1", self.items)


# ---------------------------------------------------------------- export

def conversation_text(messages: list[dict]) -> str:
    """A prompt's turns as plain text, one `role: content` paragraph each."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def judge_gap(sft: dict, dpo: dict) -> float:
    """|judge score of DPO's answer - SFT's|; infinite where the judge scored either not at all."""
    if sft.get("score") is None or dpo.get("score") is None:
        return math.inf
    return abs(dpo["score"] - sft["score"])


def sheet_items(sft: list[dict], dpo: list[dict], test: list[dict], settings: ABSettings) -> tuple[list[dict], dict]:
    """(items for raters, facts for the key): seeded order, seeded sides, identical pairs left out."""
    prompts = {record["id"]: record["prompt"] for record in test}
    dpo_by_id = {g["id"]: g for g in dpo}
    shared = [g for g in sft if g["id"] in dpo_by_id]
    rng = random.Random(settings.seed)
    order = list(range(len(shared)))
    rng.shuffle(order)
    order.sort(key=lambda i: judge_gap(shared[i], dpo_by_id[shared[i]["id"]]))  # stable: ties keep the seeded order
    items, identical = [], 0
    for index in order:
        s, d = shared[index], dpo_by_id[shared[index]["id"]]
        if settings.skip_identical and s["answer"].strip() == d["answer"].strip():
            identical += 1
            continue
        dpo_is_a = rng.random() < 0.5
        prompt = conversation_text(prompts[s["id"]]) if s["id"] in prompts else s["prompt"]
        items.append({"item": len(items) + 1, "id": s["id"], "prompt": prompt, "judge_gap": judge_gap(s, d),
                      "answer_a": d["answer"] if dpo_is_a else s["answer"],
                      "answer_b": s["answer"] if dpo_is_a else d["answer"],
                      "a": "dpo" if dpo_is_a else "sft", "b": "sft" if dpo_is_a else "dpo"})
        if len(items) == settings.items:
            break
    return items, {"candidates": len(shared), "skipped_identical": identical,
                   "order": "closest judge scores first (|DPO - SFT|), seeded random among equal gaps"}


def write_sheet_csv(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SHEET_COLUMNS)
        for item in items:
            writer.writerow([item["item"], item["prompt"], item["answer_a"], item["answer_b"], "", ""])


SHEET_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#1d232b}
.item{border:1px solid #d8dde3;border-radius:6px;padding:.8em 1em;margin:1em 0}
.prompt,.answer{white-space:pre-wrap;font-family:ui-monospace,monospace;background:#f5f7fa;padding:.5em;margin:.3em 0}
.answers{display:grid;grid-template-columns:1fr 1fr;gap:1em}label{margin-right:1.2em}
button{font-size:1em;padding:.4em 1em}#status{margin-left:1em;color:#5a6270}"""

# Builds ratings.csv from the choices and offers it as a download; nothing leaves the page.
SHEET_JS = """function q(v){return '"'+String(v).replace(/"/g,'""')+'"';}
function save(){var rows=['item,preference,comment'],n=0;
document.querySelectorAll('.item').forEach(function(el){var id=el.dataset.item,
c=el.querySelector('input[type=radio]:checked'),t=el.querySelector('textarea').value;
if(c){n++;}rows.push([id,c?c.value:'',q(t)].join(','));});
var a=document.createElement('a');a.href='data:text/csv;charset=utf-8,'+encodeURIComponent(rows.join('\\n')+'\\n');
a.download='ratings.csv';document.body.appendChild(a);a.click();a.remove();
document.getElementById('status').textContent=n+' of '+(rows.length-1)+' rated';}"""


def sheet_html(items: list[dict], title: str) -> str:
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; "
             "script-src 'unsafe-inline'\">",
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{SHEET_CSS}</style></head>",
             f"<body><h1>{html.escape(title)}</h1>",
             "<p>For each prompt, which answer is better: A, B, or a tie? The answers come from two models in a "
             "random order. When done, press <em>Save ratings.csv</em> and send the file back.</p>"]
    for item in items:
        n = item["item"]
        choices = "".join(f"<label><input type=radio name=p{n} value={v}> {label}</label>"
                          for v, label in (("A", "A is better"), ("B", "B is better"), ("tie", "tie")))
        parts.append(
            f"<div class=item data-item={n}><h3>Item {n}</h3><div class=prompt>{html.escape(item['prompt'])}</div>"
            f"<div class=answers><div><b>A</b><div class=answer>{html.escape(item['answer_a'])}</div></div>"
            f"<div><b>B</b><div class=answer>{html.escape(item['answer_b'])}</div></div></div>"
            f"<p>{choices}</p><textarea rows=1 cols=60 placeholder='comment (optional)'></textarea></div>")
    parts.append(f"<p><button onclick='save()'>Save ratings.csv</button><span id=status></span></p>"
                 f"<script>{SHEET_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def export(args: argparse.Namespace) -> None:
    settings = ABSettings.from_args(args)
    sft, dpo = read_jsonl(args.sft_generations), read_jsonl(args.dpo_generations)
    test = read_jsonl(args.test) if args.test else []
    items, facts = sheet_items(sft, dpo, test, settings)
    expect(bool(items), "items", "at least one prompt where SFT and DPO answered differently",
          f"{facts['candidates']} shared prompts, {facts['skipped_identical']} identical")
    write_sheet_csv(args.sheet_csv, items)
    args.sheet_html.parent.mkdir(parents=True, exist_ok=True)
    args.sheet_html.write_text(sheet_html(items, "Which answer is better?"), encoding="utf-8")
    write_json(args.key, {
        "settings": settings.to_dict(), **facts, "items": len(items),
        "sources": {"sft": sha256_file(args.sft_generations), "dpo": sha256_file(args.dpo_generations)},
        "key": [{"item": i["item"], "id": i["id"], "A": i["a"], "B": i["b"],
                 "judge_gap": None if math.isinf(i["judge_gap"]) else i["judge_gap"]} for i in items],
    })
    print(f"wrote {len(items)} items to {args.sheet_csv} and {args.sheet_html} (key: {args.key}; "
          f"{facts['skipped_identical']} of {facts['candidates']} prompts left out: identical answers)")


# ---------------------------------------------------------------- import

@dataclass
class Rating:
    item: int
    rater: str
    preference: str  # A, B or tie
    where: str  # file:line


def read_ratings(paths: list[Path], known_items: set[int]) -> tuple[list[Rating], int]:
    """(ratings, unrated rows) from filled sheets; RecordError names file, line and column."""
    ratings, unrated, seen = [], 0, {}
    for path in paths:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"item", "preference"} - set(reader.fieldnames or [])
            if missing:
                raise RecordError(f"{path}:1: expected columns item and preference, missing {', '.join(sorted(missing))}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                text = (row.get("preference") or "").strip()
                if not text:
                    unrated += 1
                    continue
                try:
                    item = int((row.get("item") or "").strip())
                except ValueError:
                    raise RecordError(f"{where}: item: expected an item number of the sheet, got {row.get('item')!r}")
                if item not in known_items:
                    raise RecordError(f"{where}: item: expected an item of the sheet (1-{max(known_items)}), got {item}")
                preference = PREFERENCES.get(text.lower())
                if preference is None:
                    raise RecordError(f"{where}: preference: expected A, B or tie, got {text!r}")
                rater = (row.get("rater") or "").strip() or str(path)
                if (rater, item) in seen:
                    raise RecordError(f"{where}: item {item} rated twice by {rater} (first at {seen[rater, item]})")
                seen[rater, item] = where
                ratings.append(Rating(item, rater, preference, where))
    return ratings, unrated


def win_rate(ratings: list[Rating], key: dict[int, dict], seed: int) -> dict:
    """DPO's win rate over SFT: (wins + ties/2) / ratings, with a bootstrap interval over items."""
    expect(bool(ratings), "ratings", "at least one rated item (A, B or tie in the preference column)", 0)
    sides = {"A": 0, "B": 0, "tie": 0}
    scores = []  # per rating: 1 DPO preferred, 0.5 tie, 0 SFT preferred
    for rating in ratings:
        sides[rating.preference] += 1
        scores.append(0.5 if rating.preference == "tie" else
                      1.0 if key[rating.item][rating.preference] == "dpo" else 0.0)
    n, wins, ties = len(scores), scores.count(1.0), scores.count(0.5)
    items = [r.item for r in ratings]
    low, high = intervals.bootstrap_interval(scores, BOOTSTRAP_SAMPLES, seed, clusters=items)
    return {
        "model": "dpo", "baseline": "sft", "ratings": n, "items_rated": len(set(items)),
        "raters": len({r.rater for r in ratings}), "wins": wins, "losses": n - wins - ties, "ties": ties,
        "win_rate": sum(scores) / n, "interval": [low, high], "confidence": intervals.LEVEL,
        "method": f"(DPO preferred + ties/2) / ratings; {intervals.LEVEL:.0%} percentile bootstrap over items, "
                  f"{BOOTSTRAP_SAMPLES} resamples, seed {seed}",
        "chosen_side": sides,
    }


def import_ratings(args: argparse.Namespace) -> None:
    key_data = json.loads(Path(args.key).read_text(encoding="utf-8"))
    key = {entry["item"]: entry for entry in key_data["key"]}
    ratings, unrated = read_ratings(args.ratings, set(key))
    result = win_rate(ratings, key, key_data["settings"]["seed"])
    result.update({"unrated_rows": unrated, "sheet_items": len(key)})
    write_json(args.out, result)
    low, high = result["interval"]
    print(f"human A/B: DPO preferred in {result['wins']}, SFT in {result['losses']}, ties {result['ties']} of "
          f"{result['ratings']} ratings ({result['raters']} rater(s), {result['items_rated']} of {len(key)} items): "
          f"win rate {result['win_rate']:.3f} [{low:.3f}, {high:.3f}]; wrote {args.out}")


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    out = sub.add_parser("export", help="write the blind A/B sheet (CSV, HTML) and its key",
                         description="write the blind A/B sheet (CSV, HTML) and its key")
    out.add_argument("--sft-generations", type=Path, required=True, help="evaluate generations of SFT (JSONL)")
    out.add_argument("--dpo-generations", type=Path, required=True, help="evaluate generations of DPO (JSONL)")
    out.add_argument("--test", type=Path, help="held-out records (JSONL): full conversations for the prompts")
    out.add_argument("--sheet-csv", type=Path, default=Path("results/ab/sheet.csv"), help="output: the sheet (CSV)")
    out.add_argument("--sheet-html", type=Path, default=Path("results/ab/sheet.html"), help="output: the sheet (HTML)")
    out.add_argument("--key", type=Path, default=Path("results/ab/key.json"), help="output: the key (JSON)")
    ABSettings.add_arguments(out)
    into = sub.add_parser("import", help="human win rate of DPO over SFT from filled ratings",
                          description="human win rate of DPO over SFT from filled ratings")
    into.add_argument("ratings", type=Path, nargs="+", help="filled ratings (CSV: item, preference[, rater])")
    into.add_argument("--key", type=Path, default=Path("results/ab/key.json"), help="the sheet's key (JSON)")
    into.add_argument("--out", type=Path, default=Path("results/ab/win_rate.json"), help="output: win rate (JSON)")


def main(args: argparse.Namespace) -> None:
    export(args) if args.action == "export" else import_ratings(args)
