"""Rows as the real dumps have them (issue 13): oasst1 tree exports, Git LFS pointers, turns of
one role in a row, follow-ups too short to carry a question, contradicting pairs across
datasets, and failed steps that must leave nothing behind."""

from __future__ import annotations

import json

import pytest
from conftest import read_jsonl, run_cli
from data_fixtures import hh, oasst_message, oasst_tree, shp, write_rows

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.data.split import SplitSettings, split
from prefalign.errors import RecordError
from prefalign.jsonl import write_jsonl
from prefalign.records import make_record, message


def run(tmp_path, raw, filters=None, **settings):
    out = tmp_path / "out"
    stats = normalize(raw, NormalizeSettings(**{"name": "t", **settings}), filters or FilterSettings(),
                      out / "normalized.jsonl", out / "rejects.jsonl")
    kept, ledger = read_jsonl(out / "normalized.jsonl"), read_jsonl(out / "rejects.jsonl")
    assert stats["in"] == stats["kept"] + stats["dropped"] == len(kept) + len(ledger)
    for stage in stats["stages"]:
        assert stage["in"] == stage.get("used", stage["out"]) + stage["dropped"]
    return kept, ledger, stats


# ---------------------------------------------------------------- oasst1 exports

def nested(message_rows: list[dict], root: str = "r") -> dict:
    """The nested export of flat messages: the root, each message holding its replies (no parent ids)."""
    by_parent: dict[str | None, list[dict]] = {}
    for m in message_rows:
        by_parent.setdefault(m["parent_id"], []).append(m)

    def build(m):  # as the export: the tree id on the root only
        node = {k: v for k, v in m.items() if k not in ("parent_id", "message_tree_id") or m["message_id"] == root}
        node["replies"] = [build(child) for child in by_parent.get(m["message_id"], [])]
        return node

    return build(next(m for m in message_rows if m["message_id"] == root))


def second_tree() -> list[dict]:
    return [oasst_message("s", None, "prompter", "Name a prime number.", tree="t2"),
            oasst_message("s0", "s", "assistant", "Seven.", rank=0, tree="t2"),
            oasst_message("s1", "s", "assistant", "Nine.", rank=1, tree="t2"),
            oasst_message("s2", "s", "assistant", "An unranked one.", tree="t2")]


@pytest.mark.parametrize("export", ["nested", "trees"])
def test_oasst_tree_exports_give_the_pairs_of_the_flat_export_and_count_every_message(tmp_path, export):
    """Issue 13, item 5: the nested export gave 0 pairs and never counted its messages; trees.jsonl failed."""
    flat = oasst_tree() + second_tree()
    kept_flat, ledger_flat, stats_flat = run(tmp_path / "flat", write_rows(tmp_path / "flat.jsonl", flat),
                                             format="oasst1")
    roots = [nested(oasst_tree(), "r"), nested(second_tree(), "s")]
    if export == "trees":
        roots = [{"message_tree_id": tree, "tree_state": "ready_for_export", "prompt": root, "origin": "export"}
                 for tree, root in zip(("t1", "t2"), roots)]
    kept, ledger, stats = run(tmp_path / export, write_rows(tmp_path / f"{export}.jsonl", roots), format="oasst1")
    assert len(kept) == len(kept_flat) == 4
    for a, b in zip(kept, kept_flat):
        assert (a["prompt"], a["chosen"], a["rejected"]) == (b["prompt"], b["chosen"], b["rejected"])
        assert a["meta"]["tree_id"] == b["meta"]["tree_id"]
    assert stats["rows"] == 2 and stats["messages"] == stats_flat["messages"] == len(flat) == 12
    assert sorted(e["reason"] for e in ledger) == sorted(e["reason"] for e in ledger_flat) == ["not_in_pair"] * 2
    assert {e["line"] for e in ledger} == {1, 2} and {e["id"].split(":")[-1] for e in ledger} == {"ax", "s2"}
    adapt = stats["stages"][1]
    assert adapt["unit"] == "message" and adapt["in"] == 12 and adapt["used"] == 10 and adapt["out"] == 4


def test_a_bad_message_inside_a_tree_names_its_path_or_is_quarantined_with_its_replies(tmp_path):
    tree = nested(oasst_tree(), "r")
    del tree["replies"][0]["role"]  # a0, the parent of the follow-up f (and f0, f1)
    path = write_rows(tmp_path / "nested.jsonl", [tree])
    with pytest.raises(RecordError, match=r"nested.jsonl:1: key 'replies\[0\].role': missing"):
        run(tmp_path, path, format="oasst1")
    kept, ledger, stats = run(tmp_path, path, format="oasst1", on_bad_record="quarantine")
    reasons = sorted(e["reason"] for e in ledger)
    assert reasons == ["malformed", "not_in_pair", "orphan", "orphan", "orphan"]  # a0; ax; f, f0, f1
    assert len(kept) == 1 and kept[0]["rejected"][0]["content"] == "France has no capital."
    assert stats["messages"] == 8


def test_a_row_of_no_oasst_export_is_named_with_the_exports_it_could_be(tmp_path):
    path = write_rows(tmp_path / "odd.jsonl", [{"conversation": []}])
    with pytest.raises(RecordError) as info:
        run(tmp_path, path, format="oasst1")
    text = str(info.value)
    assert "odd.jsonl:1: key 'message_id'" in text and "nested tree" in text and "trees.jsonl" in text


# ---------------------------------------------------------------- Git LFS pointers

POINTER = ("version https://git-lfs.github.com/spec/v1\noid sha256:"
           "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 13355201\n")


@pytest.mark.parametrize("name", ["train.jsonl.gz", "train.parquet", "train.json", "train.jsonl"])
def test_a_git_lfs_pointer_is_named_as_one(tmp_path, name):
    """Issue 13, item 7: a clone without git-lfs gave 'not a readable gzip stream'."""
    path = tmp_path / name
    path.write_text(POINTER)
    with pytest.raises(RecordError, match=r"lfs_pointer: a Git LFS pointer file .*13355201 bytes.*git lfs pull"):
        run(tmp_path, path, on_bad_record="quarantine")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------- turns of one role in a row

def record_rows() -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": "Hi."}, {"role": "user", "content": "Are you there?"}],
         "chosen": "Yes.", "rejected": "No."},
        {"prompt": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
                    {"role": "assistant", "content": "How can I help?"}, {"role": "user", "content": "Tell a joke."}],
         "chosen": "A joke.", "rejected": "No."},
        {"prompt": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
         "chosen": "Anything else?", "rejected": "Bye."},
        {"prompt": "Plain question?", "chosen": "A.", "rejected": "B."},
    ]


def test_consecutive_same_role_turns_are_merged_with_a_note_by_default(tmp_path):
    """Issue 13, item 7: prompts with two assistant turns in a row passed unflagged."""
    path = write_rows(tmp_path / "pairs.jsonl", record_rows())
    kept, ledger, _ = run(tmp_path, path, format="pairs")
    assert kept[0]["prompt"] == [{"role": "user", "content": "Hi.\n\nAre you there?"}]
    assert kept[0]["meta"]["merged_turns"] == 1
    assert [m["role"] for m in kept[1]["prompt"]] == ["user", "assistant", "user"]
    assert kept[1]["prompt"][1]["content"] == "Hello.\n\nHow can I help?"
    assert "merged_turns" not in kept[2]["meta"]
    assert [(e["line"], e["reason"]) for e in ledger] == [(3, "consecutive_same_role")]
    assert "ends with an assistant turn" in ledger[0]["detail"]


@pytest.mark.parametrize("policy, kept_lines, dropped_lines", [
    ("drop", [4], [1, 2, 3]),
    ("keep", [1, 2, 3, 4], []),
])
def test_consecutive_same_role_policies(tmp_path, policy, kept_lines, dropped_lines):
    path = write_rows(tmp_path / "pairs.jsonl", record_rows())
    kept, ledger, _ = run(tmp_path, path, FilterSettings(consecutive_turns=policy), format="pairs")
    assert [r["meta"]["line"] for r in kept] == kept_lines
    assert [e["line"] for e in ledger] == dropped_lines
    assert all(e["reason"] == "consecutive_same_role" for e in ledger)
    assert all("merged_turns" not in r["meta"] for r in kept)
    if policy == "keep":
        assert kept[0]["prompt"][1] == {"role": "user", "content": "Are you there?"}


# ---------------------------------------------------------------- decontamination and short turns

def conversation(*turns: str) -> list[dict]:
    return [message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)]


def split_run(tmp_path, records, **settings):
    path = tmp_path / "mix.jsonl"
    write_jsonl(path, records)
    out = tmp_path / "out"
    stats = split([path], SplitSettings(**settings), out / "train.jsonl", out / "test.jsonl", out / "rejects.jsonl")
    return read_jsonl(out / "train.jsonl"), read_jsonl(out / "test.jsonl"), read_jsonl(out / "rejects.jsonl"), stats


def test_short_follow_ups_do_not_contaminate_but_a_real_overlap_does(tmp_path):
    """Issue 13, item 4: a test conversation ending in "Yes" marked every training prompt with a "Yes" turn."""
    question = "What is the safest way to store kitchen knives at home with small children around?"
    test_prompts = [conversation("Can you recommend a good book about sailing?", "Sure, which kind?", "Yes"),
                    conversation("Tell me about the history of the bicycle in Europe.", "It began...", "Go on."),
                    conversation("Hello there.", "Hi!", question)]
    train_prompts = [conversation("Is swimming after lunch safe?", "Mostly.", "Yes"),  # 2 n-grams: half is "yes"
                     conversation("How do I bake sourdough bread?", "Use a bowl.", "Go on."),
                     conversation("I have a question.", "Ask away.", question.upper().replace("?", "!"))]
    # Same test/train assignment whatever the salt: test_fraction splits by prompt hash, so pick
    # a salt and fraction that put exactly the three test prompts in test.
    records = [make_record(f"x/{i}", "x", p, "An answer of some length.", "Another answer.")
               for i, p in enumerate(test_prompts + train_prompts)]
    salt = next(s for s in (f"s{k}" for k in range(10000))
                if all(_in_test(s, r["prompt"]) == (i < 3) for i, r in enumerate(records)))
    train, test, ledger, _ = split_run(tmp_path, records, split_seed=salt, test_fraction=0.5, near_dedup=False)
    assert len(test) == 3
    assert [(e["id"], e["reason"]) for e in ledger] == [("x/5", "contaminated")]  # only the true overlap
    assert [r["id"] for r in train] == ["x/3", "x/4"]
    # With every turn counted (the old behaviour), the "Yes" and "Go on." prompts were dropped too.
    _, _, ledger, _ = split_run(tmp_path, records, split_seed=salt, test_fraction=0.5, near_dedup=False,
                                decontam_min_words=1)
    assert sorted(e["id"] for e in ledger) == ["x/3", "x/4", "x/5"]


def _in_test(salt: str, prompt: list[dict]) -> bool:
    from prefalign.data.split import salted_fraction
    from prefalign.records import prompt_key

    return salted_fraction(salt, prompt_key(prompt)) < 0.5


# ---------------------------------------------------------------- contradicting pairs across datasets

def contradicting_mix(tmp_path):
    prompt = [message("user", "Which is the better answer to this long enough question about rivers?")]
    a, b = "The Nile is the longest river in Africa.", "Rivers are wet, that is all."
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    write_jsonl(first, [make_record("first/0", "first", prompt, a, b), make_record("first/1", "first", prompt, a, b)])
    write_jsonl(second, [make_record("second/0", "second", prompt, b, a),
                         make_record("second/1", "second", [message("user", "Another question here?")], a, b)])
    return [first, second]


@pytest.mark.parametrize("policy, kept_ids, contradictory", [
    ("keep_majority", {"first/0", "second/1"}, ["second/0"]),  # 2 votes (a duplicate counts) against 1
    ("drop_both", {"second/1"}, ["first/0", "second/0"]),
    ("keep", {"first/0", "second/0", "second/1"}, []),
])
def test_contradicting_pairs_across_datasets_are_ledgered_by_policy(tmp_path, policy, kept_ids, contradictory):
    """Issue 13, item 8: the same prompt with chosen and rejected swapped stayed in."""
    inputs = contradicting_mix(tmp_path)
    out = tmp_path / "out"
    stats = split(inputs, SplitSettings(contradictions=policy, test_fraction=0.01, decontaminate=False),
                  out / "train.jsonl", out / "test.jsonl", out / "rejects.jsonl")
    kept = {r["id"] for r in read_jsonl(out / "train.jsonl") + read_jsonl(out / "test.jsonl")}
    ledger = read_jsonl(out / "rejects.jsonl")
    assert kept == kept_ids
    assert sorted(e["id"] for e in ledger if e["reason"] == "contradictory") == contradictory
    assert [e["reason"] for e in ledger if e["reason"] != "contradictory"] == ["duplicate"]  # first/1
    if contradictory:
        entry = next(e for e in ledger if e["reason"] == "contradictory")
        assert entry["stage"] == "contradiction" and "states the opposite preference" in entry["detail"]
    stage = next(s for s in stats["stages"] if s["stage"] == "contradiction")
    assert stage["dropped"] == len(contradictory)


def test_a_tie_drops_both_sides_under_keep_majority(tmp_path):
    inputs = contradicting_mix(tmp_path)
    write_jsonl(inputs[0], read_jsonl(inputs[0])[:1])  # one vote each way
    out = tmp_path / "out"
    split(inputs, SplitSettings(test_fraction=0.01), out / "train.jsonl", out / "test.jsonl", out / "rejects.jsonl")
    ledger = read_jsonl(out / "rejects.jsonl")
    assert sorted(e["id"] for e in ledger) == ["first/0", "second/0"]
    assert all("a tie drops both sides" in e["detail"] for e in ledger)


# ---------------------------------------------------------------- a failed step leaves nothing behind

@pytest.mark.parametrize("rows", [
    [hh("Q?", "a", "b"), '{"chosen": "x", "rejected": 5}'],  # a bad row after a good one
    [shp("Post", "A", "B", 9, 2), {"history": "P"}],
])
def test_a_failed_normalize_leaves_no_output_file(tmp_path, rows):
    """Issue 13, item 9: a failed standalone `prefalign normalize` left empty output files behind."""
    path = write_rows(tmp_path / "raw" / "raw.jsonl", rows)
    out = tmp_path / "out"
    fmt = "shp" if "history" in json.dumps(rows[0]) else "hh-rlhf"
    result = run_cli("normalize", "--input", path, "--format", fmt, "--records", out / "n.jsonl", "--rejects",
                     out / "r.jsonl", "--stats", out / "s.json", check=False)
    assert result.returncode == 3
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
