"""The baseline of bench/data_throughput.py: the `datasets` script a competent user writes by hand.

Same work as prefalign's data stage on hh-rlhf rows, written the way the `datasets` docs advise:
load_dataset("json"), then ONE batched `.map` that parses the transcripts, applies the filters
(well-formed, empty, identical, too long) and computes each row's exact-duplicate key and
split hash once (rows dropped by returning fewer rows from the batch), a set over the key
column for exact duplicates, rensa's RMinHashDeduplicator as its README shows it for near
duplicates, a prompt-hash split from the precomputed column, the same 8-gram decontamination
(turns under 4 words left out, as prefalign does), `.to_json`. No hash is computed twice and
no row is filtered in a second pass. It keeps no ledger: what it dropped is only a difference
of counts, printed as the last line (JSON).

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
MAX_CHARS, TEST_FRACTION, NGRAM, MIN_WORDS = 8000, 0.1, 8, 4


def turns(text):
    parts = TURN.split(text)
    return [{"role": ROLE[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def joined(messages):
    return "\n".join(m["content"] for m in messages)


def clean_batch(batch):
    """Parse and filter a batch; keep rows that pass, with their dedup key and split fraction."""
    out = {"prompt": [], "chosen": [], "rejected": [], "key": [], "fraction": []}
    for chosen_text, rejected_text in zip(batch["chosen"], batch["rejected"]):
        chosen, rejected = turns(chosen_text), turns(rejected_text)
        if not (chosen and rejected and chosen[-1]["role"] == rejected[-1]["role"] == "assistant"
                and chosen[:-1] == rejected[:-1] and any(t["role"] == "user" for t in chosen[:-1])):
            continue
        prompt, good, bad = chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]
        if not good.strip() or not bad.strip() or " ".join(good.split()) == " ".join(bad.split()):
            continue
        if len(joined(prompt)) + max(len(good), len(bad)) > MAX_CHARS:
            continue
        parts = [m["role"] + " " + " ".join(m["content"].split()) for m in prompt] + [good, bad]
        canonical = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(f"prefalign:{hashlib.sha256(canonical.encode()).hexdigest()}".encode()).digest()
        out["prompt"].append(prompt)
        out["chosen"].append([{"role": "assistant", "content": good}])
        out["rejected"].append([{"role": "assistant", "content": bad}])
        out["key"].append(hashlib.sha256("\x1f".join(" ".join(p.split()) for p in parts).encode()).digest())
        out["fraction"].append(int.from_bytes(digest[:8], "big") / 2**64)
    return out


counts = {}
ds = load_dataset("json", data_files=raw, split="train")
counts["in"] = len(ds)
ds = ds.map(clean_batch, batched=True, batch_size=2000, remove_columns=ds.column_names)
counts["filtered"] = len(ds)
seen, unique = set(), []
for i, key in enumerate(ds["key"]):
    if key not in seen:
        seen.add(key)
        unique.append(i)
ds = ds.select(unique)
counts["exact_dedup"] = len(ds)
dedup = RMinHashDeduplicator(threshold=0.8, num_perm=128, use_lsh=True)
documents = (joined(p) + " " + joined(c) + " " + joined(r) for p, c, r in zip(ds["prompt"], ds["chosen"],
                                                                               ds["rejected"]))
keep = dedup.add_pairs((str(i), doc.lower().translate(PUNCT).split()) for i, doc in enumerate(documents))
ds = ds.select([i for i, k in enumerate(keep) if k])
counts["near_dedup"] = len(ds)


def grams(content):
    w = content.lower().translate(PUNCT).split()
    if len(w) < MIN_WORDS:
        return set()
    return {tuple(w)} if len(w) <= NGRAM else {tuple(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)}


fractions = ds["fraction"]
test_rows = [i for i, f in enumerate(fractions) if f < TEST_FRACTION]
train_rows = [i for i, f in enumerate(fractions) if f >= TEST_FRACTION]
test, train = ds.select(test_rows), ds.select(train_rows)
test_grams = set()
for prompt in test["prompt"]:
    test_grams |= grams([m for m in prompt if m["role"] == "user"][-1]["content"])
clean = []
for i, prompt in enumerate(train["prompt"]):
    mine = set().union(*(grams(m["content"]) for m in prompt if m["role"] != "assistant"))
    if not mine or sum(g in test_grams for g in mine) / len(mine) < 0.5:
        clean.append(i)
train = train.select(clean)
counts.update(train=len(train), test=len(test))
train.remove_columns(["key", "fraction"]).to_json(out / "train.jsonl", force_ascii=False)
test.remove_columns(["key", "fraction"]).to_json(out / "test.jsonl", force_ascii=False)
print(json.dumps(counts))
