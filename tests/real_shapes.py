"""Raw preference rows in the published row shapes of public datasets, generated (never fetched).

    hh_rlhf(n)        Anthropic/hh-rlhf: {"chosen", "rejected"} transcripts ("\n\nHuman: ..." turns)
    shp(n)            stanfordnlp/SHP: post_id, domain, upvote_ratio, history, c_root_id_A/B,
                      created_at_utc_A/B, score_A/B, human_ref_A/B, labels, seconds_difference,
                      score_ratio
    ultrafeedback(n)  HuggingFaceH4/ultrafeedback_binarized: prompt, prompt_id, chosen and rejected
                      message lists, messages, score_chosen, score_rejected
    oasst1(n)         OpenAssistant/oasst1 message rows (message_id, parent_id, user_id,
                      created_date, text, role, lang, review_count, review_result, deleted, rank,
                      synthetic, model_name, detoxify, message_tree_id, tree_state, emojis, labels),
                      n trees; `nested(rows)` and `trees(rows)` give the same trees as the
                      nested export (a root message with `replies`) and the *.trees.jsonl export
    pairs(n)          plain {"prompt", "chosen", "rejected"} strings

`shape="test"` (the default) writes short texts for workflow tests; `shape="published"` draws
lengths and defect rates for measuring what each filter drops. Only hh-rlhf's lengths are
real: they are resampled from ../shared/data/hh_rlhf_lengths.json (2,312 harmless-base test
pairs, characters = 4 x tokens) when that file exists. Everything else is an assumption,
written next to each value below, so a figure measured on these rows is a figure on shaped
data, not on the datasets themselves.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

WORDS = ("the a of to and in is it you that for on with as was be at by this have from or one had not but what "
         "all were when we there can an your which their said if do will each about how up out them then she many "
         "some so these would other into has more her two like him see time could no make than first been its who "
         "now people my made over did down only way find use may water long little very after words called just "
         "where most know get through back much before go good new write our used me man too any day same right "
         "look think also around another came come work three word must because does part even place well such "
         "here take why things help put years different away again off went old number great tell men say small "
         "every found still between name should home big give air line set own under read last never us left end "
         "along while might next sound below saw something thought both few those always looked show large often "
         "together asked house world going want school important until form food keep children feet land side "
         "without boy once animals life enough took sometimes four head above kind began almost live page got "
         "earth need far hand high year mother light parts country father let night following picture being study "
         "second eyes soon times story boys since white days ever paper hard near sentence better best across during "
         "today others however sure means knew its try told young miles sun ways thing whole hear example heard "
         "several change answer room sea against top turned learn point city play toward five using himself "
         "usually").split()
QUESTION_STARTS = ["How do I", "What is the best way to", "Can you explain why", "Why does", "Is it safe to",
                   "What should I do if", "Could you help me", "Tell me how to", "What are some ideas to",
                   "Where can I"]
SHORT_FOLLOW_UPS = ["Yes", "Go on.", "Thanks!", "Okay.", "Why?", "Tell me more.", "I see.", "No."]
LENGTHS_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh_rlhf_lengths.json"


def vocabulary(size: int = 20000) -> list[str]:
    """The common words first, then made-up words: ranks for a Zipf draw (as in real text, a few words
    are everywhere and most are rare, so two texts share few rare words)."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "en", "dor", "pa", "qu", "zi", "bel", "mon", "ar",
                 "is", "to", "an", "ul", "ri", "fe", "go", "sa"]
    made_up = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)}
    return WORDS + sorted(made_up - set(WORDS))[: size - len(WORDS)]


VOCABULARY = vocabulary()
ZIPF = list(__import__("itertools").accumulate(1.0 / (rank + 1) for rank in range(len(VOCABULARY))))


class Text:
    """Sentences of Zipf-distributed words (common English ones first), of a given length."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(VOCABULARY, cum_weights=ZIPF, k=max(1, n)))

    def sentence(self, low: int = 5, high: int = 18) -> str:
        text = self.words(self.rng.randint(low, high))
        return text[0].upper() + text[1:] + self.rng.choice([".", ".", ".", "!"])

    def question(self) -> str:
        return f"{self.rng.choice(QUESTION_STARTS)} {self.words(self.rng.randint(3, 12))}?"

    def chars(self, n: int) -> str:
        """Prose of about n characters (at least one sentence)."""
        out = []
        while sum(len(s) + 1 for s in out) < n:
            out.append(self.sentence())
        return " ".join(out)[: max(n, 1)].rstrip() or self.sentence()


def lognormal_int(rng: random.Random, median: float, sigma: float, low: int = 1) -> int:
    return max(low, int(rng.lognormvariate(math.log(median), sigma)))


# ---------------------------------------------------------------- Anthropic/hh-rlhf

def _hh_lengths(rng: random.Random):
    if LENGTHS_FILE.is_file():
        rows = json.loads(LENGTHS_FILE.read_text())["rows"]
        return lambda: [4 * t for t in rng.choice(rows)]  # the real pairs' lengths, chars/4 as tokens
    return lambda: [lognormal_int(rng, 520, 0.8), lognormal_int(rng, 250, 1.0), lognormal_int(rng, 250, 1.0)]


def hh_rlhf(n: int, seed: int = 1, shape: str = "test") -> list[dict]:
    """Assumed defect rates (published shape): 0.5% embedded turn markers in a reply, 0.3% identical
    replies, 1% exact duplicate rows, 0.2% two human turns in a row, 2% trailing spaces."""
    rng, text = random.Random(seed), Text(random.Random(seed + 1))
    lengths = _hh_lengths(rng)
    rows: list[dict] = []
    for i in range(n):
        roll = rng.random()
        if shape == "published" and roll < 0.01 and rows:
            rows.append(dict(rng.choice(rows)))
            continue
        if shape == "published":
            prompt_chars, chosen_chars, rejected_chars = lengths()
            turns = rng.choices([1, 2, 3, 4], weights=[35, 25, 20, 20])[0]
            per_turn = max(20, prompt_chars // (2 * turns))
            history = [(text.chars(per_turn), text.chars(per_turn)) for _ in range(turns - 1)]
            question = text.chars(per_turn)
            chosen, rejected = text.chars(chosen_chars), text.chars(rejected_chars)
        else:
            history = [(text.question(), text.sentence())] if i % 3 == 0 else []
            if i % 5 == 1:
                history.append((text.question(), text.sentence()))
                question = rng.choice(SHORT_FOLLOW_UPS)  # real follow-ups: "Yes", "Go on."
            else:
                question = text.question()
            chosen, rejected = f"{text.sentence()} {text.sentence()}", text.sentence(3, 8)
        past = "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in history)
        if shape == "published" and rng.random() < 0.002:
            past += f"\n\nHuman: {text.sentence()}"  # two human turns in a row
        if shape == "published" and 0.01 <= roll < 0.015:
            chosen += f" Human: {text.question()}\n\nAssistant: {text.sentence()}"  # a reply holding turns
        elif shape == "published" and 0.015 <= roll < 0.018:
            rejected = chosen
        end = " " if shape == "published" and rng.random() < 0.02 else ""
        rows.append({"chosen": f"{past}\n\nHuman: {question}\n\nAssistant: {chosen}{end}",
                     "rejected": f"{past}\n\nHuman: {question}\n\nAssistant: {rejected}"})
    return rows


# ---------------------------------------------------------------- stanfordnlp/SHP

DOMAINS = ["askscience_train", "explainlikeimfive_train", "askhistorians_train", "cooking_train", "legaladvice_train"]


def shp(n: int, seed: int = 2, shape: str = "test") -> list[dict]:
    """Assumed: 1 to 6 comment pairs per post; comment scores 1 + lognormal (median 5, sigma 1.4),
    never tied within a pair (SHP pairs have a preferred comment); post lengths lognormal
    (median 600 characters), comments median 400."""
    rng, text = random.Random(seed), Text(random.Random(seed + 1))
    rows: list[dict] = []
    post = 0
    while len(rows) < n:
        post += 1
        domain = rng.choice(DOMAINS)
        history = text.chars(lognormal_int(rng, 600, 0.9)) if shape == "published" else text.question()
        comments = [(f"c{post}_{k}", text.chars(lognormal_int(rng, 400, 1.1)) if shape == "published" else
                     text.sentence(), 1 + lognormal_int(rng, 5, 1.4, 0), 1600000000 + rng.randint(0, 10**6))
                    for k in range(rng.randint(2, 4))]
        for (id_a, ref_a, score_a, t_a), (id_b, ref_b, score_b, t_b) in zip(comments, comments[1:]):
            if len(rows) >= n:
                break
            if score_a == score_b:
                score_b += 1
            rows.append({"post_id": f"p{post}", "domain": domain, "upvote_ratio": round(rng.uniform(0.6, 1.0), 2),
                         "history": history, "c_root_id_A": id_a, "c_root_id_B": id_b, "created_at_utc_A": t_a,
                         "created_at_utc_B": t_b, "score_A": score_a, "score_B": score_b, "human_ref_A": ref_a,
                         "human_ref_B": ref_b, "labels": int(score_a > score_b),
                         "seconds_difference": float(abs(t_a - t_b)),
                         "score_ratio": max(score_a, score_b) / min(score_a, score_b)})
    return rows


# ---------------------------------------------------------------- HuggingFaceH4/ultrafeedback_binarized

def ultrafeedback(n: int, seed: int = 3, shape: str = "test") -> list[dict]:
    """Assumed: scores on UltraFeedback's 1-10 scale in steps of 0.5, the rejected one a random
    lower-or-equal completion (ties 4%); prompts lognormal (median 400 characters), replies
    lognormal (median 1,100 characters, sigma 0.9: long answers are common)."""
    rng, text = random.Random(seed), Text(random.Random(seed + 1))
    rows = []
    for _ in range(n):
        prompt = text.chars(lognormal_int(rng, 400, 1.0)) if shape == "published" else text.question()
        chosen = text.chars(lognormal_int(rng, 1100, 0.9)) if shape == "published" else \
            f"{text.sentence()} {text.sentence()}"
        rejected = text.chars(lognormal_int(rng, 900, 0.9)) if shape == "published" else text.sentence(3, 8)
        score_chosen = rng.choice([x / 2 for x in range(8, 21)])
        score_rejected = score_chosen if rng.random() < 0.04 else rng.choice(
            [x / 2 for x in range(2, int(2 * score_chosen))] or [1.0])
        user = {"role": "user", "content": prompt}
        rows.append({"prompt": prompt, "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
                     "chosen": [user, {"role": "assistant", "content": chosen}],
                     "rejected": [user, {"role": "assistant", "content": rejected}],
                     "messages": [user, {"role": "assistant", "content": chosen}],
                     "score_chosen": score_chosen, "score_rejected": score_rejected})
    return rows


# ---------------------------------------------------------------- OpenAssistant/oasst1

LANGS = ["en"] * 45 + ["es"] * 25 + ["ru"] * 8 + ["de"] * 7 + ["zh"] * 5 + ["fr"] * 4 + ["pt-BR"] * 6


def _message(rng, message_id, parent, role, text, tree, lang, rank=None, deleted=False, review=True):
    return {"message_id": message_id, "parent_id": parent, "user_id": f"u{rng.randint(1, 999)}",
            "created_date": "2023-02-05T00:00:00.000000+00:00", "text": text, "role": role, "lang": lang,
            "review_count": 3, "review_result": review, "deleted": deleted, "rank": rank, "synthetic": False,
            "model_name": None, "detoxify": None, "message_tree_id": tree, "tree_state": "ready_for_export",
            "emojis": None, "labels": None}


def oasst1(n: int, seed: int = 4, shape: str = "test") -> list[dict]:
    """n message trees, one message per row. Assumed: English only for tests, the published language
    mix (en 45%, es 25%, ...) otherwise; 2 to 4 replies per prompter message, ranked (0 = best)
    when there are at least two, 15% unranked; one follow-up below the best reply in 40% of trees;
    deleted 2%, failed review 3%; texts lognormal (prompts median 250, replies 700 characters)."""
    rng, text = random.Random(seed), Text(random.Random(seed + 1))
    rows: list[dict] = []

    def say(median):
        return text.chars(lognormal_int(rng, median, 0.9)) if shape == "published" else text.sentence()

    def replies(parent, tree, lang, depth):
        count = rng.randint(2, 4)
        ranked = rng.random() > 0.15
        order = list(range(count))
        rng.shuffle(order)
        for k in range(count):
            bad = shape == "published" and rng.random() < 0.05
            mid = f"{parent}.{k}"
            rows.append(_message(rng, mid, parent, "assistant", say(700), tree, lang,
                                 rank=order[k] if ranked else None, deleted=bad and rng.random() < 0.4,
                                 review=not bad or rng.random() < 0.4))
        if depth == 0 and rng.random() < 0.4:
            best = f"{parent}.{order.index(0)}"
            follow = f"{best}.f"
            rows.append(_message(rng, follow, best, "prompter",
                                 rng.choice(SHORT_FOLLOW_UPS) if rng.random() < 0.3 else say(250), tree, lang))
            replies(follow, tree, lang, depth + 1)

    for t in range(n):
        tree = f"tree{t:05d}"
        lang = rng.choice(LANGS) if shape == "published" else "en"
        rows.append(_message(rng, tree, None, "prompter", say(250) if shape == "published" else text.question(),
                             tree, lang))
        replies(tree, tree, lang, 0)
    return rows


def nested(rows: list[dict]) -> list[dict]:
    """The nested export: one root message per row, each message holding its `replies`."""
    children: dict[str | None, list[dict]] = {}
    for m in rows:
        children.setdefault(m["parent_id"], []).append(m)

    def build(m):
        node = {k: v for k, v in m.items() if k != "parent_id" and (k != "message_tree_id" or m["parent_id"] is None)}
        node["replies"] = [build(c) for c in children.get(m["message_id"], [])]
        return node

    return [build(root) for root in children.get(None, [])]


def trees(rows: list[dict]) -> list[dict]:
    """The *.trees.jsonl export: one tree per row, its root under `prompt`."""
    return [{"message_tree_id": root["message_tree_id"], "tree_state": "ready_for_export", "prompt": root,
             "origin": None} for root in nested(rows)]


# ---------------------------------------------------------------- plain pairs

def pairs(n: int, seed: int = 5, shape: str = "test") -> list[dict]:
    rng, text = random.Random(seed), Text(random.Random(seed + 1))
    return [{"prompt": text.chars(lognormal_int(rng, 300, 1.0)) if shape == "published" else text.question(),
             "chosen": text.chars(lognormal_int(rng, 600, 1.0)) if shape == "published" else
             f"{text.sentence()} {text.sentence()}",
             "rejected": text.chars(lognormal_int(rng, 500, 1.0)) if shape == "published" else text.sentence(3, 8)}
            for _ in range(n)]


FORMATS = {"hh-rlhf": hh_rlhf, "shp": shp, "ultrafeedback": ultrafeedback, "oasst1": oasst1, "pairs": pairs}
