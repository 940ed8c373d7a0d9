"""The baseline of bench/data_throughput.py: the `datasets` script a user would write by hand.

Same work as prefalign's data stage on hh-rlhf rows, written the straightforward way:
load_dataset("json"), .map to split the transcripts, .filter for empty, identical and too
long pairs, a set for exact duplicates, rensa's RMinHashDeduplicator as its README shows it
for near duplicates, a prompt-hash split, the same 8-gram decontamination, .to_json. It keeps
no ledger: what it dropped is only a difference of counts, printed as the last line (JSON).

    python bench/data_throughput_baseline.py RAW.jsonl OUT_DIR
"""

import hashlib
import json
import re
import string
import sys
from pathlib import Path

from datasets import load_dataset
from rensa import RMinHashDeduplicator

raw, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
TURN = re.compile(r"\n\n(Human|Assistant):(?: |(?=\n)|$)")
ROLE = {"Human": "user", "Assistant": "assistant"}
PUNCT = str.maketrans({c: " " for c in string.punctuation})


def turns(text):
    marks = list(TURN.finditer(text))
    return [{"role": ROLE[m.group(1)], "content": text[m.end():(n.start() if n else len(text))].strip()}
            for m, n in zip(marks, marks[1:] + [None])]


def parse(row):
    chosen, rejected = turns(row["chosen"]), turns(row["rejected"])
    ok = bool(chosen and rejected and chosen[-1]["role"] == rejected[-1]["role"] == "assistant"
              and chosen[:-1] == rejected[:-1] and any(t["role"] == "user" for t in chosen[:-1]))
    return {"prompt": chosen[:-1] if ok else [], "chosen": chosen[-1:] if ok else [],
            "rejected": rejected[-1:] if ok else [], "ok": ok}


def text(messages):
    return "\n".join(m["content"] for m in messages)


def key(row):
    parts = [m["role"] + " " + " ".join(m["content"].split()) for k in ("prompt", "chosen", "rejected") for m in row[k]]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


counts = {}
ds = load_dataset("json", data_files=raw, split="train")
counts["in"] = len(ds)
ds = ds.map(parse, remove_columns=["chosen", "rejected"])
ds = ds.filter(lambda r: r["ok"])
counts["parsed"] = len(ds)
ds = ds.filter(lambda r: text(r["chosen"]).strip() and text(r["rejected"]).strip())
ds = ds.filter(lambda r: " ".join(text(r["chosen"]).split()) != " ".join(text(r["rejected"]).split()))
ds = ds.filter(lambda r: len(text(r["prompt"])) + max(len(text(r["chosen"])), len(text(r["rejected"]))) <= 4000)
counts["filtered"] = len(ds)
seen = set()
ds = ds.filter(lambda r: not (key(r) in seen or seen.add(key(r))))
counts["exact_dedup"] = len(ds)
dedup = RMinHashDeduplicator(threshold=0.8, num_perm=128, use_lsh=True)
documents = (text(r["prompt"]) + " " + text(r["chosen"]) + " " + text(r["rejected"]) for r in ds)
keep = dedup.add_pairs((str(i), doc.lower().translate(PUNCT).split()) for i, doc in enumerate(documents))
ds = ds.select([i for i, k in enumerate(keep) if k])
counts["near_dedup"] = len(ds)


def in_test(row):
    prompt = json.dumps([[m["role"], m["content"]] for m in row["prompt"]], ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"prefalign:{hashlib.sha256(prompt.encode()).hexdigest()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < 0.1


def grams(content, n=8):
    w = content.lower().translate(PUNCT).split()
    return {tuple(w)} if len(w) <= n else {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


test = ds.filter(in_test)
train = ds.filter(lambda r: not in_test(r))
test_grams = set()
for row in test:
    test_grams |= grams([m for m in row["prompt"] if m["role"] == "user"][-1]["content"])


def clean(row):
    mine = set().union(*(grams(m["content"]) for m in row["prompt"] if m["role"] != "assistant"))
    return sum(g in test_grams for g in mine) / len(mine) < 0.5


train = train.filter(clean)
counts.update(train=len(train), test=len(test))
train.remove_columns(["ok"]).to_json(out / "train.jsonl", force_ascii=False)
test.remove_columns(["ok"]).to_json(out / "test.jsonl", force_ascii=False)
print(json.dumps(counts))
