"""Raw rows in the real datasets' shapes, written as the files those datasets ship, and a
hub cache laid out the way huggingface_hub writes it. Tests make all their data here."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path


def hh(question: str, chosen: str, rejected: str, history: tuple[tuple[str, str], ...] = ()) -> dict:
    """An Anthropic/hh-rlhf row: two transcripts that share every turn but the last."""
    past = "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in history)
    return {"chosen": f"{past}\n\nHuman: {question}\n\nAssistant: {chosen}",
            "rejected": f"{past}\n\nHuman: {question}\n\nAssistant: {rejected}"}


def shp(history: str, ref_a: str, ref_b: str, score_a: int, score_b: int, post: str = "p1") -> dict:
    """A stanfordnlp/SHP row (labels = 1 when A has the higher score, as in the dataset)."""
    return {"post_id": post, "domain": "askscience_train", "upvote_ratio": 0.9, "history": history,
            "c_root_id_A": "ca", "c_root_id_B": "cb", "created_at_utc_A": 1600000000,
            "created_at_utc_B": 1600000100, "score_A": score_a, "score_B": score_b, "human_ref_A": ref_a,
            "human_ref_B": ref_b, "labels": int(score_a > score_b), "seconds_difference": 100.0,
            "score_ratio": max(score_a, score_b) / min(score_a, score_b)}


def ultrafeedback(prompt: str, chosen: str, rejected: str, score_chosen: float = 8.0,
                  score_rejected: float = 5.0) -> dict:
    """A HuggingFaceH4/ultrafeedback_binarized row."""
    user = {"role": "user", "content": prompt}
    return {"prompt": prompt, "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
            "chosen": [user, {"role": "assistant", "content": chosen}],
            "rejected": [user, {"role": "assistant", "content": rejected}],
            "messages": [user, {"role": "assistant", "content": chosen}],
            "score_chosen": score_chosen, "score_rejected": score_rejected}


def oasst_message(message_id: str, parent_id: str | None, role: str, text: str, rank=None, lang: str = "en",
                  tree: str = "t1", deleted: bool = False, review_result: bool | None = True) -> dict:
    """One OpenAssistant/oasst1 message row (the fields the dataset has, most of them)."""
    return {"message_id": message_id, "parent_id": parent_id, "user_id": "u", "created_date": "2023-02-05T00:00:00",
            "text": text, "role": role, "lang": lang, "review_count": 3, "review_result": review_result,
            "deleted": deleted, "rank": rank, "synthetic": False, "model_name": None, "detoxify": None,
            "message_tree_id": tree, "tree_state": "ready_for_export", "emojis": None, "labels": None}


def oasst_tree() -> list[dict]:
    """A root question with three ranked replies, one unranked; a follow-up with two ranked replies."""
    return [
        oasst_message("r", None, "prompter", "What is the capital of France?"),
        oasst_message("a0", "r", "assistant", "Paris.", rank=0),
        oasst_message("a1", "r", "assistant", "Lyon, I think.", rank=1),
        oasst_message("a2", "r", "assistant", "France has no capital.", rank=2),
        oasst_message("ax", "r", "assistant", "Unranked reply.", rank=None),
        oasst_message("f", "a0", "prompter", "And of Spain?"),
        oasst_message("f0", "f", "assistant", "Madrid.", rank=0),
        oasst_message("f1", "f", "assistant", "Barcelona.", rank=1),
    ]


def write_rows(path: Path, rows: list, fmt: str | None = None) -> Path:
    """Write rows as JSON Lines, a JSON array or Parquet (by suffix unless `fmt`); .gz compresses."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.removesuffix(".gz")
    fmt = fmt or ("parquet" if name.endswith(".parquet") else "json" if name.endswith(".json") else "jsonl")
    if fmt == "parquet":
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        data = buffer.getvalue()
    elif fmt == "json":
        data = json.dumps(rows, indent=1).encode()
    else:
        data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def fake_hub_dataset(cache: Path, repo_id: str, revision: str, files: dict[str, bytes]) -> Path:
    """A dataset repository in a hub cache, as huggingface_hub lays it out after a download.

    cache/datasets--owner--name/{blobs/<digest>, snapshots/<revision>/<path> -> blob, refs/main}
    Returns the snapshot folder.
    """
    repo = Path(cache) / f"datasets--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / digest, link.parent))
    return snapshot


def dataset_card(configs: dict[str, dict[str, str]]) -> bytes:
    """README.md with the `configs` front matter the hub uses: {config: {split: path}}."""
    lines = ["---", "configs:"]
    for i, (name, splits) in enumerate(configs.items()):
        lines.append(f"- config_name: {name}")
        if i == 0:
            lines.append("  default: true")
        lines.append("  data_files:")
        for split, path in splits.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
    lines += ["---", "# a test dataset", ""]
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- real-looking conversations (hh-rlhf shape)

TOPICS = {
    "cook rice": ["rinse the rice until the water runs clear", "use about one and a half cups of water per cup",
                  "simmer it covered for fifteen minutes", "let it rest off the heat before serving"],
    "fix a flat bike tire": ["take the wheel off the frame", "find the hole by pumping air and listening",
                             "patch the tube or fit a new one", "pump it back to the pressure on the sidewall"],
    "learn the guitar": ["start with a few open chords", "practice changing between them slowly",
                         "play along with simple songs", "spend ten minutes a day rather than hours once a week"],
    "grow tomatoes": ["plant them where they get six hours of sun", "water deeply but not every day",
                      "tie the stems to a stake as they grow", "pick the fruit when it turns fully red"],
    "write a cover letter": ["open with the job you are applying for", "show one or two results you achieved",
                             "explain why this company interests you", "keep it under one page"],
    "sleep better": ["go to bed at the same time each night", "keep the bedroom cool and dark",
                     "avoid screens for an hour before bed", "skip coffee after lunch"],
    "save money on groceries": ["plan the meals for the week", "write a list and stick to it",
                                "buy store brands for staples", "cook larger batches and freeze portions"],
    "train a puppy to sit": ["hold a treat above its nose", "move the treat back so its head goes up",
                             "say sit as it sits down", "reward it right away and repeat a few times a day"],
    "start running": ["begin with walk and run intervals", "run at a pace where you can still talk",
                      "add a little distance each week", "rest a day between runs at first"],
    "paint a room": ["move the furniture and cover the floor", "tape the edges and fill any holes",
                     "use a primer on dark walls", "paint two thin coats rather than one thick one"],
    "make bread": ["mix flour, water, salt and yeast", "knead the dough until it is smooth",
                   "let it rise until it doubles", "bake it in a hot oven until it sounds hollow"],
    "study for an exam": ["make a plan for each day before the exam", "test yourself instead of rereading",
                          "take short breaks every hour", "sleep well the night before"],
}
QUESTIONS = ["How do I {t}?", "Can you explain how to {t}?", "What is the best way to {t}?",
             "I want to {t}. Where should I start?", "Any tips on how to {t}?"]
OPENERS = ["Sure! ", "Good question. ", "Happy to help. ", "Of course. ", ""]
BAD = ["I don't know.", "Why would you want to do that?", "Just look it up yourself.", "That is not my problem.",
       "Hmm, maybe ask someone else.", "No idea, sorry."]
SMALL_TALK = [("Hi there, how are you?", "I'm doing well, thanks for asking. What can I help you with?"),
              ("I have a question for you.", "Sure, go ahead and ask."),
              ("Hello!", "Hello! What would you like to talk about?")]


def hh_conversations(count: int, seed: int = 0) -> list[dict]:
    """Anthropic/hh-rlhf rows of made-up but real-looking conversations: zero to two earlier turns,
    a how-to question, a helpful multi-step chosen reply and an unhelpful rejected one."""
    import random

    rng = random.Random(seed)
    rows = []
    topics = list(TOPICS)
    for i in range(count):
        topic = rng.choice(topics)
        steps = TOPICS[topic]
        question = rng.choice(QUESTIONS).format(t=topic) + rng.choice(["", " I am a beginner.", " Thanks!",
                                                                        f" I have tried {i % 7 + 2} times already."])
        history = tuple(rng.sample(SMALL_TALK, rng.choice([0, 0, 1, 2])))
        picked = rng.sample(steps, rng.randint(2, 4))
        chosen = rng.choice(OPENERS) + "To " + topic + ", " + ", then ".join(picked) + "."
        if rng.random() < 0.5:
            chosen += " " + rng.choice(["Good luck!", "Let me know how it goes.", "It gets easier with practice."])
        rejected = rng.choice(BAD) if rng.random() < 0.7 else f"You could {rng.choice(steps)}, I guess."
        rows.append(hh(question, chosen, rejected, history))
    return rows
